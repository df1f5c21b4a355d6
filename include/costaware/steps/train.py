"""Train a challenger on the training window (never the held-out one) and register it."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

from costaware import faults
from costaware.batches import data
from costaware.errors import NotEnoughData
from costaware.faults import step_points
from costaware.models.registry import BORN_TAG, CHALLENGER, REFERENCE_TAG
from costaware.steps.context import StepContext
from costaware.store import storage

log = logging.getLogger(__name__)
SUMMARY = "summary.json"


def run_key(ctx: StepContext, batch_id: str) -> str:
    return f"{ctx.model}/{batch_id}/{ctx.run_id}"


def _labelled_windows(ctx: StepContext) -> tuple[Any, data.Windows]:
    labelled = data.labelled_frame(ctx.settings, ctx.cfg, ctx.ledger)
    return labelled, data.split_windows(labelled, ctx.cfg)


def _y(ctx: StepContext, frame: Any) -> Any:
    """The target as models see it: 0/1, class index, or float (``algorithms.encode_target``)."""
    import pandas as pd

    from costaware.models.algorithms import encode_target

    return pd.Series(encode_target(frame[ctx.cfg.target.name], ctx.cfg), index=frame.index)


@step_points
def train_challenger(ctx: StepContext, batch_id: str) -> dict[str, Any]:
    """Train on the training window (never the held-out one) and register a challenger.

    Every attempt's cost goes to the ledger as it starts (unknown) and ends (priced), keyed by
    the job and the attempt's number, so a retried task adds its attempts to the first try's
    instead of overwriting them, and a failed job's spend is recorded too."""
    from costaware.costs import make_price_source
    from costaware.models.training import TrainingJob, get_backend, run_to_end

    cfg, t = ctx.cfg, ctx.cfg.training
    if t.backend != "local":
        from costaware.errors import ConfigError

        raise ConfigError(
            f"{ctx.model}: training.backend {t.backend!r} trains in a deferrable task "
            "(costaware.app.cloud_training.SageMakerSpotTrainingOperator; vertex: "
            "costaware.app.vertex_training.VertexSpotTrainingOperator), not on this worker"
        )
    key = run_key(ctx, batch_id)
    job_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    work = ctx.settings.work(ctx.model) / job_id  # durable, where every worker sees it
    workdir = ctx.settings.scratch("work", ctx.model, job_id)  # this machine's disk
    mirror = None if storage.is_local(work) else work
    reused = _registered(ctx, key, work)
    if reused is not None:  # a retried task: the model of this run is already registered
        return reused
    from costaware.models.algorithms import model_spec

    train, windows = _training_frame(ctx)
    if mirror is not None:  # a retry on another machine takes the first try's files
        storage.sync(mirror, workdir, always=())
    train_path = workdir / "train.parquet"
    if not train_path.exists():  # a retry keeps the first try's data (a worker may read it)
        storage.write_parquet(train_path, train)
    tags = retrain_tags(cfg)
    job = TrainingJob(
        job_id=job_id,
        algorithm=t.algorithm,
        train_path=str(train_path),
        features=cfg.feature_names,
        target=cfg.target.name,
        params=t.params,
        num_boost_round=t.num_boost_round,
        chunk_rounds=t.chunk_rounds,
        seed=cfg.evaluation.seed,
        workdir=str(workdir),
        mirror=None if mirror is None else storage.text(mirror),
        tags=tags,
        model_spec=model_spec(cfg),
        draw_key=f"{ctx.model}/{batch_id}",
    )
    prices = make_price_source(
        cfg.cost_policy.price_source, ctx.ledger, cfg.cost_policy.price_source_options
    )
    backend = get_backend(t.backend)(
        t.instance_type, t.region, prices, t.spot, t.billing_overhead_minutes, t.timeout_minutes
    )
    record = attempt_recorder(
        ctx.ledger,
        model=ctx.model,
        run_id=ctx.run_id,
        usage_date=ctx.clock,
        prefix=f"{job_id}/",
        instance_type=t.instance_type,
        price_source=getattr(prices, "name", str(cfg.cost_policy.price_source)),
        tags=tags,
    )
    result = run_to_end(backend, job, record, poll_s=1.0)
    faults.point("train_challenger.trained")
    return _register(ctx, batch_id, key, work, train, windows, result.model_path, result)


