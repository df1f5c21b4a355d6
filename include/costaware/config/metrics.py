"""The metrics a model is judged on, each defined once (``MetricSpec``): the target kinds it
applies to, its direction and its scale in points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TARGET_KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class MetricSpec:
    """A metric, defined once: the target kinds it applies to and its direction.

    Every comparison in costaware is made on *points*: ``sign × scale × value`` with sign −1
    for a metric where lower is better, so "more points" always means "better" and a gain
    is positive whatever the metric. ``scale`` is 100 for rates in [0, 1] (a point is one
    hundredth: one ROC AUC point, one accuracy point) and 1 for errors in the target's own
    unit (one RMSE point is one unit of the target)."""

    name: str
    kinds: tuple[str, ...]
    higher_is_better: bool
    scale: float
    unit: str
    probabilities: bool  # reads scores as class probabilities (must lie in [0, 1])
    per_row_mean: bool  # a mean of per-row terms (its paired standard error is exact)

    def points(self, value: Any) -> Any:
        """Points from the metric's value (a number or a NumPy array of them)."""
        return (1.0 if self.higher_is_better else -1.0) * self.scale * value

    def value(self, points: float) -> float:
        """The metric in its own unit from points (the inverse of ``points``)."""
        return (1.0 if self.higher_is_better else -1.0) * points / self.scale

    def shown(self, points: float) -> float:
        """The metric as people read it, in ``unit``: points without the sign that makes an
        error grow with quality (an RMSE of 12.3, not −12.3 points; ROC AUC × 100 as is)."""
        return self.value(points) * self.scale

    @property
    def reading(self) -> str:
        """How to read ``shown``: its unit and direction."""
        return f"{self.unit}, {'higher' if self.higher_is_better else 'lower'} is better"


_CLASSIFICATION = ("binary", "multiclass")
METRIC_SPECS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("roc_auc", _CLASSIFICATION, True, 100.0, "ROC AUC × 100", False, False),
        MetricSpec("accuracy", _CLASSIFICATION, True, 100.0, "accuracy %", True, True),
        MetricSpec("log_loss", _CLASSIFICATION, False, 100.0, "log loss × 100", True, True),
        MetricSpec("macro_f1", _CLASSIFICATION, True, 100.0, "macro F1 × 100", True, False),
        MetricSpec("rmse", ("regression",), False, 1.0, "target units", False, False),
        MetricSpec("mae", ("regression",), False, 1.0, "target units", False, True),
        MetricSpec("r2", ("regression",), True, 100.0, "R² × 100", False, False),
    )
}
METRICS = tuple(METRIC_SPECS)
