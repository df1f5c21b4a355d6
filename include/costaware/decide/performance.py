"""Metrics on labelled windows, and the paired bootstrap comparison of two models.

Everything is in *metric points*, higher is better: ROC AUC and accuracy × 100, and
−100 × log loss, so "gain" means the same thing whatever the metric.
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


def _points_rows(y: np.ndarray, s: np.ndarray, metric: str) -> np.ndarray:
    if metric == "roc_auc":
        return 100.0 * _auc_rows(y, s)
    if metric == "accuracy":
        return 100.0 * ((s >= 0.5) == (y == 1)).mean(axis=1)
    if metric == "log_loss":
        p = np.clip(s, 1e-7, 1 - 1e-7)
        return -100.0 * -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    raise ValueError(f"unknown metric {metric!r}; allowed: ['accuracy', 'log_loss', 'roc_auc']")


def metric_points(y: Any, score: Any, metric: str) -> float:
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
    resamples: int

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
    y_arr = np.asarray(y, dtype=float)
    a = np.asarray(champion_score, dtype=float)
    b = np.asarray(challenger_score, dtype=float)
    n = len(y_arr)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    ys = y_arr[idx]
    diff = _points_rows(ys, b[idx], metric) - _points_rows(ys, a[idx], metric)
    diff = diff[~np.isnan(diff)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diff, [alpha, 1 - alpha]) if diff.size else (np.nan, np.nan)
    champ = metric_points(y_arr, a, metric)
    chall = metric_points(y_arr, b, metric)
    return Comparison(
        metric, n, champ, chall, chall - champ, float(low), float(high), confidence, int(diff.size)
    )


def bootstrap_se(y: Any, score: Any, metric: str, resamples: int = 200, seed: int = 0) -> float:
    """Standard error of a model's metric on a window (its noise floor)."""
    y_arr = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(y_arr), size=(resamples, len(y_arr)))
    pts = _points_rows(y_arr[idx], s[idx], metric)
    pts = pts[~np.isnan(pts)]
    return float(pts.std(ddof=1)) if pts.size > 1 else float("nan")
