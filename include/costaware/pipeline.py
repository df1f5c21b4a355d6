"""The retraining flow's steps up to the checkpoint, as plain functions.

Each step takes a ``StepContext`` and small JSON-able dicts, does one thing, and returns a
small JSON-able dict: the Airflow tasks in ``dags/`` are one call each, and the same steps
run without Airflow in tests and in the CLI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from costaware import data
from costaware.context import StepContext
from costaware.errors import BatchError, CostSourceError, NotEnoughData, ValidationFailed
from costaware.registry import CHAMPION

log = logging.getLogger(__name__)
REFERENCE_TAG = "costaware.reference_path"
POINTS_TAG = "costaware.reference_points"
BORN_TAG = "costaware.born_batch"  # the batch whose run trained the version


def collect_batch(ctx: StepContext, batch: str | None = None) -> dict[str, Any]:
    """Take in labels that arrived and pick the batch to process (None: nothing to do)."""
    labels = data.ingest_labels(ctx.settings, ctx.model)
    ref = data.find_batch(ctx.settings, ctx.model, batch)
    if ref is None:
        log.info(
            "%s: no batch waiting in %s (labels taken in: %d)",
            ctx.model,
            ctx.settings.landing(ctx.model),
            len(labels),
        )
        return {"batch": None, "labels_ingested": labels}
    seen = ctx.ledger.batch(ctx.model, ref.batch_id)
    if seen is not None and seen["sha256"] == ref.sha256 and seen["status"] != "quarantined":
        log.warning(
            "%s: batch %s was already processed (same sha256); processing it again",
            ctx.model,
            ref.batch_id,
        )
    log.info(
        "%s: batch %s (%s, %.1f KiB, sha256 %s…), labels taken in: %s",
        ctx.model,
        ref.batch_id,
        Path(ref.path).name,
        ref.size_bytes / 1024,
        ref.sha256[:12],
        labels or "none",
    )
    return {"batch": ref.as_dict(), "labels_ingested": labels}


def validate_batch(ctx: StepContext, batch: dict[str, Any]) -> dict[str, Any]:
    """Great Expectations on the batch. A failing batch goes to quarantine and this raises."""
    from costaware.validation import unreadable, validate_frame

    ref = data.BatchRef(**batch)
    frame = None
    try:
        frame = data.read_frame(ref.path)
    except BatchError as exc:
        outcome = unreadable(ctx.cfg, str(exc))
    else:
        outcome = validate_frame(frame, ctx.cfg, ctx.settings.gx_dir)
    log.info("validation of %s:\n%s", ref.batch_id, outcome.summary())
    row = dict(
        model=ctx.model,
        batch_id=ref.batch_id,
        sha256=ref.sha256,
        run_id=ctx.run_id,
        rows=0 if frame is None else len(frame),
        message=outcome.summary(),
    )
    if outcome.status == "fail":
        folder = data.quarantine_batch(ctx.settings, ref, outcome.as_dict(with_gx=True))
        ctx.ledger.record_batch(
            **row,
            path=str(folder),
            status="quarantined",
            report_path=str(folder / "validation.json"),
        )
        raise ValidationFailed(
            f"batch {ref.batch_id} of {ctx.model} failed validation and was moved to "
            f"{folder} (original file kept there with validation.json); nothing was trained "
            f"and the champion is unchanged.\n{outcome.summary()}",
            quarantine_path=str(folder),
        )
    assert frame is not None
    dest = data.accept_batch(ctx.settings, ref, frame)
    start, end = data.time_bounds(frame)
    report = Path(ctx.report_dir(ref.batch_id)) / "validation.json"
    report.write_text(json.dumps(outcome.as_dict(with_gx=True), default=str))
    ctx.ledger.record_batch(
        **row,
        path=str(dest),
        status="warned" if outcome.warnings else "accepted",
        report_path=str(report),
        start_ts=start,
        end_ts=end,
    )
    return {
        "batch_id": ref.batch_id,
        "path": str(dest),
        "rows": len(frame),
        "sha256": ref.sha256,
        "status": outcome.status,
        "warnings": [w.line() for w in outcome.warnings],
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
    }


def champion_version(ctx: StepContext) -> str | None:
    return ctx.registry.alias(ctx.model, CHAMPION)


def measure_drift(ctx: StepContext, validated: dict[str, Any]) -> dict[str, Any]:
    """Evidently drift of the batch's features and champion scores vs its training data."""
    import pandas as pd

    from costaware.drift import SCORE_COLUMN
    from costaware.drift import measure_drift as run_drift
    from costaware.scoring import score

    version = champion_version(ctx)
    if version is None:
        return {
            "skipped": "no champion yet: nothing to compare with",
            "drift_share": 0.0,
            "drifted_columns": [],
        }
    tags = ctx.registry.version_tags(ctx.model, version)
    reference = pd.read_parquet(tags[REFERENCE_TAG])
    current = pd.read_parquet(validated["path"])
    current[SCORE_COLUMN] = score(
        ctx.registry.load(ctx.model, version), current, ctx.cfg.feature_names
    )
    html = Path(ctx.report_dir(validated["batch_id"])) / "drift.html"
    result = run_drift(reference, current, ctx.cfg, report_path=html)
    summary = result.as_dict()
    summary["champion_version"] = version
    lines = ["  " + c.line() for c in result.all_columns()]
    log.info(
        "drift of %s vs champion v%s's training data (%d vs %d rows):\n%s",
        validated["batch_id"],
        version,
        result.current_rows,
        result.reference_rows,
        "\n".join(lines),
    )
    return summary


