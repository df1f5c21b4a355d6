"""Cloud training steps (training.backend: sagemaker | vertex): prepare the run's data and job
where the cloud reads it, start, finish or stop the job, register its model as the challenger,
and choose where a sagemaker job runs (``placement_for``).

The Airflow glue (costaware.app.cloud_training, costaware.app.vertex_training) submits, defers
to a trigger and finishes here; the clients (boto3 from the provider's hook; Vertex's
JobServiceClient and a google.cloud.storage.Client) are built from the Airflow connection."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

from costaware.batches import data
from costaware.steps.context import StepContext
from costaware.steps.spend import job_recorder, retrain_tags
from costaware.steps.train import _register, _registered, _training_frame, run_key
from costaware.store import storage

log = logging.getLogger(__name__)


def cloud_job(ctx: StepContext, spec: dict[str, Any], key: str) -> Any:
    """The job of one DAG run's training task. Its id (and so SageMaker's job name) derives
    from ``key`` = DAG run + task, so every try of the task names the same job."""
    from costaware.models.training import TrainingJob

    job_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    return TrainingJob(**{**spec, "job_id": job_id, "tags": retrain_tags(ctx.cfg)})


def cloud_backend(
    ctx: StepContext, client: Any, instance_type: str | None = None, storage_client: Any = None
) -> Any:
    """The model's cloud backend over ``client`` (the training service's client: SageMaker's
    boto3 client, or Vertex's ``JobServiceClient``), on ``instance_type`` when the placement
    chose one, else the YAML's ``instance_type``. ``storage_client`` (vertex: a
    ``google.cloud.storage.Client``) reads what the container wrote beside the model."""
    from costaware.costs import make_price_source
    from costaware.errors import ConfigError
    from costaware.models.training import get_backend

    cfg, t = ctx.cfg, ctx.cfg.training
    prices = make_price_source(
        cfg.cost_policy.price_source, ctx.ledger, cfg.cost_policy.price_source_options
    )
    common = {
        "region": t.region,
        "instance_type": instance_type or t.instance_type,
        "spot": t.spot.enabled,
    }
    if t.backend == "vertex" and t.vertex is not None:
        return get_backend("vertex")(
            client, prices, t.vertex, storage_client=storage_client, **common
        )
    if t.backend != "sagemaker" or t.sagemaker is None:
        raise ConfigError(
            f"{ctx.model}: training.backend is {t.backend!r}; a cloud training task needs "
            "backend: sagemaker or vertex, and its training.<backend> block"
        )
    return get_backend("sagemaker")(client, prices, t.sagemaker, **common)


def _cloud_recorder(ctx: StepContext, backend: Any, job: Any) -> Any:
    price_source = getattr(backend.price_source, "name", "?")
    return job_recorder(ctx, job.job_id, backend.instance_type, price_source, job.tags)


def start_cloud_training(
    ctx: StepContext,
    spec: dict[str, Any],
    key: str,
    client: Any,
    instance_type: str | None = None,
    storage_client: Any = None,
) -> dict[str, Any]:
    """Create the run's training job (or attach to the one an earlier try created) and say
    where it is: ``{"handle", "state", "detail"}``. ``instance_type``: the placement's
    choice (``placement_for``), shown in the decision memo."""
    backend = cloud_backend(ctx, client, instance_type, storage_client)
    job = cloud_job(ctx, spec, key)
    handle = backend.submit(job, _cloud_recorder(ctx, backend, job))
    status = backend.poll(handle)
    log.info("training job %s of %s: %s", handle, ctx.model, status.detail)
    return {"handle": handle, "state": status.state, "detail": status.detail}


def finish_cloud_training(
    ctx: StepContext, spec: dict[str, Any], key: str, client: Any, storage_client: Any = None
) -> dict[str, Any]:
    """Price the ended job into the ledger and return its result; ``TrainingError`` for a
    job that Failed, was Stopped or exceeded its max wait (after its cost is recorded)."""
    backend = cloud_backend(ctx, client, storage_client=storage_client)
    job = cloud_job(ctx, spec, key)
    from costaware.models.training.sagemaker import job_name

    # SageMaker's job name; Vertex's display name (the vertex backend finds the job by it).
    result = backend.result(job_name(job), _cloud_recorder(ctx, backend, job))
    log.info(
        "training job %s of %s: %s, billed %.0f s, $%.4f, saved $%s; %s",
        result.handle,
        ctx.model,
        result.capacity,
        result.billed_s,
        result.known_usd,
        "?" if result.saved_usd is None else f"{result.saved_usd:.4f}",
        "; ".join(result.notes),
    )
    return {**result.as_dict(), "job_id": job.job_id}


def _job_spec(ctx: StepContext, job_id: str, train_path: str, mirror: str) -> dict[str, Any]:
    """A cloud job's spec (``TrainingJob`` fields but ``job_id`` and ``tags``)."""
    from costaware.models.algorithms import model_spec

    cfg, t = ctx.cfg, ctx.cfg.training
    return {
        "algorithm": t.algorithm,
        "train_path": train_path,
        "features": cfg.feature_names,
        "target": cfg.target.name,
        "params": t.params,
        "num_boost_round": t.num_boost_round,
        "chunk_rounds": t.chunk_rounds,
        "seed": cfg.evaluation.seed,
        "workdir": str(ctx.settings.scratch("work", ctx.model, job_id)),
        "mirror": mirror,
        "model_spec": model_spec(cfg),
    }


