"""Promotion or rejection of a challenger, and rollback; each with its audit row.

Each is one *operation*, identified by (model, run id, action): its audit row is written
first as ``pending`` with the versions it will move, then the registry's aliases move
(compare-and-set against the champion the operation was decided on, under the model's lock),
then the row becomes ``done``. A retry at any point finds the pending row and finishes the
same move; it never decides again, so a retried rollback cannot roll back twice.
"""

from __future__ import annotations

import logging
from typing import Any

from costaware import faults
from costaware.errors import ChampionMoved
from costaware.faults import step_points
from costaware.models.registry import POINTS_TAG
from costaware.steps.context import StepContext
from costaware.steps.spend import run_spend

log = logging.getLogger(__name__)
_EVALUATION_KEYS = (
    "metric",
    "champion_points",
    "challenger_points",
    "gain",
    "interval",
    "rows",
    "holdout_batches",
)


@step_points
def promote_or_reject(ctx: StepContext, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Move the aliases (or not) and write the audit row; safe to retry at any point."""
    version = str(evaluation["challenger_version"])
    expected = evaluation.get("champion_version")
    action = "promote" if evaluation["verdict"] == "promote" else "reject"
    op = ctx.ledger.operation(ctx.model, ctx.run_id, action)
    if op is None:
        ctx.ledger.record_audit(
            model=ctx.model,
            action=action,
            actor=ctx.actor,
            run_id=ctx.run_id,
            from_version=expected,
            to_version=version if action == "promote" else expected,
            metrics={k: evaluation.get(k) for k in _EVALUATION_KEYS},
            usd=run_spend(ctx.ledger, ctx.model, ctx.run_id)["usd"],
            reason=evaluation["reason"],
            data_time=ctx.clock,
            status="pending",
        )
    faults.point("promote_or_reject.intent_recorded")
    if action == "promote":
        try:
            with ctx.ledger.model_lock(ctx.model):
                ctx.registry.promote(ctx.model, version, expected)
        except ChampionMoved as exc:
            _abort(ctx, action, "stale", str(exc))
            raise
        faults.point("promote_or_reject.aliases_moved")
        ctx.registry.set_version_tag(
            ctx.model, version, POINTS_TAG, str(evaluation["challenger_points"])
        )
    ctx.ledger.finish_operation(ctx.model, ctx.run_id, action)
    faults.point("promote_or_reject.audited")
    _record_outcome(ctx, evaluation, "promoted" if action == "promote" else "rejected")
    log.info(
        "%s: %s v%s (champion was %s)%s",
        ctx.model,
        action.upper(),
        version,
        f"v{expected}" if expected else "none",
        "" if op is None else " — finishing the operation an earlier try recorded",
    )
    return {
        "action": action,
        "version": version,
        "previous_champion": expected,
        "champion": ctx.champion(),
    }


def _abort(ctx: StepContext, action: str, outcome: str, reason: str) -> None:
    """The operation could not be applied: say so in the audit trail and the decision."""
    ctx.ledger.finish_operation(ctx.model, ctx.run_id, action, status="aborted", reason=reason)
    ctx.ledger.set_outcome(ctx.model, ctx.run_id, outcome)


def _record_outcome(ctx: StepContext, evaluation: dict[str, Any], outcome: str) -> None:
    decision = ctx.ledger.decision(ctx.model, ctx.run_id)
    if decision is None:
        return
    details = dict(decision["details"] or {})
    if evaluation.get("gain") is not None:
        details["realized_gain"] = evaluation["gain"]
    details["evaluation"] = evaluation
    keep = ("model", "run_id", "batch_id", "action", "reason", "dry_run", "data_time")
    ctx.ledger.record_decision(**{k: decision[k] for k in keep}, details=details, outcome=outcome)


@step_points
def rollback(ctx: StepContext, to_version: str | None = None, reason: str = "") -> dict[str, Any]:
    """champion ← the previous champion (or a named version), with an audit row. The run id
    is the operation's id: a retry finishes the same rollback instead of doing another."""
    op = ctx.ledger.operation(ctx.model, ctx.run_id, "rollback")
    if op is not None and op["status"] == "done":
        return {"from": op["from_version"], "to": op["to_version"], "note": "already done"}
    if op is None:
        current, target = ctx.registry.rollback_target(ctx.model, to_version)
        ctx.ledger.record_audit(
            model=ctx.model,
            action="rollback",
            actor=ctx.actor,
            run_id=ctx.run_id,
            from_version=current,
            to_version=target,
            metrics={},
            usd=0.0,  # a rollback moves an alias; it trains nothing
            reason=reason or "manual rollback",
            data_time=ctx.clock,
            status="pending",
        )
    else:
        current, target = op["from_version"], op["to_version"]
    faults.point("rollback.intent_recorded")
    try:
        with ctx.ledger.model_lock(ctx.model):
            ctx.registry.move_champion(ctx.model, current, target)
    except ChampionMoved as exc:
        ctx.ledger.finish_operation(
            ctx.model, ctx.run_id, "rollback", status="aborted", reason=str(exc)
        )
        raise
    faults.point("rollback.aliases_moved")
    ctx.ledger.finish_operation(ctx.model, ctx.run_id, "rollback")
    log.info("%s: ROLLBACK champion v%s → v%s by %s", ctx.model, current, target, ctx.actor)
    return {"from": current, "to": target}
