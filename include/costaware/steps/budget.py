"""The checkpoint's shared-budget hook (README, "A budget shared by several models"): post this
run to the budget's window in the ledger, wait for the window to close, and keep a retrain only
if the budget funds it (the ranking is ``decide/shared_budget.py``'s)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from costaware.decide.policy import CheckpointInputs, Decision
from costaware.steps.context import StepContext, now_utc

log = logging.getLogger(__name__)
# How often a waiting checkpoint looks again. A minute is nothing next to a scheduling window
# and costs one small query per waiting run; not tuned on any data.
POKE_SECONDS = 60


@dataclass(frozen=True)
class BudgetAnswer:
    """The decision as the shared budget leaves it; ``wait_until``: the window is still open,
    ask again then (nothing is decided nor recorded yet besides the run's post)."""

    decision: Decision
    wait_until: dt.datetime | None = None
    waiting_for: tuple[str, ...] = ()


def _month_spend(ctx: StepContext, models: list[str], cost: dict[str, Any]) -> float:
    """This month's retrain spend of every model of the budget, read as the checkpoint reads
    its own (``retrain_cost_now``: the model's cost source, its fallback): an unknown charge is
    counted at the most that model's retrain is expected to cost, never as $0."""
    from costaware.config import get_model
    from costaware.costs.estimate import retrain_cost_now

    total = float(cost["spent_this_month_usd"])
    total += int(cost.get("spent_this_month_unknown") or 0) * float(cost["unknown_each_usd"])
    for name in models:
        if name == ctx.model:
            continue
        cfg = get_model(ctx.settings.models_dir, name)
        answer = retrain_cost_now(cfg, ctx.ledger, ctx.clock.date())
        total += answer.month.known_usd + answer.month.unknown * answer.estimate.high
    return total


def shared_budget(
    ctx: StepContext,
    decision: Decision,
    inputs: CheckpointInputs,
    cost: dict[str, Any],
    now: dt.datetime | None = None,
) -> BudgetAnswer:
    """For a model in a shared budget: post this run (a candidate when its own policy says
    retrain — not a forced run nor a first training —, else a pass), then either wait for the
    window to close or return the decision as the budget leaves it: funded, or a skip saying
    who outbid it and by how much. The allocation runs once, under the budget's lock, and is
    recorded for every pending candidate of the window, so each run reads the same verdict;
    a retry reads its recorded verdict. A dry run posts nothing and waits for nobody: it is
    shown the verdict it would get if the window closed now. ``now``: the wall clock, for the
    wait (the budget month and the window follow the run's clock)."""
    from costaware.config import load_budgets
    from costaware.decide.shared_budget import UNDECIDED, window_closed, window_key
    from costaware.store.ledger import budget_window, record_budget_candidate

    found = load_budgets(ctx.settings.models_dir).of(ctx.model)
    if found is None:
        return BudgetAnswer(decision)
    name, budget = found
    window = window_key(ctx.clock, budget.window)
    wants = decision.action == "retrain" and not inputs.force and inputs.has_champion
    now = now or now_utc()
    post = {
        "budget": name,
        "window_key": window,
        "model": ctx.model,
        "run_id": ctx.run_id,
        "gain_points": inputs.gain_points,
        "cost_usd": inputs.cost_usd,
        "limit_usd": float(decision.thresholds["max_usd_per_point_batch"]),
        "metric": inputs.metric,
        "created_at": now,
    }
    with ctx.ledger.model_lock(f"budget-{name}"):
        rows = budget_window(ctx.ledger, name, window)
        mine = [r for r in rows if r["model"] == ctx.model and r["run_id"] == ctx.run_id]
        if not wants:
            if not mine and not inputs.dry_run:
                why = f"no retrain asked: {decision.action} ({decision.reason})"
                record_budget_candidate(ctx.ledger, **post, verdict="pass", reason=why)
            return BudgetAnswer(decision)
        if mine and mine[0]["verdict"] not in UNDECIDED:
            verdict, why = mine[0]["verdict"], mine[0]["reason"]
        else:
            if not mine:
                mine = [{**post, "verdict": "pending", "reason": "waiting for the window"}]
                rows = [*rows, *mine]
                if not inputs.dry_run:
                    record_budget_candidate(ctx.ledger, **mine[0])
            first = min(r["created_at"] for r in rows)
            posted = {r["model"] for r in rows}
            closed = window_closed(posted, budget.models, first, now, budget.wait_minutes)
            if not closed and not inputs.dry_run:
                until = min(
                    first + dt.timedelta(minutes=budget.wait_minutes),
                    now + dt.timedelta(seconds=POKE_SECONDS),
                )
                missing = tuple(m for m in budget.models if m not in posted)
                return BudgetAnswer(decision, until, missing)
            verdict, why = _allocate(ctx, name, budget, window, rows, cost, inputs.dry_run)
    log.info("shared budget %s, window %s: %s for %s — %s", name, window, verdict, ctx.model, why)
    numbers = {**decision.numbers, f"shared budget {name} ({window})": f"{verdict}: {why}"}
    thresholds = {
        **decision.thresholds,
        "shared budget": f"{name}: ${budget.monthly_usd:g}/month for {', '.join(budget.models)}",
    }
    checks = {**decision.checks, "funded by the shared budget": verdict == "funded"}
    if verdict == "funded":
        return BudgetAnswer(
            dataclasses.replace(decision, numbers=numbers, thresholds=thresholds, checks=checks)
        )
    skip = dataclasses.replace(
        decision,
        action="skip",
        reason=why,
        reasons=[why],
        numbers=numbers,
        thresholds=thresholds,
        checks=checks,
    )
    return BudgetAnswer(skip)


def _allocate(
    ctx: StepContext,
    name: str,
    budget: Any,
    window: str,
    rows: list[dict[str, Any]],
    cost: dict[str, Any],
    dry_run: bool,
) -> tuple[str, str]:
    """Rank the closed window (``allocate``), record every pending verdict, return this run's."""
    from costaware.decide.shared_budget import UNDECIDED, Candidate, allocate
    from costaware.store.ledger import record_budget_candidate

    candidates = [
        Candidate(
            r["model"],
            r["run_id"],
            r["gain_points"],
            r["cost_usd"],
            r["limit_usd"],
            r["metric"],
            seq,
            r["verdict"],
            # Its retrain's cost is recorded: it is in the spend, no longer reserved.
            settled=r["verdict"] == "funded"
            and bool(ctx.ledger.run_costs(r["model"], r["run_id"])),
        )
        for seq, r in enumerate(rows)
    ]
    spent = _month_spend(ctx, budget.models, cost)
    alloc = allocate(name, window, budget.monthly_usd, spent, candidates)
    verdicts = alloc.verdicts()
    if not dry_run:
        for r in rows:
            if r["verdict"] in UNDECIDED:
                v, why = verdicts[f"{r['model']}/{r['run_id']}"]
                record_budget_candidate(
                    ctx.ledger,
                    budget=name,
                    model=r["model"],
                    run_id=r["run_id"],
                    verdict=v,
                    reason=why,
                )
    return verdicts[f"{ctx.model}/{ctx.run_id}"]
