"""Metrics on labelled windows, and the paired bootstrap comparison of two models.

Everything is in *metric points*, higher is better (``config.METRIC_SPECS`` defines each
metric's direction and scale once): ROC AUC, accuracy, macro F1 and R² × 100, −100 × log
loss, −RMSE and −MAE (in the target's unit), so "gain" means the same thing whatever the
metric and a lower RMSE is more points.

Labels and scores by target kind: binary — 0/1 labels, P(positive) per row; multiclass —
class indices 0..K−1, an (n, K) matrix of class probabilities; regression — numbers, the
predicted value per row. Multiclass ROC AUC is the one-vs-rest macro average (every class
must be present), macro F1 averages F1 over the classes present in labels or predictions
(scikit-learn's definitions).

A metric that cannot be computed is NaN, never a number: a window (or bootstrap resample)
whose scores hold a NaN or ±inf, an empty window, a class missing for ROC AUC, a constant
target for R², and scores outside [0, 1] for the probability metrics (accuracy thresholds
at 0.5, log loss takes logs). NaN compares False, so callers must test ``math.isfinite``
before calling anything a win.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from costaware.config import METRIC_SPECS

# Metrics that read a score as a class probability (ROC AUC only ranks).
PROBABILITY_METRICS = frozenset(m for m, s in METRIC_SPECS.items() if s.probabilities)
_METRICS = tuple(sorted(METRIC_SPECS))


def _auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``s`` against the labels in the same row of ``y`` (ties: mid-rank)."""
    from scipy.stats import rankdata

    ranks = rankdata(s, axis=1)
    n1 = y.sum(axis=1)
    n0 = y.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(axis=1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def _classes(y: np.ndarray, s: np.ndarray) -> int:
    return s.shape[2] if s.ndim == 3 else 2


def _predicted(s: np.ndarray) -> np.ndarray:
    return s.argmax(axis=2) if s.ndim == 3 else (s >= 0.5).astype(int)


def _macro_f1(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    pred = _predicted(s)
    total = np.zeros(y.shape[0])
    present = np.zeros(y.shape[0])
    for k in range(_classes(y, s)):
        t, p = y == k, pred == k
        tp = (t & p).sum(axis=1)
        denom = 2 * tp + (p & ~t).sum(axis=1) + (t & ~p).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            total += np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        present += denom > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present > 0, total / np.maximum(present, 1), np.nan)


def _value_rows(y: np.ndarray, s: np.ndarray, metric: str) -> np.ndarray:
    """The metric in its own unit for each row (resample) of ``y``/``s``."""
    if metric == "roc_auc":
        if s.ndim == 2:
            return _auc_rows(y, s)
        per = [_auc_rows((y == k).astype(float), s[:, :, k]) for k in range(s.shape[2])]
        return np.mean(per, axis=0)  # NaN when any class is missing, as scikit-learn refuses
    if metric == "accuracy":
        return (_predicted(s) == y).mean(axis=1)
    if metric == "log_loss":
        if s.ndim == 3:
            p = np.take_along_axis(s, y.astype(int)[:, :, None], axis=2)[:, :, 0]
            return -np.log(np.clip(p, 1e-7, 1)).mean(axis=1)
        p = np.clip(s, 1e-7, 1 - 1e-7)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    if metric == "macro_f1":
        return _macro_f1(y, s)
    err = s - y
    if metric == "rmse":
        return np.sqrt((err**2).mean(axis=1))
    if metric == "mae":
        return np.abs(err).mean(axis=1)
    ss_tot = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1 - (err**2).sum(axis=1) / ss_tot, np.nan)


