"""Promotion or rejection of a challenger, and rollback; each with its audit row."""

from __future__ import annotations

import logging
from typing import Any

from costaware.faults import step_points
from costaware.models.registry import POINTS_TAG
from costaware.steps.context import StepContext

log = logging.getLogger(__name__)


@step_points
def promote_or_reject(
    ctx: StepContext, evaluation: dict[str, Any], usd: float, usage_time: str | None
) -> dict[str, Any]:
    """Move the aliases (or not) and write the audit row; safe to retry."""
    version = evaluation["challenger_version"]
    action = "promote" if evaluation["verdict"] == "promote" else "reject"
    old = ctx.registry.alias(ctx.model, "champion")
    if action == "promote":
        prev = ctx.registry.promote(ctx.model, version)
        ctx.registry.set_version_tag(
            ctx.model, version, POINTS_TAG, str(evaluation["challenger_points"])
        )
        from_v = prev if prev != version else None
    else:
        from_v = old
    when = ctx.clock
    metrics = {
        k: evaluation.get(k)
        for k in (
            "metric",
            "champion_points",
            "challenger_points",
            "gain",
            "interval",
            "rows",
            "holdout_batches",
        )
    }
    recorded = ctx.ledger.record_audit(
        model=ctx.model,
        action=action,
        actor=ctx.actor,
        run_id=ctx.run_id,
        from_version=from_v,
        to_version=version if action == "promote" else from_v,
        metrics=metrics,
        usd=usd,
        reason=evaluation["reason"],
        data_time=when,
    )
    decision = ctx.ledger.decision(ctx.model, ctx.run_id)
    if decision is not None:
        details = dict(decision["details"] or {})
        if evaluation.get("gain") is not None:
            details["realized_gain"] = evaluation["gain"]
        details["evaluation"] = evaluation
        ctx.ledger.record_decision(
            **{
                **{
                    k: decision[k]
                    for k in (
                        "model",
                        "run_id",
                        "batch_id",
                        "action",
                        "reason",
                        "dry_run",
                        "data_time",
                    )
                },
                "details": details,
                "outcome": "promoted" if action == "promote" else "rejected",
            }
        )
    log.info(
        "%s: %s v%s (champion was v%s)%s",
        ctx.model,
        action.upper(),
        version,
        old,
        "" if recorded else " — already recorded by an earlier try",
    )
    return {
        "action": action,
        "version": version,
        "previous_champion": old,
        "champion": ctx.registry.alias(ctx.model, "champion"),
    }


@step_points
def rollback(ctx: StepContext, to_version: str | None = None, reason: str = "") -> dict[str, Any]:
    """champion ← the previous champion (or a named version), with an audit row."""
    if any(
        a["run_id"] == ctx.run_id and a["action"] == "rollback" for a in ctx.ledger.audit(ctx.model)
    ):  # a retried task: move nothing twice
        current = ctx.registry.alias(ctx.model, "champion")
        return {"from": None, "to": current, "note": "already rolled back by this run"}
    old, new = ctx.registry.rollback(ctx.model, to_version)
    ctx.ledger.record_audit(
        model=ctx.model,
        action="rollback",
        actor=ctx.actor,
        run_id=ctx.run_id,
        from_version=old,
        to_version=new,
        metrics={},
        usd=0.0,
        reason=reason or "manual rollback",
    )
    log.info("%s: ROLLBACK champion v%s → v%s by %s", ctx.model, old, new, ctx.actor)
    return {"from": old, "to": new}