def _register(
    ctx: StepContext,
    batch_id: str,
    key: str,
    work: Any,
    train: Any,
    windows: data.Windows,
    model_path: str | Any,
    result: Any,
) -> dict[str, Any]:
    """Register a trained model as this run's challenger (any backend): its drift reference
    (the training data and the model's scores on it), the registry version, the alias, and
    the summary a retry returns."""
    from costaware.batches.drift import SCORE_COLUMN
    from costaware.models.scoring import load_model_file, score

    cfg, t = ctx.cfg, ctx.cfg.training
    job_id = work.name
    tags = retrain_tags(cfg)
    # The training data and the new model's scores on it are the drift reference.
    model_obj = load_model_file(model_path)
    reference = train[cfg.feature_names].copy()
    reference[SCORE_COLUMN] = score(model_obj, train, cfg.feature_names)
    ref_path = storage.write_parquet(
        ctx.settings.references(ctx.model) / f"{job_id}.parquet", reference
    )
    version = ctx.registry.register(
        ctx.model,
        model_path,
        t.algorithm,
        key,
        params={
            **t.params,
            "num_boost_round": t.num_boost_round,
            "train_batches": ",".join(windows.train_batches),
        },
        metrics={
            "train_rows": float(len(train)),
            "usd_known": result.known_usd,
            "interruptions": float(result.interruptions),
        },
        tags={
            "costaware.algorithm": t.algorithm,
            REFERENCE_TAG: storage.text(ref_path),
            BORN_TAG: batch_id,
            "costaware.train_batches": ",".join(windows.train_batches),
            "costaware.holdout_batches": ",".join(windows.holdout_batches),
            **tags,
        },
    )
    faults.point("train_challenger.registered")
    _mark_challenger(ctx, version)
    attempts = " → ".join(
        f"{a.capacity}{'✗' if a.interrupted else ('?' if a.usd is None else '✓')}"
        for a in result.attempts
    )
    spend = run_spend(ctx.ledger, ctx.model, ctx.run_id)
    log.info(
        "challenger v%s of %s: %d rows from %s; attempts %s; %s",
        version,
        ctx.model,
        len(train),
        windows.train_batches,
        attempts,
        spend["spend"],
    )
    summary = {
        "version": version,
        "reused": False,
        "train_rows": len(train),
        "train_batches": windows.train_batches,
        **spend,
        "capacity": result.capacity,
        "interruptions": result.interruptions,
        "runtime_s": result.runtime_s,
        "attempts": attempts,
    }
    data.write_json_atomic(work / SUMMARY, summary)  # what a retry returns, if one comes
    return summary


def _registered(ctx: StepContext, key: str, work: Any) -> dict[str, Any] | None:
    """The summary of this run's challenger when a try of the task registered it already."""
    existing = ctx.registry.find_version(ctx.model, key)
    if existing is None:
        return None
    log.info("challenger v%s already registered for %s; not training again", existing, key)
    _mark_challenger(ctx, existing)
    first = work / SUMMARY
    summary = storage.read_json(first) if first.exists() else {}
    spend = run_spend(ctx.ledger, ctx.model, ctx.run_id)
    return {**summary, "version": existing, "reused": True, **spend}


