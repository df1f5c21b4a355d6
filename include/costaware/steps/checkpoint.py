"""The cost of a retrain, and the cost-per-gain checkpoint that decides."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from costaware.faults import step_points
from costaware.steps.context import StepContext, utc_naive

log = logging.getLogger(__name__)


def data_time(validated: dict[str, Any]) -> dt.datetime | None:
    """The batch's newest event (naive UTC): what the data is about, not when money moves."""
    end = validated.get("end")
    return utc_naive(dt.datetime.fromisoformat(end)) if end else None


@step_points
def estimate_cost(ctx: StepContext, validated: dict[str, Any]) -> dict[str, Any]:
    """What a retrain is expected to cost now, and what this month has spent already.

    A source that refuses is never hidden: the estimate then says ``fallback`` and why (or,
    with ``cost_policy.on_source_error: fail``, the task fails with a ``CostSourceError``).
    Spend of unknown amount is carried as a count, never as $0."""
    from costaware.costs.estimate import retrain_cost_now
    from costaware.steps.cloud_training import placement_for

    now = ctx.clock  # the run's clock, never the data's (README: One clock)
    answer = retrain_cost_now(ctx.cfg, ctx.ledger, now.date())
    est, month = answer.estimate, answer.month
    if est.fallback:
        log.warning("cost estimate for %s is a %s", ctx.model, est.fallback_text())
    last = ctx.ledger.costs(model=ctx.model, purpose="retrain")
    hours = None
    if last:
        hours = (now - max(r["usage_date"] for r in last)).total_seconds() / 3600
    log.info(
        "retrain cost estimate for %s: $%.4f [%.4f, %.4f], %s — %s; spent this month %s (%s)",
        ctx.model,
        est.usd,
        est.low,
        est.high,
        est.quality,
        est.basis,
        month.text(),
        answer.month_source,
    )
    return {
        **est.as_dict(),
        "fallback_text": est.fallback_text(),
        "spent_this_month_usd": month.known_usd,
        "spent_this_month_unknown": month.unknown,
        "spent_this_month_text": month.text(),
        # An unknown charge is counted against the budget at the most a retrain is expected
        # to cost: conservative, and stated in the decision.
        "unknown_each_usd": est.high,
        "hours_since_last_retrain": hours,
        "clock": now.isoformat(),
        # Where a cloud spot job would run and why (None: the YAML leaves no choice).
        "placement": placement_for(ctx),
    }


@step_points
def cost_checkpoint(
    ctx: StepContext,
    validated: dict[str, Any],
    drift: dict[str, Any],
    perf: dict[str, Any],
    cost: dict[str, Any],
    force: bool = False,
    dry_run: bool = False,
    max_usd_per_point_batch: float | None = None,
) -> dict[str, Any]:
    """The cost-per-gain checkpoint: decide, record the decision, log it as one table."""
    from costaware.decide.policy import CheckpointInputs, decide
    from costaware.decide.realized import checkpoint_gain

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
        # The estimator's gain × the realized / expected ratio of past retrains.
        **checkpoint_gain(gain, perf.get("realized")),
        gain_basis=str(gain["basis"]),
        cost_usd=float(cost["usd"]),
        cost_quality=str(cost["quality"]),
        cost_source=str(cost["source"]),
        spent_this_month_usd=float(cost["spent_this_month_usd"]),
        hours_since_last_retrain=cost.get("hours_since_last_retrain"),
        spent_unknown=int(cost.get("spent_this_month_unknown") or 0),
        unknown_each_usd=float(cost.get("unknown_each_usd") or 0.0),
        cost_fallback=cost.get("fallback_text"),
        drift_share=float(drift.get("drift_share", 0.0)),
        drifted_columns=tuple(drift.get("drifted_columns", [])),
        validation_status=validated["status"],
        force=force,
        dry_run=dry_run,
        metric=ctx.cfg.metric,
    )
    decision = decide(inputs, ctx.cfg.cost_policy, max_usd_per_point_batch)
    # A model in a shared budget (budgets.yaml) retrains only if the budget funds it; while
    # the budget's window is open nothing is recorded and the task asks to be rescheduled.
    from costaware.steps.budget import shared_budget

    shared = shared_budget(ctx, decision, inputs, cost)
    if shared.wait_until is not None:
        why = f"waiting for {', '.join(shared.waiting_for)} to post to the shared budget"
        log.info("cost checkpoint for %s: %s, until %s at most", ctx.model, why, shared.wait_until)
        return {"action": "wait", "reason": why, "wait_until": shared.wait_until.isoformat()}
    decision = shared.decision
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
        "realized": perf.get("realized"),  # expected vs realized of past retrains
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