def _points_rows(y: np.ndarray, s: np.ndarray, metric: str) -> np.ndarray:
    """Points of each row of ``s`` against the labels in the same row of ``y``; NaN where the
    metric is undefined (see the module docstring), so a broken score never becomes a number:
    a NaN score never counts as "below 0.5" for accuracy, nor is ±inf clipped to a
    confident probability for log loss. ``s`` is (rows, n) or, multiclass, (rows, n, K)."""
    if metric not in METRIC_SPECS:
        raise ValueError(f"unknown metric {metric!r}; allowed: {list(_METRICS)}")
    if s.shape[1] == 0:
        return np.full(s.shape[0], np.nan)
    flat = s.reshape(s.shape[0], -1)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(flat).all(axis=1) & np.isfinite(y).all(axis=1)
        if metric in PROBABILITY_METRICS:
            ok &= ((flat >= 0) & (flat <= 1)).all(axis=1)
    fill = 0.5 if metric in PROBABILITY_METRICS or s.ndim == 3 else 0.0
    s = np.where(ok.reshape((-1,) + (1,) * (s.ndim - 1)), s, fill)  # masked rows: any value
    y = np.where(ok[:, None], y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        pts = METRIC_SPECS[metric].points(_value_rows(y, s, metric))
    return np.where(ok, pts, np.nan)


def metric_points(y: Any, score: Any, metric: str) -> float:
    """The metric of ``score`` against labels ``y`` in points (higher is better); NaN when
    undefined. ``score``: (n,) or, multiclass, (n, K)."""
    y_arr = np.asarray(y, dtype=float)[None, :]
    s_arr = np.asarray(score, dtype=float)[None, ...]
    return float(_points_rows(y_arr, s_arr, metric)[0])


def metric_value(points: float | None, metric: str) -> float | None:
    """Points back in the metric's own unit (RMSE 0.31, ROC AUC 0.74); None stays None."""
    return None if points is None else METRIC_SPECS[metric].value(points)


def is_classification(metric: str) -> bool:
    return "regression" not in METRIC_SPECS[metric].kinds


@dataclass(frozen=True)
class Comparison:
    """Challenger minus champion on the same rows, with a paired bootstrap interval."""

    metric: str
    rows: int
    champion: float
    challenger: float
    gain: float
    low: float
    high: float
    confidence: float
    resamples: int  # resamples that were defined (both classes, a finite metric on each side)
    drawn: int = 0  # resamples drawn; ``resamples / drawn`` is the defined share

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def paired_bootstrap(
    y: Any,
    champion_score: Any,
    challenger_score: Any,
    metric: str,
    resamples: int = 500,
    confidence: float = 0.9,
    seed: int = 0,
) -> Comparison:
    """Challenger minus champion (points) and a percentile interval from ``resamples`` paired
    resamples of the rows. A resample with one class only is undefined for every
    classification metric (it cannot tell the models apart on the class it lacks) and is
    left out, as is one where the metric is undefined (R² of a constant target);
    ``resamples`` in the result counts the defined ones, ``drawn`` all of them. Undefined
    inputs give NaN numbers, never an exception: an empty window, NaN/inf or out-of-range
    scores, one class."""
    y_arr = np.asarray(y, dtype=float)
    a = np.asarray(champion_score, dtype=float)
    b = np.asarray(challenger_score, dtype=float)
    if not len(y_arr) == len(a) == len(b):
        raise ValueError(
            f"paired_bootstrap needs one label and two scores per row; got {len(y_arr)} labels, "
            f"{len(a)} champion and {len(b)} challenger scores"
        )
    n = len(y_arr)
    champ = metric_points(y_arr, a, metric)
    chall = metric_points(y_arr, b, metric)
    if n == 0:
        nan = float("nan")
        return Comparison(metric, 0, nan, nan, nan, nan, nan, confidence, 0, 0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    ys = y_arr[idx]
    diff = _points_rows(ys, b[idx], metric) - _points_rows(ys, a[idx], metric)
    defined = np.isfinite(diff) & _two_classes(ys, metric)
    diff = diff[defined]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diff, [alpha, 1 - alpha]) if diff.size else (np.nan, np.nan)
    return Comparison(
        metric,
        n,
        champ,
        chall,
        chall - champ,
        float(low),
        float(high),
        confidence,
        int(diff.size),
        resamples,
    )


def _two_classes(ys: np.ndarray, metric: str) -> np.ndarray:
    """Resamples holding at least two distinct labels (always true for regression)."""
    if not is_classification(metric):
        return np.ones(ys.shape[0], dtype=bool)
    return (ys.min(axis=1) != ys.max(axis=1)) if ys.shape[1] else np.zeros(ys.shape[0], bool)


def bootstrap_se(y: Any, score: Any, metric: str, resamples: int = 200, seed: int = 0) -> float:
    """Standard error of a model's metric on a window (its noise floor)."""
    y_arr = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    if len(y_arr) == 0:
        return float("nan")
    idx = np.random.default_rng(seed).integers(0, len(y_arr), size=(resamples, len(y_arr)))
    pts = _points_rows(y_arr[idx], s[idx], metric)
    pts = pts[np.isfinite(pts)]
    return float(pts.std(ddof=1)) if pts.size > 1 else float("nan")