def measure_performance(ctx: StepContext) -> dict[str, Any]:
    """The champion's metric on the newest labelled window, and the expected gain of a
    retrain from the probe regret curve (``gain.estimate_gain_probe``, as in bench/policy.py)."""
    from costaware.gain import PROBE_AGES, estimate_gain_probe, regret_curve, regret_se
    from costaware.performance import bootstrap_se, metric_points
    from costaware.probes import ProbeStore, probe_scores
    from costaware.scoring import score

    cfg = ctx.cfg
    labelled = data.labelled_frame(ctx.settings, cfg)
    out: dict[str, Any] = {"labelled_rows": len(labelled), "champion_version": None}
    try:
        windows = data.split_windows(labelled, cfg)
    except NotEnoughData as exc:
        out.update(windows=None, train_rows=0, note=str(exc))
        return out
    train = labelled[labelled["batch_id"].isin(windows.train_batches)]
    hold = labelled[labelled["batch_id"].isin(windows.holdout_batches)]
    out.update(windows=windows.as_dict(), train_rows=len(train), holdout_rows=len(hold))
    y = (hold[cfg.target.name] == cfg.target.positive).astype(int).to_numpy()
    feats = cfg.feature_names

    # The probe: what a retrain on today's training window would score on the newest batch,
    # against the probes of earlier runs on the same rows (the regret of older models).
    order = list(dict.fromkeys(labelled["batch_id"]))
    store = ProbeStore(ctx.settings.home / "data" / ctx.model / "probes")
    newest = order[-1]
    y_train = (train[cfg.target.name] == cfg.target.positive).astype(int).to_numpy()
    probe = store.fit_or_load(newest, train[feats].to_numpy(), y_train, dict(cfg.training.params))
    probe_s = probe_scores(probe, hold, feats)
    older = [probe_scores(b, hold, feats) for b in store.older(order, PROBE_AGES)]
    seed = cfg.evaluation.seed
    curves = store.save(newest, regret_curve(y, probe_s, older, cfg.metric))
    curve_se = store.save(newest, regret_se(y, probe_s, older, cfg.metric, seed=seed), "se")
    store.prune(order, PROBE_AGES + 1)
    probe_points = metric_points(y, probe_s, cfg.metric)
    out.update(probe_points=probe_points, probe_curve=curves[-1])

    version = champion_version(ctx)
    if version is None:
        return out
    s = score(ctx.registry.load(ctx.model, version), hold, feats)
    points = metric_points(y, s, cfg.metric)
    se = bootstrap_se(y, s, cfg.metric, seed=cfg.evaluation.seed)
    born = ctx.registry.version_tags(ctx.model, version).get(BORN_TAG)
    accepted = data.accepted_batch_ids(ctx.settings, ctx.model)
    age = sum(b > born for b in accepted) if born else PROBE_AGES
    # The champion's regret, its sampling error, and the same for the batches it served
    # before (pooled by the estimator, so one noisy batch does not decide).
    regret = probe_points - points
    regret_err = regret_se(y, probe_s, [s], cfg.metric, seed=seed)[0]
    served = store.series(f"champion-{version}")
    history = [(v[0], v[1]) for k, v in sorted(served.items()) if k != newest and v[0] is not None]
    store.save(newest, [regret, regret_err], f"champion-{version}")
    gain = estimate_gain_probe(
        curves,
        age,
        regret,
        curve_se=curve_se,
        champion_se=regret_err,
        champion_history=history,
        rows=len(y),
        extend=True,
    )
    out.update(
        champion_version=version,
        metric=cfg.metric,
        champion_points=points,
        champion_se=se,
        champion_age_batches=age,
        gain=gain.as_dict(),
    )
    log.info(
        "champion v%s (age %d batches): %s %.2f ± %.2f pts on %s (%d rows); a fresh probe "
        "scores %.2f → %s",
        version,
        age,
        cfg.metric,
        points,
        se,
        windows.holdout_batches,
        len(hold),
        probe_points,
        gain.basis,
    )
    return out


def run_clock(iso: str | None) -> dt.datetime:
    """The clock of a run is its batch's newest event; the wall clock when there is none."""
    return dt.datetime.fromisoformat(iso) if iso else dt.datetime.now(dt.UTC).replace(tzinfo=None)


