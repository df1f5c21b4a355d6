"""Confidence-based performance estimation (CBPE): a model's metric on rows whose labels
have not arrived, from its own calibrated scores.

The published method (NannyML's CBPE; Kivimäki et al., "Confidence-based performance
estimation", 2023 — the method behind ``nannyml.CBPE``):

1. Calibrate the scores on a *reference* period whose labels are known (isotonic
   regression of the label on the score), so a calibrated score ``p`` is the probability
   the row is positive.
2. On an unlabelled window, each row is positive with probability ``p``; the expected
   confusion matrix at any threshold follows: expected true positives above threshold
   ``t`` are ``Σ p_i [s_i ≥ t]``, false positives ``Σ (1 − p_i) [s_i ≥ t]``.
3. ROC AUC is the area under the curve of expected TPR against expected FPR over all
   thresholds; accuracy (threshold 0.5) is ``mean(p_i if s_i ≥ 0.5 else 1 − p_i)``.

The interval comes from drawing the labels themselves ``y_i ~ Bernoulli(p_i)`` and computing
the metric on each draw: the spread a window of that size has even when the calibration
holds. The estimate is only as good as its assumption — the relation between score and
label (the concept) has not changed since the reference; a concept shift is invisible to it
until labels arrive (README, "The live loop", says how the monitor combines both).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from costaware.decide.performance import metric_points


@dataclass(frozen=True)
class Calibration:
    """Isotonic map score → P(positive), fitted on a labelled reference."""

    x: np.ndarray  # increasing score thresholds
    y: np.ndarray  # calibrated probability at each
    rows: int

    def __call__(self, scores: Any) -> np.ndarray:
        return np.clip(np.interp(np.asarray(scores, dtype=float), self.x, self.y), 0.0, 1.0)


def calibrate(scores: Any, y: Any) -> Calibration:
    from sklearn.isotonic import IsotonicRegression

    s = np.asarray(scores, dtype=float)
    yy = np.asarray(y, dtype=float)
    if len(s) != len(yy) or len(s) < 2:
        raise ValueError(f"calibration needs ≥ 2 scored, labelled rows; got {len(s)}/{len(yy)}")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, yy)
    return Calibration(np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_), len(s))


def expected_auc(p: np.ndarray, scores: np.ndarray) -> float:
    """Area under the expected ROC curve (scores tied at one threshold step together)."""
    order = np.argsort(-scores, kind="mergesort")
    s, pp = scores[order], p[order]
    pos, neg = pp.sum(), (1 - pp).sum()
    if pos <= 0 or neg <= 0:
        return float("nan")
    last = np.r_[np.diff(s) != 0, True]  # the last row of each group of tied scores
    tpr = np.r_[0.0, np.cumsum(pp)[last] / pos]
    fpr = np.r_[0.0, np.cumsum(1 - pp)[last] / neg]
    return float(np.trapezoid(tpr, fpr))


@dataclass(frozen=True)
class Estimate:
    metric: str
    rows: int
    points: float  # estimated metric, in points (as decide.performance)
    low: float
    high: float
    confidence: float
    reference_rows: int

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def estimate(
    calibration: Calibration,
    scores: Any,
    metric: str,
    confidence: float = 0.9,
    draws: int = 200,
    seed: int = 0,
) -> Estimate:
    """The metric the model is expected to score on these unlabelled rows, with the interval
    its realized value falls in when the calibration holds."""
    s = np.asarray(scores, dtype=float)
    p = calibration(s)
    nan = float("nan")
    if len(s) == 0:
        return Estimate(metric, 0, nan, nan, nan, confidence, calibration.rows)
    if metric == "roc_auc":
        points = 100.0 * expected_auc(p, s)
    elif metric == "accuracy":
        points = 100.0 * float(np.where(s >= 0.5, p, 1 - p).mean())
    elif metric == "log_loss":
        q = np.clip(s, 1e-7, 1 - 1e-7)
        points = -100.0 * float(-(p * np.log(q) + (1 - p) * np.log(1 - q)).mean())
    else:
        raise ValueError(f"unknown metric {metric!r}; allowed: roc_auc, accuracy, log_loss")
    rng = np.random.default_rng(seed)
    ys = (rng.random((draws, len(s))) < p).astype(float)
    sims = np.array([metric_points(row, s, metric) for row in ys])
    sims = sims[np.isfinite(sims)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(sims, [alpha, 1 - alpha]) if sims.size else (nan, nan)
    return Estimate(metric, len(s), points, float(low), float(high), confidence, calibration.rows)
