"""The champion/challenger verdict: a pure function of the labels and two models' scores.

``judge`` says *promote* only when every guardrail passes and the challenger beats the
champion by ``min_gain_points`` with its paired bootstrap interval above zero (a first model:
beats the constant base-rate predictor). A degenerate evaluation is a *reject* with the
failed guardrails named in the reason:

* too few held-out rows (``EvaluationSpec.min_rows``), or (classification) one class only;
* a NaN or ±inf score on either side, or (accuracy, log loss, macro F1) a score outside
  [0, 1];
* a metric that comes out undefined on either side;
* a challenger whose scores equal the champion's;
* a bootstrap whose resamples are mostly undefined (a rare class left out of most of them);
* a challenger no better than the constant base-rate predictor (ROC AUC 50; accuracy the
  majority-class rate; log loss of predicting the window's class shares for every row;
  regression: predicting the window's mean, R² 0 and RMSE the target's spread).

Every metric of ``config.METRIC_SPECS`` and every target kind (binary, multiclass,
regression): comparisons are on points, higher is better whatever the metric's direction
(a lower RMSE is more points), and the result also gives each side in the metric's unit.

No I/O. Every number in the result is finite or ``None`` (unknown), never NaN: NaN compares
False, so a NaN must not get anywhere near "wins", nor into a JSON column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from costaware.config import METRIC_SPECS, METRICS, EvaluationSpec
from costaware.decide.performance import (
    PROBABILITY_METRICS,
    is_classification,
    metric_points,
    metric_value,
    paired_bootstrap,
)

# The bootstrap interval is computed from the defined resamples only, i.e. conditioned on
# both classes being drawn; when more than a tenth are dropped that conditioning biases it.
# A class with k rows is missing from a resample with probability ≈ e^-k, so this asks for a
# minority class of about 3 rows or more, whatever the window size.
MIN_DEFINED_SHARE = 0.9

Outcome = Literal["promote", "reject"]


@dataclass(frozen=True)
class Verdict:
    """Promote or reject, why in words, the guardrails (name → passed) and every number and
    threshold that decided it. Points are "higher is better" (log loss is negated)."""

    verdict: Outcome
    reason: str
    metric: str
    rows: int
    guardrails: dict[str, bool]
    challenger_points: float | None
    champion_points: float | None
    chance_points: float | None
    gain: float | None
    interval: tuple[float, float] | None
    confidence: float
    resamples_defined: int | None
    resamples_drawn: int | None
    thresholds: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, the keys the promote step and the report read (thresholds at top level)."""
        return {
            "rows": self.rows,
            "metric": self.metric,
            "higher_is_better": METRIC_SPECS[self.metric].higher_is_better,
            **self.thresholds,
            "challenger_points": self.challenger_points,
            "champion_points": self.champion_points,
            "challenger_value": metric_value(self.challenger_points, self.metric),
            "champion_value": metric_value(self.champion_points, self.metric),
            "chance_points": self.chance_points,
            "gain": self.gain,
            "interval": None if self.interval is None else list(self.interval),
            "confidence": self.confidence,
            "resamples_defined": self.resamples_defined,
            "resamples_drawn": self.resamples_drawn,
            "guardrails": dict(self.guardrails),
            "verdict": self.verdict,
            "reason": self.reason,
        }

    def table(self) -> str:
        """One readable block for the task log."""
        rows: list[tuple[str, Any]] = [("verdict", self.verdict.upper()), ("why", self.reason)]
        rows += [
            (k, v)
            for k, v in self.as_dict().items()
            if k not in ("verdict", "reason", "guardrails")
        ]
        rows += [(f"check {k}", "ok" if v else "FAILED") for k, v in self.guardrails.items()]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"  {k.ljust(width)}  {_fmt(v)}" for k, v in rows)


