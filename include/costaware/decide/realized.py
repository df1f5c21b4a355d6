"""Realized return of retrains, and the correction it makes to the next expected gain. No I/O.

API (the DAG's steps and the benchmark call the same functions):

    BatchGain(batch_id, gain, se)
        one later labelled batch: the new champion's points minus the replaced model's points
        on the same rows (``se``: the paired comparison's sampling error, None when unknown).
    Outcome(run_id, expected, horizon, cost_usd, promoted, batches=())
        one retrain that went through the promotion gate. ``expected``: the estimator's gain
        Δ (metric points × batches) when the checkpoint decided, *before* any correction;
        ``horizon``: the batches Δ was counted over (``GainEstimate.horizon``, the best
        cycle); ``batches``: its ``BatchGain``s in event-time order. A rejected challenger
        changed nothing: its realized gain is exactly 0 and its cost was paid all the same.
    realized_gain(outcome) -> (points × batches, standard error) | None
        mean realized gain per batch over the first ``horizon`` later batches × ``horizon``
        (None while no later batch is labelled, or the horizon is unknown).
    summarize(outcomes) -> Realized
        the running ratio Σ realized / Σ expected, shrunk towards the prior, with its standard
        error, and the dollars per metric point expected and actually paid.
    correct(points, low, high, realized) -> Correction
        the next expected gain × the shrunk ratio, its interval widened by the ratio's error
        (unchanged while no retrain has been measured).
    checkpoint_gain(gain, realized_dict) -> dict
        the same from the steps' JSON (``GainEstimate.as_dict()``, ``Realized.as_dict()``):
        the gain fields of ``decide.policy.CheckpointInputs``.
    gated(run_id, gain, cost_usd, promoted, batches=()) -> Outcome
        the outcome of a retrain from its checkpoint's uncorrected ``gain`` JSON (what the
        DAG's decision row keeps); the backtest engine builds its outcomes with it.

The ratio is a precision-weighted mean of the prior and the data. Prior: ratio 1 ± 0.5 (the
estimator taken at its word, 95 % of the prior between 0 and 2 — a weakly informative choice
made before looking at any stream, not fitted). Each outcome's ratio counts with a variance
of at least the prior's (a "unit information" prior: the estimator's own claim weighs as
much as one measured retrain), more when its sampling error or the spread between outcomes
says so. So after n retrains that all realized nothing the ratio is 1 / (1 + n): a model
whose retrains never pay needs fewer and fewer of them to stop, and one that pays keeps the
estimator's gain. Weights are the expected gains (Σ realized / Σ expected), so a retrain
promised much counts for much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PRIOR_RATIO = 1.0  # no evidence: trust the estimator (chosen by principle, not on data)
PRIOR_SD = 0.5  # 95 % of the prior in [0, 2]; also each outcome's least variance (see above)
OUTCOMES_SHOWN = 50  # retrains listed in the step's summary (memo, report)


@dataclass(frozen=True)
class BatchGain:
    batch_id: str
    gain: float  # new champion − replaced model, metric points, on the same rows
    se: float | None = None


@dataclass(frozen=True)
class Outcome:
    run_id: str
    expected: float  # pt·batches, the estimator's Δ before correction
    horizon: int | None  # batches Δ was counted over
    cost_usd: float | None  # None: unknown (never counted as $0)
    promoted: bool
    batches: tuple[BatchGain, ...] = ()


def realized_gain(o: Outcome) -> tuple[float, float] | None:
    """(realized pt·batches over the outcome's horizon, its standard error), or None."""
    if not o.promoted:
        return 0.0, 0.0  # nothing changed: exactly no gain
    if not o.horizon or o.horizon < 1:
        return None
    used = [b for b in o.batches if math.isfinite(b.gain)][: o.horizon]
    if not used:
        return None
    n = len(used)
    mean = sum(b.gain for b in used) / n
    # The error of the mean: the per-batch sampling errors, or the spread between batches
    # when that is larger (it includes the sampling error and the new model's aging).
    known = [b.se for b in used if b.se is not None and math.isfinite(b.se)]
    sampling = math.sqrt(sum(e * e for e in known)) / len(known) if known else 0.0
    spread = math.sqrt(sum((b.gain - mean) ** 2 for b in used) / (n - 1) / n) if n > 1 else 0.0
    return mean * o.horizon, max(sampling, spread) * o.horizon


def gated(
    run_id: str,
    gain: dict[str, Any],
    cost_usd: float | None,
    promoted: bool,
    batches: tuple[BatchGain, ...] = (),
) -> Outcome:
    """A retrain that went through the gate, from the estimator's gain at its checkpoint
    (``GainEstimate.as_dict()``, before the correction; a checkpoint with no estimate
    promised nothing)."""
    return Outcome(
        run_id=run_id,
        expected=float(gain.get("points") or 0.0),
        horizon=gain.get("horizon"),
        cost_usd=cost_usd,
        promoted=promoted,
        batches=batches,
    )


@dataclass(frozen=True)
class Realized:
    ratio: float  # shrunk realized / expected: what the next expected gain is multiplied by
    ratio_se: float
    raw_ratio: float | None  # Σ realized / Σ expected, unshrunk (None: no outcome counted)
    counted: int  # outcomes in the ratio
    pending: int  # promotions with no later labelled batch yet (or an unknown horizon)
    expected_total: float  # pt·batches promised by the counted outcomes
    realized_total: float  # pt·batches they delivered
    cost_total: float | None  # $ of the counted outcomes (None: some cost unknown)
    prior: tuple[float, float] = (PRIOR_RATIO, PRIOR_SD)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def usd_per_point_expected(self) -> float | None:
        return _per_point(self.cost_total, self.expected_total)

    @property
    def usd_per_point_paid(self) -> float | None:
        return _per_point(self.cost_total, self.realized_total)

    def text(self) -> str:
        """One line for the decision memo."""
        if not self.counted:
            return (
                f"no retrain measured yet ({self.pending} pending): ratio = prior "
                f"{self.prior[0]:g} ± {self.prior[1]:g}"
            )
        paid = self.usd_per_point_paid
        paid_text = (
            "unknown (a cost is unknown)"
            if self.cost_total is None
            else ("∞ (no point bought)" if paid is None or math.isinf(paid) else f"${paid:.4f}")
        )
        return (
            f"{self.counted} retrain(s) measured ({self.pending} pending): realized "
            f"{self.realized_total:.2f} of {self.expected_total:.2f} expected pt·batches "
            f"(raw ratio {self.raw_ratio:.2f}; prior {self.prior[0]:g} ± {self.prior[1]:g}); "
            f"$ per pt·batch paid {paid_text}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ratio": round(self.ratio, 4),
            "ratio_se": round(self.ratio_se, 4),
            "raw_ratio": None if self.raw_ratio is None else round(self.raw_ratio, 4),
            "counted": self.counted,
            "pending": self.pending,
            "expected_total": round(self.expected_total, 4),
            "realized_total": round(self.realized_total, 4),
            "cost_total": _round(self.cost_total),
            "usd_per_point_expected": _round(self.usd_per_point_expected),
            "usd_per_point_paid": _round(self.usd_per_point_paid),
            "prior": list(self.prior),
            "text": self.text(),
            # The newest ones (the ledger keeps them all): the JSON stays small in XCom.
            "outcomes": self.outcomes[-OUTCOMES_SHOWN:],
            "outcomes_total": len(self.outcomes),
        }


def _per_point(usd: float | None, points: float) -> float | None:
    if usd is None:
        return None
    return usd / points if points > 0 else math.inf


def _round(v: float | None) -> float | str | None:
    """Six significant digits (dollars per point can be a few millionths); no point bought
    is "inf" (as the ledger stores it: XCom and PostgreSQL's JSON take finite numbers only)."""
    return None if v is None else ("inf" if math.isinf(v) else float(f"{v:.6g}"))


def summarize(
    outcomes: list[Outcome], prior: float = PRIOR_RATIO, prior_sd: float = PRIOR_SD
) -> Realized:
    """The running realized / expected ratio over ``outcomes``, shrunk towards ``prior``."""
    if prior_sd <= 0:
        raise ValueError(f"prior_sd must be > 0; got {prior_sd!r}")
    rows: list[dict[str, Any]] = []
    used: list[tuple[float, float, float]] = []  # (expected, realized, se)
    costs: list[float | None] = []
    pending = 0
    for o in outcomes:
        got = realized_gain(o)
        row = {
            "run_id": o.run_id,
            "promoted": o.promoted,
            "expected": round(o.expected, 4),
            "horizon": o.horizon,
            "batches": len(o.batches),
            "realized": None if got is None else round(got[0], 4),
            "realized_se": None if got is None else round(got[1], 4),
            "cost_usd": o.cost_usd,
            "usd_per_point_paid": None if got is None else _round(_per_point(o.cost_usd, got[0])),
        }
        rows.append(row)
        if got is None:
            pending += 1
            continue
        if o.expected <= 0:  # nothing was promised (a forced retrain): no ratio to learn
            row["note"] = "not counted: no gain was expected"
            continue
        used.append((o.expected, got[0], got[1]))
        costs.append(o.cost_usd)
    if not used:
        return Realized(prior, prior_sd, None, 0, pending, 0.0, 0.0, None, (prior, prior_sd), rows)
    e_total = sum(e for e, _, _ in used)
    g_total = sum(g for _, g, _ in used)
    raw = g_total / e_total
    n = len(used)
    spread = (
        sum(e / e_total * (g / e - raw) ** 2 for e, g, _ in used) * n / (n - 1) if n > 1 else 0.0
    )
    var = sum((e / e_total) ** 2 * max(prior_sd**2, spread, (s / e) ** 2) for e, _, s in used)
    precision = 1 / prior_sd**2 + 1 / var
    ratio = (prior / prior_sd**2 + raw / var) / precision
    cost_total = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
    return Realized(
        ratio=ratio,
        ratio_se=1 / math.sqrt(precision),
        raw_ratio=raw,
        counted=n,
        pending=pending,
        expected_total=e_total,
        realized_total=g_total,
        cost_total=cost_total,
        prior=(prior, prior_sd),
        outcomes=rows,
    )


@dataclass(frozen=True)
class Correction:
    points: float  # corrected expected gain (pt·batches), ≥ 0
    low: float
    high: float
    raw_points: float  # the estimator's gain before correction
    ratio: float
    ratio_se: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def correct(points: float, low: float, high: float, realized: Realized) -> Correction:
    """The estimator's gain scaled by the shrunk realized ratio (never below 0); the interval
    takes the ratio's standard error on top of the estimator's own. Unchanged while no
    retrain has been measured."""
    return _scale(points, low, high, realized.ratio, realized.ratio_se, realized.counted)


def _scale(points: float, low: float, high: float, r: float, se: float, counted: int) -> Correction:
    if not counted:  # no evidence yet: the estimator's gain and interval as they are
        return Correction(points, low, high, points, r, se)
    return Correction(
        points=max(0.0, r) * points,
        low=max(0.0, r - se) * low,
        high=max(0.0, r + se) * high,
        raw_points=points,
        ratio=r,
        ratio_se=se,
    )


def checkpoint_gain(gain: dict[str, Any], realized: dict[str, Any] | None) -> dict[str, Any]:
    """``CheckpointInputs``' gain fields from ``measure_performance``'s ``gain`` and
    ``realized`` (``Realized.as_dict()``; None when there is no champion to measure)."""
    points, low, high = float(gain["points"]), float(gain["low"]), float(gain["high"])
    if not realized:
        return {"gain_points": points, "gain_low": low, "gain_high": high}
    c = _scale(
        points, low, high, realized["ratio"], realized["ratio_se"], realized.get("counted") or 0
    )
    return {
        "gain_points": c.points,
        "gain_low": c.low,
        "gain_high": c.high,
        "raw_gain_points": points,
        "realized_ratio": c.ratio,
        "realized_ratio_se": c.ratio_se,
        "realized_text": str(realized.get("text", "")),
    }
