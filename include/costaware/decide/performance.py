"""Metrics on labelled windows, and the paired bootstrap comparison of two models.

Everything is in *metric points*, higher is better: ROC AUC and accuracy × 100, and
−100 × log loss, so "gain" means the same thing whatever the metric.

A metric that cannot be computed is NaN, never a number: a window (or bootstrap resample)
whose scores hold a NaN or ±inf, an empty window, one class for ROC AUC, and scores outside
[0, 1] for the probability metrics (accuracy thresholds at 0.5, log loss takes logs). NaN
compares False, so callers must test ``math.isfinite`` before calling anything a win.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def _auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``s`` against the labels in the same row of ``y`` (ties: mid-rank)."""
    from scipy.stats import rankdata

    ranks = rankdata(s, axis=1)
    n1 = y.sum(axis=1)
    n0 = y.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(axis=1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


# Metrics that read a score as the probability of the positive class (ROC AUC only ranks).
PROBABILITY_METRICS = frozenset({"accuracy", "log_loss"})
_METRICS = ("accuracy", "log_loss", "roc_auc")


def _points_rows(y: np.ndarray, s: np.ndarray, metric: str) -> np.ndarray:
    """Points of each row of ``s`` against the labels in the same row of ``y``; NaN where the
    metric is undefined (see the module docstring), so a broken score never becomes a number:
    before this, a NaN score counted as "below 0.5" for accuracy and ±inf was clipped to a
    confident probability for log loss."""
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; allowed: {list(_METRICS)}")
    if s.shape[1] == 0:
        return np.full(s.shape[0], np.nan)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(s).all(axis=1)
        if metric in PROBABILITY_METRICS:
            ok &= ((s >= 0) & (s <= 1)).all(axis=1)
    s = np.where(ok[:, None], s, 0.5)  # masked rows: any valid value, the result is NaN below
    if metric == "roc_auc":
        pts = 100.0 * _auc_rows(y, s)
    elif metric == "accuracy":
        pts = 100.0 * ((s >= 0.5) == (y == 1)).mean(axis=1)
    else:
        p = np.clip(s, 1e-7, 1 - 1e-7)
        pts = -100.0 * -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    return np.where(ok, pts, np.nan)


def metric_points(y: Any, score: Any, metric: str) -> float:
    """The metric of ``score`` against labels ``y`` in points (higher is better); NaN when
    undefined."""
    y_arr = np.asarray(y, dtype=float)[None, :]
    s_arr = np.asarray(score, dtype=float)[None, :]
    return float(_points_rows(y_arr, s_arr, metric)[0])


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
    resamples of the rows. A resample with one class only is undefined for every metric (it
    cannot tell the models apart on the class it lacks) and is left out; ``resamples`` in the
    result counts the defined ones, ``drawn`` all of them. Undefined inputs give NaN numbers,
    never an exception: an empty window, NaN/inf or out-of-range scores, one class."""
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
    positives = ys.sum(axis=1)
    defined = np.isfinite(diff) & (positives > 0) & (positives < n)
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