def judge(
    y: Any,
    champion_scores: Any | None,
    challenger_scores: Any,
    metric: str,
    spec: EvaluationSpec,
) -> Verdict:
    """Champion (``None``: there is none) vs challenger on the same held-out rows.

    Binary: ``y`` holds 0/1 labels, the scores one probability of the positive class per
    row. Multiclass: class indices, an (n, K) probability matrix per model. Regression
    (rmse, mae, r2): numbers, one prediction per row. Labels that do not fit the kind or
    arrays of different lengths are the caller's bug and raise ``ValueError``; anything
    about the data or the models is a verdict."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; allowed: {list(METRICS)}")
    y_arr = np.asarray(y, dtype=float).ravel()
    chall = np.asarray(challenger_scores, dtype=float)
    champ = None if champion_scores is None else np.asarray(champion_scores, dtype=float)
    multiclass = chall.ndim == 2
    if not multiclass:
        chall = chall.ravel()
        champ = None if champ is None else champ.ravel()
    n = len(y_arr)
    if len(chall) != n or (champ is not None and champ.shape != chall.shape):
        raise ValueError(
            f"judge needs one score per labelled row: {n} labels, {len(chall)} challenger "
            f"scores, {'no' if champ is None else len(champ)} champion scores"
        )
    classification = is_classification(metric)
    allowed = np.arange(chall.shape[1] if multiclass else 2, dtype=float)
    if classification and not np.isin(y_arr, allowed).all():
        bad = sorted({float(v) for v in y_arr[~np.isin(y_arr, allowed)]}, key=str)[:5]
        want = "0 or 1" if not multiclass else f"class indices 0..{len(allowed) - 1}"
        raise ValueError(f"labels must be {want}; got {bad} (first distinct values shown)")
    if not classification and (multiclass or not np.isfinite(y_arr).all()):
        raise ValueError(f"{metric} needs finite numeric labels and one prediction per row")

    checks: dict[str, bool] = {}
    why: dict[str, str] = {}

    def check(name: str, passed: bool, detail: str) -> None:
        checks[name] = bool(passed)
        if not passed:
            why[name] = detail

    check("enough rows", n >= spec.min_rows, f"{n} held-out rows < min_rows {spec.min_rows}")
    if classification and not multiclass:
        positives = int(y_arr.sum())
        check(
            "both classes in the held-out window",
            0 < positives < n,
            f"{positives} positive of {n} rows",
        )
    elif classification:
        present = len(np.unique(y_arr))
        check(
            "two or more classes in the held-out window",
            present >= 2,
            f"{present} class(es) of {len(allowed)} in {n} rows",
        )
    sides = [("challenger", chall)] + ([] if champ is None else [("champion", champ)])
    for side, s in sides:
        finite = np.isfinite(s)
        check(
            f"{side} scores are finite",
            bool(finite.all()),
            f"{int((~finite).sum())} of {n} NaN/inf",
        )
        if metric in PROBABILITY_METRICS:
            f = s[finite]
            out = int(((f < 0) | (f > 1)).sum())
            span = f"[{f.min():.4g}, {f.max():.4g}]" if f.size else "[]"
            check(
                f"{side} scores are probabilities in [0, 1]",
                out == 0,
                f"{out} of {n} outside [0, 1], range {span}; {metric} reads probabilities",
            )

    chall_pts = _finite(metric_points(y_arr, chall, metric)) if n else None
    champ_pts = None
    check("challenger metric is defined", chall_pts is not None, f"{metric} is undefined")
    if champ is not None:
        champ_pts = _finite(metric_points(y_arr, champ, metric)) if n else None
        check("champion metric is defined", champ_pts is not None, f"{metric} is undefined")
    # The constant base-rate predictor: every row scored with the window's positive rate
    # (multiclass: its class shares; regression: its mean). It ties every pair (ROC AUC
    # 50), always predicts the majority class (accuracy), and is the best constant for log
    # loss and RMSE (R² 0).
    chance = _finite(metric_points(y_arr, _constant(y_arr, chall), metric)) if n else None
    constant = (
        "the constant base-rate predictor" if classification else "predicting the window's mean"
    )
    below_chance = not (chall_pts is not None and chance is not None and chall_pts > chance)
    if champ is None:
        # A first model must beat a constant. With a champion, the paired comparison decides:
        # a challenger that beats a champion which is worse still (a concept that flipped on
        # the held-out window) is an improvement for what is served, so it may be promoted;
        # the reason then says both are below chance.
        check(
            "better than chance",
            not below_chance,
            f"challenger {_fmt(chall_pts)} pts vs {_fmt(chance)} for {constant}",
        )

    gain = interval = defined = drawn = None
    if champ is not None:
        check(
            "challenger differs from champion",
            not np.allclose(chall, champ, equal_nan=True),
            "same scores as the champion on every row",
        )
        if n:
            cmp = paired_bootstrap(
                y_arr, champ, chall, metric, spec.bootstrap, spec.confidence, spec.seed
            )
            defined, drawn = cmp.resamples, cmp.drawn
            low, high = _finite(cmp.low), _finite(cmp.high)
            interval = None if low is None or high is None else (low, high)
            if chall_pts is not None and champ_pts is not None:
                gain = chall_pts - champ_pts
        check(
            "bootstrap resamples defined",
            drawn is not None
            and drawn > 0
            and defined is not None
            and defined >= MIN_DEFINED_SHARE * drawn,
            f"{defined or 0} of {drawn or spec.bootstrap} resamples defined "
            f"< {MIN_DEFINED_SHARE:.0%} (a resample lacking a class or holding a NaN/inf "
            "score is undefined)",
        )

    failed = [f"{k} ({why[k]})" for k, ok in checks.items() if not ok]
    verdict: Outcome
    if champ is None:
        verdict = "reject" if failed else "promote"
        reason = (
            "first model failed guardrails: " + "; ".join(failed)
            if failed
            else f"first model: guardrails pass, {metric} {chall_pts:.2f} pts > "
            f"{chance:.2f} for {constant}"
        )
    elif failed:
        verdict, reason = "reject", "guardrails failed: " + "; ".join(failed)
    else:
        assert gain is not None and interval is not None  # every guardrail passed
        text = (
            f"challenger {gain:+.2f} pts, {spec.confidence:.0%} interval "
            f"[{interval[0]:+.2f}, {interval[1]:+.2f}]"
        )
        # Only finite numbers get here, and the test is written as "wins", so a NaN (which
        # compares False) could only ever make it a reject.
        wins = gain >= spec.min_gain_points and interval[0] > 0
        verdict = "promote" if wins else "reject"
        reason = (
            f"{text} > 0 and ≥ {spec.min_gain_points:g} pts"
            if wins
            else f"{text}: needs ≥ {spec.min_gain_points:g} pts with the interval above 0"
        )
        if below_chance:
            reason += (
                f" (both below {constant}: {_fmt(chance)} pts; the "
                "held-out window may have changed meaning)"
            )
    return Verdict(
        verdict=verdict,
        reason=reason,
        metric=metric,
        rows=n,
        guardrails=checks,
        challenger_points=chall_pts,
        champion_points=champ_pts,
        chance_points=chance,
        gain=gain,
        interval=interval,
        confidence=spec.confidence,
        resamples_defined=defined,
        resamples_drawn=drawn,
        thresholds={
            "min_gain_points": spec.min_gain_points,
            "min_rows": spec.min_rows,
            "min_defined_share": MIN_DEFINED_SHARE,
            "bootstrap": spec.bootstrap,
        },
    )


def _constant(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.ndim == 2:
        shares = np.bincount(y.astype(int), minlength=like.shape[1]) / max(len(y), 1)
        return np.tile(shares, (len(y), 1))
    return np.full(len(y), y.mean())


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _fmt(v: Any) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