def prepare_cloud_training(
    ctx: StepContext, batch_id: str, storage_client: Any = None
) -> dict[str, Any]:
    """What the retrain DAG's cloud training task needs, written where the cloud reads it:
    the training window as ``train.parquet`` and the job as ``job.json`` in the run's work
    folder on object storage (SageMaker's channels), and the job's spec for the operator.
    A set-up whose model could not be registered is refused here, before a job is paid.
    ``backend: vertex``: the folder is on Cloud Storage, written through ``storage_client``
    (``_prepare_vertex``)."""
    from costaware.errors import ConfigError
    from costaware.models.training.sagemaker_container import JOB_FILE, TRAIN_FILE
    from costaware.models.training.sagemaker_model import registrable

    t = ctx.cfg.training
    if t.backend == "vertex" and t.vertex is not None:
        return _prepare_vertex(ctx, batch_id, storage_client)
    if t.backend != "sagemaker" or t.sagemaker is None:
        raise ConfigError(
            f"{ctx.model}: training.backend is {t.backend!r}; the cloud training task needs "
            "backend: sagemaker or vertex, and its training.<backend> block"
        )
    registrable(t.sagemaker)
    key = run_key(ctx, batch_id)
    job_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    work = ctx.settings.work(ctx.model) / job_id
    if storage.is_local(work):
        raise ConfigError(
            f"{ctx.model}: SageMaker reads the training data from S3, but COSTAWARE_STORAGE is "
            f"this machine's {storage.text(work)}; set COSTAWARE_STORAGE to s3://bucket/prefix"
        )
    train, windows = _training_frame(ctx)
    train_path = work / TRAIN_FILE
    if not train_path.exists():  # a retry keeps the data a job may be reading
        storage.write_parquet(train_path, train)
    spec = _job_spec(ctx, job_id, storage.text(train_path), storage.text(work))
    storage.write_json(work / JOB_FILE, {**spec, "job_id": job_id})
    log.info(
        "%s: %d training rows from %s written to %s for SageMaker",
        ctx.model,
        len(train),
        windows.train_batches,
        storage.text(work),
    )
    return {
        "job": spec,
        "key": key,
        "work": storage.text(work),
        **windows.as_dict(),
    }


def register_cloud_challenger(
    ctx: StepContext,
    batch_id: str,
    prepared: dict[str, Any],
    trained: dict[str, Any],
    storage_client: Any = None,
) -> dict[str, Any]:
    """Register the model a cloud job made (``trained``: ``finish_cloud_training``'s result)
    as this run's challenger, like a locally trained one: its artifact is fetched from the
    job's output, its drift reference computed on the data it trained on. ``backend:
    vertex``: both are read from Cloud Storage through ``storage_client``."""
    from costaware.models.training.base import Attempt, TrainingResult
    from costaware.models.training.sagemaker_model import fetch_model

    work = storage.location(prepared["work"], ctx.settings.storage_conn_id)
    reused = _registered(ctx, prepared["key"], work)
    if reused is not None:
        return reused
    local = ctx.settings.scratch("work", ctx.model, work.name, "model")
    train: Any = None
    if prepared.get("gcs"):  # vertex: the run's folder and the job's output are on GCS
        model_path, train = _fetch_vertex(ctx, prepared, trained, local, storage_client)
    else:
        model_path = fetch_model(trained["model_path"], local, ctx.settings.storage_conn_id)
    fields = {f.name for f in dataclasses.fields(TrainingResult)}
    result = TrainingResult(
        **{
            **{k: v for k, v in trained.items() if k in fields},
            "attempts": [Attempt(**a) for a in trained.get("attempts", [])],
        }
    )
    from costaware.models.training.sagemaker_container import TRAIN_FILE

    if train is None:
        train = storage.read_parquet(work / TRAIN_FILE)
    windows = data.Windows(prepared["train_batches"], prepared["holdout_batches"])
    return _register(ctx, batch_id, prepared["key"], work, train, windows, model_path, result)


# -- vertex: the run's folder on Cloud Storage, through google-cloud-storage ---------------------
# Airflow's ObjectStoragePath reaches gs:// only through gcsfs, which does not install beside
# the pins; the data, job.json and the model go through the storage client instead, while the
# summary a retry returns stays in the run's work folder under COSTAWARE_STORAGE.


def _gcs_client(ctx: StepContext, storage_client: Any) -> Any:
    from costaware.errors import ConfigError

    if storage_client is None:
        raise ConfigError(
            f"{ctx.model}: backend vertex moves the training data and the model through a "
            "google.cloud.storage.Client, and none was given (the retrain DAG builds one from "
            "training.vertex.gcp_conn_id: costaware.app.vertex_training.storage_client)"
        )
    return storage_client