def _training_frame(ctx: StepContext) -> tuple[Any, data.Windows]:
    """The training window (never the held-out one), its target encoded as models see it."""
    from costaware.models.algorithms import check_frame

    cfg, t = ctx.cfg, ctx.cfg.training
    labelled, windows = _labelled_windows(ctx)
    train = labelled[labelled["batch_id"].isin(windows.train_batches)].copy()
    check_frame(train, cfg, "training")  # DataError at once, before any job starts
    train[cfg.target.name] = _y(ctx, train)
    if len(train) < t.min_train_rows:
        raise NotEnoughData(f"{ctx.model}: {len(train)} training rows < {t.min_train_rows}")
    return train, windows


def retrain_tags(cfg: Any) -> dict[str, str]:
    """The cost-allocation tags of a model's retraining: on the job and on every cost row."""
    return {
        "model": cfg.tags.model,
        "team": cfg.tags.team,
        "env": cfg.tags.env,
        "purpose": "retrain",
    }


def attempt_recorder(
    ledger: Any,
    *,
    model: str,
    run_id: str,
    usage_date: Any,
    prefix: str,
    instance_type: str,
    price_source: str,
    tags: dict[str, str],
) -> Any:
    """``on_attempt`` for any backend: one ledger cost row per attempt, keyed by
    ``<prefix><attempt number>``, written when it starts (cost unknown) and again when it
    ends (priced), so a retried task adds its attempts to the first try's and a failed
    job's spend is recorded too."""

    def record(a: Any) -> None:
        ledger.record_cost(
            model=model,
            run_id=run_id,
            purpose="retrain",
            attempt=f"{prefix}{a.number}",
            usd=a.usd,
            status=a.status,
            note=a.note,
            capacity=a.capacity,
            instance_type=instance_type,
            runtime_s=a.billed_seconds,
            interruptions=int(a.interrupted) + a.reclaims,
            price_source=price_source,
            usage_date=usage_date,
            tags=tags,
        )

    return record


def _mark_challenger(ctx: StepContext, version: str) -> None:
    if ctx.champion() != version:
        ctx.registry.set_alias(ctx.model, CHALLENGER, version)


def run_spend(ledger: Any, model: str, run_id: str) -> dict[str, Any]:
    """A run's training spend from the ledger: the known dollars and how many attempts' cost
    is unknown; ``usd`` is None when any is (never $0)."""
    from costaware.costs.base import Spend

    spend = Spend.of(r["usd"] for r in ledger.run_costs(model, run_id, "retrain"))
    return {
        "usd": spend.known_usd if spend.complete else None,
        "usd_known": spend.known_usd,
        "unknown_attempts": spend.unknown,
        "spend": spend.text(),
    }


# -- cloud backends (training.backend: sagemaker | vertex) ---------------------------------------
# The Airflow glue (costaware.app.cloud_training, costaware.app.vertex_training) submits, defers
# to a trigger and finishes here; the clients (boto3 from the provider's hook; Vertex's
# JobServiceClient and a google.cloud.storage.Client) are built from the Airflow connection.


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
    if t.backend == "vertex" and t.vertex is not None:
        return get_backend("vertex")(
            client,
            prices,
            t.vertex,
            region=t.region,
            instance_type=instance_type or t.instance_type,
            spot=t.spot.enabled,
            storage_client=storage_client,
        )
    if t.backend != "sagemaker" or t.sagemaker is None:
        raise ConfigError(
            f"{ctx.model}: training.backend is {t.backend!r}; a cloud training task needs "
            "backend: sagemaker or vertex, and its training.<backend> block"
        )
    return get_backend("sagemaker")(
        client,
        prices,
        t.sagemaker,
        region=t.region,
        instance_type=instance_type or t.instance_type,
        spot=t.spot.enabled,
    )


def _cloud_recorder(ctx: StepContext, backend: Any, job: Any) -> Any:
    return attempt_recorder(
        ctx.ledger,
        model=ctx.model,
        run_id=ctx.run_id,
        usage_date=ctx.clock,
        prefix=f"{job.job_id}/",
        instance_type=backend.instance_type,
        price_source=getattr(backend.price_source, "name", "?"),
        tags=job.tags,
    )


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
