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

**Multiclass** (``estimate_multiclass``), the same method class by class, as NannyML's
multiclass CBPE does it: each class's probability is calibrated one-vs-rest on the
reference and each row's calibrated probabilities are normalized to sum to one; a row then
belongs to class ``k`` with probability ``p_k``. Expected accuracy is
the mean calibrated probability of the predicted class; expected macro F1 averages, over the
classes, F1 from the expected counts ``TP_k = Σ p_k [pred = k]``, ``FP_k = Σ (1 − p_k)
[pred = k]``, ``FN_k = Σ p_k [pred ≠ k]`` (NannyML's form; the monitor reports the mean
macro F1 over label draws, which counts only the classes present, as the metric does);
expected ROC AUC is the mean over classes of the
binary expected AUC of ``p_k`` against the class's own score; expected log loss is
``−mean Σ_k p_k log s_k``. The interval draws each row's class from its calibrated
probabilities.

**Regression has no label-free estimate here.** CBPE needs the model's confidence as a
probability of being right; a regression prediction has none. NannyML's DLE is a different
method (a second model that learns the size of the error from the features) and is not
implemented: the monitor says so in its run output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from costaware.config import METRIC_SPECS
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
    if metric == "roc_auc":
        sims = 100.0 * _auc_draws(ys, _ranks(s))
    else:
        sims = np.array([metric_points(row, s, metric) for row in ys])
    return _interval(metric, len(s), points, sims, confidence, calibration.rows)


def _interval(
    metric: str, rows: int, points: float, sims: np.ndarray, confidence: float, ref_rows: int
) -> Estimate:
    sims = sims[np.isfinite(sims)]
    alpha = (1 - confidence) / 2
    nan = float("nan")
    low, high = np.quantile(sims, [alpha, 1 - alpha]) if sims.size else (nan, nan)
    return Estimate(metric, rows, points, float(low), float(high), confidence, ref_rows)


