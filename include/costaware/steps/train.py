"""Train a challenger on the training window (never the held-out one) and register it.

The local backend trains here, on the worker; the cloud backends (sagemaker, vertex) train in
a deferrable task through ``costaware.steps.cloud_training``, which registers its model with
``_register`` below. What a run spent, and the cost rows of its attempts, are in
``costaware.steps.spend``."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from costaware import faults
from costaware.batches import data
from costaware.errors import NotEnoughData
from costaware.faults import step_points
from costaware.models.registry import BORN_TAG, CHALLENGER, REFERENCE_TAG
from costaware.steps.context import StepContext
from costaware.steps.spend import job_recorder, retrain_tags, run_spend
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
    record = job_recorder(
        ctx,
        job_id,
        t.instance_type,
        getattr(prices, "name", str(cfg.cost_policy.price_source)),
        tags,
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


def _mark_challenger(ctx: StepContext, version: str) -> None:
    if ctx.champion() != version:
        ctx.registry.set_alias(ctx.model, CHALLENGER, version)
