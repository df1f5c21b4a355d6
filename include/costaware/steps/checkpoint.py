"""The cost of a retrain, and the cost-per-gain checkpoint that decides."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from costaware.errors import CostSourceError
from costaware.faults import step_points
from costaware.steps.context import StepContext, utc_naive

log = logging.getLogger(__name__)


def data_time(validated: dict[str, Any]) -> dt.datetime | None:
    """The batch's newest event (naive UTC): what the data is about, not when money moves."""
    end = validated.get("end")
    return utc_naive(dt.datetime.fromisoformat(end)) if end else None


@step_points
def estimate_cost(ctx: StepContext, validated: dict[str, Any]) -> dict[str, Any]:
    """What a retrain is expected to cost now, and what this month has spent already."""
    from costaware.costs import make_cost_source, make_price_source
    from costaware.costs.estimate import estimate_retrain_cost

    pol = ctx.cfg.cost_policy
    source = make_cost_source(pol.cost_source, ctx.ledger, pol.cost_source_options)
    prices = make_price_source(pol.price_source, ctx.ledger, pol.price_source_options)
    now = ctx.clock  # the run's clock, never the data's (README: One clock)
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
        "clock": now.isoformat(),
    }


def _tags(ctx: StepContext) -> dict[str, str]:
    t = ctx.cfg.tags
    return {"model": t.model, "team": t.team, "env": t.env}


@step_points
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
    from costaware.decide.policy import CheckpointInputs, decide

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
    }