def data_time(validated: dict[str, Any]) -> dt.datetime:
    return run_clock(validated.get("end"))


def estimate_cost(ctx: StepContext, validated: dict[str, Any]) -> dict[str, Any]:
    """What a retrain is expected to cost now, and what this month has spent already."""
    from costaware.costs import make_cost_source, make_price_source
    from costaware.costs.estimate import estimate_retrain_cost

    pol = ctx.cfg.cost_policy
    source = make_cost_source(pol.cost_source, ctx.ledger, pol.cost_source_options)
    prices = make_price_source(pol.price_source, ctx.ledger, pol.price_source_options)
    now = data_time(validated)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    try:
        est = estimate_retrain_cost(ctx.cfg, source, prices, now.date())
        month = source.costs(_tags(ctx), month_start.date(), now.date() + dt.timedelta(days=1))
    except CostSourceError as exc:
        # A new model has no spend under its tags yet (or the bill cannot be read): price
        # the retrain from the static prior and say so, rather than fail or assume $0.
        log.warning("cost source %s could not answer: %s", source.name, exc)
        fallback = make_cost_source("ledger", ctx.ledger)
        est = estimate_retrain_cost(ctx.cfg, fallback, prices, now.date())
        est = dataclasses.replace(est, basis=f"{est.basis} ({source.name}: {exc})")
        month = fallback.costs(_tags(ctx), month_start.date(), now.date() + dt.timedelta(days=1))
    spent = sum(r.usd for r in month)
    last = ctx.ledger.costs(model=ctx.model, purpose="retrain")
    hours = None
    if last:
        hours = (now - max(r["usage_date"] for r in last)).total_seconds() / 3600
    log.info(
        "retrain cost estimate for %s: $%.4f [%.4f, %.4f], %s — %s; spent this month $%.4f",
        ctx.model,
        est.usd,
        est.low,
        est.high,
        est.quality,
        est.basis,
        spent,
    )
    return {
        **est.as_dict(),
        "spent_this_month_usd": spent,
        "hours_since_last_retrain": hours,
        "data_time": now.isoformat(),
    }


def _tags(ctx: StepContext) -> dict[str, str]:
    t = ctx.cfg.tags
    return {"model": t.model, "team": t.team, "env": t.env}


def cost_checkpoint(
    ctx: StepContext,
    validated: dict[str, Any],
    drift: dict[str, Any],
    perf: dict[str, Any],
    cost: dict[str, Any],
    force: bool = False,
    dry_run: bool = False,
    max_usd_per_metric_point: float | None = None,
) -> dict[str, Any]:
    """The cost-per-gain checkpoint: decide, record the decision, log it as one table."""
    from costaware.policy import CheckpointInputs, decide

    gain = perf.get("gain") or {
        "points": 0.0,
        "low": 0.0,
        "high": 0.0,
        "basis": "no champion to measure",
    }
    inputs = CheckpointInputs(
        model=ctx.model,
        has_champion=perf.get("champion_version") is not None,
        labelled_rows=int(perf.get("train_rows", 0)),
        min_train_rows=ctx.cfg.training.min_train_rows,
        gain_points=float(gain["points"]),
        gain_low=float(gain["low"]),
        gain_high=float(gain["high"]),
        gain_basis=str(gain["basis"]),
        cost_usd=float(cost["usd"]),
        cost_quality=str(cost["quality"]),
        cost_source=str(cost["source"]),
        spent_this_month_usd=float(cost["spent_this_month_usd"]),
        hours_since_last_retrain=cost.get("hours_since_last_retrain"),
        drift_share=float(drift.get("drift_share", 0.0)),
        drifted_columns=tuple(drift.get("drifted_columns", [])),
        validation_status=validated["status"],
        force=force,
        dry_run=dry_run,
    )
    decision = decide(inputs, ctx.cfg.cost_policy, max_usd_per_metric_point)
    log.info(
        "cost checkpoint for %s, batch %s:\n%s", ctx.model, validated["batch_id"], decision.table()
    )
    details = {
        **decision.as_dict(),
        "gain": gain,
        "cost": cost,
        "force": force,
        "drift": {k: drift.get(k) for k in ("drift_share", "drifted_columns")},
        "champion_points": perf.get("champion_points"),
    }
    ctx.ledger.record_decision(
        model=ctx.model,
        run_id=ctx.run_id,
        batch_id=validated["batch_id"],
        action=decision.action,
        reason=decision.reason,
        details=details,
        dry_run=dry_run,
        outcome="dry_run" if dry_run else ("skipped" if decision.action == "skip" else None),
        data_time=data_time(validated),
    )
    return {
        "action": decision.action,
        "reason": decision.reason,
        "dry_run": dry_run,
        "train": decision.action == "retrain" and not dry_run,
        "windows": perf.get("windows"),
        "data_time": cost.get("data_time"),
    }