def _ranks(s: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.asarray(rankdata(s), dtype=float)


def _auc_draws(ys: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of labels ``ys`` against one fixed score, from the score's mid-ranks
    (ranked once, not once per draw: the Mann-Whitney form metric_points uses)."""
    n1 = ys.sum(axis=1)
    n0 = ys.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (ys @ ranks - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


# -- multiclass -------------------------------------------------------------------------------
MULTICLASS_METRICS = ("roc_auc", "accuracy", "macro_f1", "log_loss")


@dataclass(frozen=True)
class MulticlassCalibration:
    """One isotonic map per class (one-vs-rest), fitted on a labelled reference."""

    classes: tuple[Calibration | None, ...]  # None: the class never or always occurred
    prior: np.ndarray  # the class's share in the reference, used where its map is None
    rows: int

    def __call__(self, probs: Any) -> np.ndarray:
        s = np.asarray(probs, dtype=float)
        cols = [
            cal(s[:, k]) if cal is not None else np.full(len(s), self.prior[k])
            for k, cal in enumerate(self.classes)
        ]
        p = np.column_stack(cols)
        # Each row normalized to sum to one (uniform where every class calibrates to 0), as
        # NannyML does after its one-vs-rest calibration.
        total = p.sum(axis=1, keepdims=True)
        uniform = np.full_like(p, 1.0 / p.shape[1])
        return np.divide(p, total, out=uniform, where=total != 0)


def calibrate_multiclass(probs: Any, y: Any) -> MulticlassCalibration:
    """``probs``: (n, K) class probabilities; ``y``: class indices 0..K−1."""
    # float64 on purpose: scikit-learn's isotonic regression pools scores closer than the
    # input dtype's resolution as ties (1e-6 for float32, what XGBoost returns), and softmax
    # probabilities crowd below 1e-5. NannyML fits float32 columns as they come and so
    # differs from this (bench/results/cbpe_multiclass_nannyml.md); on float64 both agree.
    s = np.asarray(probs, dtype=float)
    yy = np.asarray(y, dtype=int)
    if s.ndim != 2 or len(s) != len(yy) or len(s) < 2:
        raise ValueError(
            f"multiclass calibration needs ≥ 2 rows of (n, K) probabilities and n labels; "
            f"got scores {s.shape} and {len(yy)} labels"
        )
    prior = np.bincount(yy, minlength=s.shape[1])[: s.shape[1]] / len(yy)
    maps = tuple(
        calibrate(s[:, k], (yy == k).astype(float)) if 0 < prior[k] < 1 else None
        for k in range(s.shape[1])
    )
    return MulticlassCalibration(maps, prior, len(s))


def estimate_multiclass(
    calibration: MulticlassCalibration,
    probs: Any,
    metric: str,
    confidence: float = 0.9,
    draws: int = 200,
    seed: int = 0,
) -> Estimate:
    """The multiclass metric these unlabelled rows are expected to score (points), with the
    interval its realized value falls in when the per-class calibration holds."""
    if metric not in MULTICLASS_METRICS:
        raise ValueError(
            f"no label-free estimate of {metric!r} for a multiclass model; "
            f"allowed: {', '.join(MULTICLASS_METRICS)}"
        )
    s = np.asarray(probs, dtype=float)
    nan = float("nan")
    if len(s) == 0:
        return Estimate(metric, 0, nan, nan, nan, confidence, calibration.rows)
    n, k = s.shape
    p = calibration(s)
    pred = s.argmax(axis=1)
    spec = METRIC_SPECS[metric]
    if metric == "accuracy":
        value = float(p[np.arange(n), pred].mean())
    elif metric == "log_loss":
        value = float(-(p * np.log(np.clip(s, 1e-7, 1))).sum(axis=1).mean())
    elif metric == "macro_f1":
        value = float("nan")  # from the draws below
    else:
        value = float(np.mean([expected_auc(p[:, c], s[:, c]) for c in range(k)]))
    points = float(spec.points(value))
    # Interval: each row's class drawn from its calibrated probabilities.
    rng = np.random.default_rng(seed)
    q = p / np.where(p.sum(axis=1, keepdims=True) > 0, p.sum(axis=1, keepdims=True), 1.0)
    cum = np.cumsum(q, axis=1)
    u = rng.random((draws, n, 1))
    ys = np.minimum((u > cum[None, :, :]).sum(axis=2), k - 1)  # (draws, n) class indices
    if metric == "accuracy":
        sims = (ys == pred).mean(axis=1)
    elif metric == "log_loss":
        sims = -np.log(np.clip(s[np.arange(n), ys], 1e-7, 1)).mean(axis=1)
    elif metric == "macro_f1":
        sims = _macro_f1_draws(ys, pred, k)
    else:
        sims = np.mean(
            [_auc_draws((ys == c).astype(float), _ranks(s[:, c])) for c in range(k)], axis=0
        )
    sims = np.asarray(spec.points(sims))
    if metric == "macro_f1":
        # The mean over the draws: macro F1 averages over the classes present in a window's
        # labels or predictions (decide.performance), so a rare class absent from the window
        # does not count; F1 of the expected counts (NannyML's form, expected_macro_f1) counts
        # every class and on storms' 200-row windows reads ~5 points lower than the metric
        # the labels later give.
        points = float(np.nanmean(sims)) if np.isfinite(sims).any() else nan
    return _interval(metric, n, points, sims, confidence, calibration.rows)


def expected_macro_f1(p: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro F1 of the expected per-class counts over every class (NannyML's multiclass CBPE
    form; the monitor reports the mean over label draws instead, see estimate_multiclass)."""
    f1 = []
    for c in range(k):
        mine = pred == c
        tp = p[mine, c].sum()
        fp = (1 - p[mine, c]).sum()
        fn = p[~mine, c].sum()
        denom = 2 * tp + fp + fn
        if denom > 0:
            f1.append(2 * tp / denom)
    return float(np.mean(f1)) if f1 else float("nan")


def _macro_f1_draws(ys: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Macro F1 per draw, over the classes present in the draw or the predictions (as
    decide.performance defines it)."""
    total = np.zeros(ys.shape[0])
    present = np.zeros(ys.shape[0])
    for c in range(k):
        t, pr = ys == c, (pred == c)[None, :]
        tp = (t & pr).sum(axis=1)
        denom = 2 * tp + (pr & ~t).sum(axis=1) + (t & ~pr).sum(axis=1)
        total += np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        present += denom > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present > 0, total / np.maximum(present, 1), np.nan)
