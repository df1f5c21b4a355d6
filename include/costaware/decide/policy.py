"""The cost-per-performance-gain checkpoint: a pure function, no I/O.

    retrain  when cost / gain ≤ max_usd_per_point_batch, cost ≤ budget left, cooldown passed
             and cost ≤ auto_approve_usd;
    approve  when it would retrain but the cost is above auto_approve_usd or the budget left;
    skip     otherwise.

Every decision carries its reasons in words and every number and threshold that decided it.
Gain is in points of the model's metric (``config.METRIC_SPECS``: more points are better for
every metric, so a lower RMSE is a positive gain); the table says what a point is.

Unknown is not zero: this month's spend arrives as the known dollars plus a count of charges
whose amount is unknown, and each unknown one is counted at ``unknown_each_usd`` (the caller's
upper bound for one retrain) against the budget. A cost estimate that comes from a fallback
(the configured source refused) is shown first in the table, in the source's own words.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from costaware.config import METRIC_SPECS, CostPolicy

Action = Literal["retrain", "skip", "approve"]


@dataclass(frozen=True)
class CheckpointInputs:
    model: str
    has_champion: bool
    labelled_rows: int
    min_train_rows: int
    gain_points: float
    gain_low: float
    gain_high: float
    gain_basis: str
    cost_usd: float
    cost_quality: str
    cost_source: str
    spent_this_month_usd: float  # the known part
    hours_since_last_retrain: float | None
    spent_unknown: int = 0  # charges this month whose amount is unknown
    unknown_each_usd: float = 0.0  # what each unknown one is counted at against the budget
    cost_fallback: str | None = None  # "FALLBACK: ledger prior — aws: <its words>"
    drift_share: float = 0.0
    drifted_columns: tuple[str, ...] = ()
    validation_status: str = "pass"
    force: bool = False
    dry_run: bool = False
    metric: str = ""  # the model's metric: says what a point of gain is
    # Realized return (decide/realized.py): gain_points above is the estimator's gain × the
    # shrunk realized / expected ratio of past retrains; None while not corrected.
    raw_gain_points: float | None = None  # the estimator's gain before the correction
    realized_ratio: float | None = None
    realized_ratio_se: float | None = None
    realized_text: str = ""  # what the ratio rests on, and the $ per point actually paid


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    reasons: list[str]
    numbers: dict[str, Any]
    thresholds: dict[str, Any]
    dry_run: bool = False
    checks: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "reasons": self.reasons,
            "numbers": self.numbers,
            "thresholds": self.thresholds,
            "checks": self.checks,
            "dry_run": self.dry_run,
        }

    def table(self) -> str:
        """One readable block for the task log."""
        rows = [
            (
                "decision",
                self.action.upper() + ("  (dry run: nothing trained)" if self.dry_run else ""),
            )
        ]
        rows.append(("why", self.reason))
        rows += [(k, _fmt(v)) for k, v in self.numbers.items()]
        rows += [(f"threshold {k}", _fmt(v)) for k, v in self.thresholds.items()]
        rows += [(f"check {k}", "ok" if v else "FAILED") for k, v in self.checks.items()]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def point_text(metric: str) -> str:
    """What one point of ``metric`` is, and that more points are better whatever the metric."""
    spec = METRIC_SPECS[metric]
    unit = "one unit of the target" if spec.scale == 1 else f"1/{spec.scale:g} of {metric}"
    way = "" if spec.higher_is_better else f"; lower {metric} is more points"
    return f"{metric}: 1 point = {unit}{way}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
    return str(v)


def decide(
    inputs: CheckpointInputs,
    policy: CostPolicy,
    max_usd_per_point_batch: float | None = None,
    *,
    max_usd_per_metric_point: float | None = None,
) -> Decision:
    """Retrain, skip or ask for approval — with the reasons and every number used.

    ``max_usd_per_point_batch`` overrides the policy's limit for this decision;
    ``max_usd_per_metric_point`` is its deprecated name."""
    i = inputs
    if max_usd_per_metric_point is not None:
        warnings.warn(
            "decide(max_usd_per_metric_point=...) is deprecated; use max_usd_per_point_batch",
            DeprecationWarning,
            stacklevel=2,
        )
        max_usd_per_point_batch = max_usd_per_point_batch or max_usd_per_metric_point
    max_per_point = max_usd_per_point_batch or policy.max_usd_per_point_batch
    of = f" of {i.metric}" if i.metric else ""  # gain is in points of the model's metric
    # Conservative: an unknown charge counts at the most a retrain is expected to cost.
    unknown_usd = i.spent_unknown * i.unknown_each_usd
    budget_left = policy.monthly_budget_usd - i.spent_this_month_usd - unknown_usd
    usd_per_point = i.cost_usd / i.gain_points if i.gain_points > 0 else math.inf
    unknown_note = (
        f"{i.spent_unknown} charge(s) of unknown amount counted at ${i.unknown_each_usd:.4f} each"
        if i.spent_unknown
        else ""
    )
    numbers: dict[str, Any] = {}
    if i.cost_fallback:
        numbers["cost estimate"] = i.cost_fallback
    if i.metric:
        numbers["metric"] = point_text(i.metric)
    numbers |= {
        "expected gain (pt·batches)": round(i.gain_points, 3),
        "gain interval (pt·batches)": f"[{i.gain_low:.2f}, {i.gain_high:.2f}]",
        "gain basis": i.gain_basis,
        "expected cost ($)": round(i.cost_usd, 4),
        "cost quality": f"{i.cost_quality} ({i.cost_source})",
        "$ per pt·batch": usd_per_point,
        "spent this month ($)": (
            f"{i.spent_this_month_usd:.4f} + {unknown_note}"
            if i.spent_unknown
            else round(i.spent_this_month_usd, 4)
        ),
        "budget left this month ($)": round(budget_left, 4),
        "hours since last retrain": (
            None if i.hours_since_last_retrain is None else round(i.hours_since_last_retrain, 1)
        ),
        "validation": i.validation_status,
        "drift share": round(i.drift_share, 3),
        "drifted columns": ", ".join(i.drifted_columns) or "none",
        "labelled rows": i.labelled_rows,
    }
    if i.realized_ratio is not None:
        numbers |= {
            "estimator's gain before realized correction (pt·batches)": i.raw_gain_points,
            "realized / expected ratio (shrunk)": (
                f"{i.realized_ratio:.2f} ± {i.realized_ratio_se or 0.0:.2f}"
            ),
            "realized return": i.realized_text,
        }
    thresholds: dict[str, Any] = {
        "max_usd_per_point_batch": max_per_point,
        "auto_approve_usd": policy.auto_approve_usd,
        "monthly_budget_usd": policy.monthly_budget_usd,
        "cooldown_hours": policy.cooldown_hours,
        "min_expected_gain_points": policy.min_expected_gain_points,
        "min_train_rows": i.min_train_rows,
    }
    cooldown_ok = (
        i.hours_since_last_retrain is None or i.hours_since_last_retrain >= policy.cooldown_hours
    )
    checks = {
        "enough labelled rows": i.labelled_rows >= i.min_train_rows,
        "cooldown passed": cooldown_ok,
        "gain above minimum": i.gain_points >= policy.min_expected_gain_points,
        "cost per pt·batch within limit": usd_per_point <= max_per_point,
        "within budget": i.cost_usd <= budget_left,
        "within auto-approve limit": i.cost_usd <= policy.auto_approve_usd,
    }

    def out(action: Action, reason: str, reasons: list[str]) -> Decision:
        return Decision(action, reason, reasons, numbers, thresholds, i.dry_run, checks)

    if not checks["enough labelled rows"]:
        return out(
            "skip",
            f"waiting for labels: {i.labelled_rows} labelled rows, "
            f"{i.min_train_rows} needed to train",
            [],
        )
    if i.force:
        return out(
            "retrain",
            "forced by the run's `force` parameter (checkpoint overridden)",
            ["force=true"],
        )
    if not i.has_champion:
        return out("retrain", "no champion yet: train the first model", [])

    failed = []
    if not cooldown_ok:
        failed.append(
            f"cooldown: last retrain {i.hours_since_last_retrain:.0f} h ago "
            f"< {policy.cooldown_hours:g} h"
        )
    if not checks["gain above minimum"]:
        failed.append(
            f"expected gain {i.gain_points:.2f} pt·batches{of} < minimum "
            f"{policy.min_expected_gain_points:g}"
        )
    elif not checks["cost per pt·batch within limit"]:
        failed.append(
            f"${usd_per_point:.4f} per pt·batch{of} > limit ${max_per_point:g} per pt·batch"
        )
    if failed:
        return out("skip", "; ".join(failed), failed)

    needs = []
    if not checks["within budget"]:
        needs.append(
            f"cost ${i.cost_usd:.4f} exceeds the ${budget_left:.4f} left of this "
            f"month's ${policy.monthly_budget_usd:g} budget"
            + (
                f" (spend so far: ${i.spent_this_month_usd:.4f} + {unknown_note})"
                if i.spent_unknown
                else ""
            )
        )
    if not checks["within auto-approve limit"]:
        needs.append(
            f"cost ${i.cost_usd:.4f} above the auto-approve limit ${policy.auto_approve_usd:g}"
        )
    if needs:
        return out("approve", "worth it, but needs a person's approval: " + "; ".join(needs), needs)
    return out(
        "retrain",
        f"expected gain {i.gain_points:.2f} pt·batches{of} for ${i.cost_usd:.4f} = "
        f"${usd_per_point:.4f} per pt·batch ≤ ${max_per_point:g}",
        [],
    )