def _prepare_vertex(ctx: StepContext, batch_id: str, storage_client: Any) -> dict[str, Any]:
    """``prepare_cloud_training`` for ``backend: vertex``: ``train.parquet`` and ``job.json``
    in ``<training.vertex.base_output_uri>/runs/<model>/<job id>``, the job id derived from
    the model, batch and DAG run (a retry writes to the same folder and keeps its data)."""
    import io
    import json

    from costaware.errors import ConfigError
    from costaware.models.training.sagemaker_container import JOB_FILE, TRAIN_FILE
    from costaware.models.training.vertex import gcs_blob, gs_uri

    t = ctx.cfg.training
    assert t.vertex is not None  # the caller checked
    if not t.vertex.base_output_uri:
        raise ConfigError(
            f"{ctx.model}: backend vertex in the retrain DAG needs training.vertex."
            "base_output_uri (gs://bucket/prefix): the training data, the job and its model go "
            "there (COSTAWARE_STORAGE cannot be gs:// here: Airflow's ObjectStoragePath needs "
            "gcsfs for it, which is not installed)"
        )
    gcs = _gcs_client(ctx, storage_client)
    key = run_key(ctx, batch_id)
    job_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = f"{gs_uri(t.vertex.base_output_uri)}/runs/{ctx.model}/{job_id}"
    work = ctx.settings.work(ctx.model) / job_id  # the summary a retry returns
    train, windows = _training_frame(ctx)
    train_uri = f"{folder}/{TRAIN_FILE}"
    blob = gcs_blob(gcs, train_uri)
    if not blob.exists():  # a retry keeps the data a job may be reading
        buf = io.BytesIO()
        train.to_parquet(buf, index=False)
        blob.upload_from_string(buf.getvalue(), content_type="application/octet-stream")
    spec = _job_spec(ctx, job_id, train_uri, folder)
    gcs_blob(gcs, f"{folder}/{JOB_FILE}").upload_from_string(
        json.dumps({**spec, "job_id": job_id}), content_type="application/json"
    )
    log.info(
        "%s: %d training rows from %s written to %s for Vertex AI",
        ctx.model,
        len(train),
        windows.train_batches,
        folder,
    )
    return {
        "job": spec,
        "key": key,
        "work": storage.text(work),
        "gcs": folder,
        **windows.as_dict(),
    }


def _fetch_vertex(
    ctx: StepContext,
    prepared: dict[str, Any],
    trained: dict[str, Any],
    local: Any,
    storage_client: Any,
) -> tuple[Any, Any]:
    """The model a Vertex job wrote (``<output>/model/model.pkl``, costaware's format) as a
    local file, and the training data it read, both from Cloud Storage."""
    import io

    import pandas as pd

    from costaware.errors import TrainingError
    from costaware.models.training.sagemaker_container import MODEL_FILE, TRAIN_FILE
    from costaware.models.training.vertex import gcs_blob

    gcs = _gcs_client(ctx, storage_client)
    uri = trained["model_path"]
    blob = gcs_blob(gcs, uri)
    if not blob.exists():
        raise TrainingError(
            f"model artifact {uri} does not exist: the Vertex job succeeded but wrote nothing "
            "there (check its logs, and that its service account may write to the bucket)"
        )
    local.mkdir(parents=True, exist_ok=True)
    model_path = local / MODEL_FILE
    blob.download_to_filename(str(model_path))
    train_uri = f"{prepared['gcs']}/{TRAIN_FILE}"
    train = pd.read_parquet(io.BytesIO(gcs_blob(gcs, train_uri).download_as_bytes()))
    return model_path, train


def stop_cloud_training(ctx: StepContext, handle: str, client: Any) -> None:
    cloud_backend(ctx, client).cancel(handle)


def placement_for(ctx: StepContext, ec2: Any = None) -> dict[str, Any] | None:
    """Where a ``sagemaker`` model with several allowed instance types or zones should train
    (``models/training/placement.py``), for the decision memo; None when there is no choice.
    A look-up that fails is reported, not raised: the memo says so and the job runs on
    ``training.instance_type``."""
    from costaware.models.training.placement import look_up

    t = ctx.cfg.training
    spec = t.sagemaker
    if t.backend != "sagemaker" or spec is None:
        return None
    types = spec.instance_types or [t.instance_type]
    if len(types) < 2 and len(spec.zones) < 2:
        return None
    try:
        if ec2 is None:
            from costaware.costs.builders import aws_client_factory

            ec2 = aws_client_factory(spec.aws_conn_id)("ec2", t.region)
        return look_up(ec2, types, spec.zones, t.region, now=ctx.clock).as_dict()
    except Exception as exc:  # noqa: BLE001 - shown in the memo; training keeps its default
        log.warning("placement look-up for %s failed: %s", ctx.model, exc)
        return {
            "instance_type": t.instance_type,
            "zone": None,
            "reason": f"could not compare spot prices ({exc}); training on "
            f"training.instance_type {t.instance_type}",
            "notes": [],
            "options": [],
        }
