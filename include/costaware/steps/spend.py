"""The ledger side of a retrain's cost: the cost-allocation tags of its job and cost rows,
one cost row per training attempt (any backend), and what a run spent so far."""

from __future__ import annotations

from typing import Any


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


def job_recorder(
    ctx: Any, job_id: str, instance_type: str, price_source: str, tags: dict[str, str]
) -> Any:
    """``attempt_recorder`` for a training job of the step's run (its model, run id, clock)."""
    return attempt_recorder(
        ctx.ledger,
        model=ctx.model,
        run_id=ctx.run_id,
        usage_date=ctx.clock,
        prefix=f"{job_id}/",
        instance_type=instance_type,
        price_source=price_source,
        tags=tags,
    )


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
