"""How many metric points would a retrain win back? The expected gain Δ the checkpoint weighs.

The estimate is the champion's *degradation*: the metric it had on its held-out window when
it was promoted minus its metric on the newest labelled window, scaled by how much of the
predicted gain past retrains of this model actually realized. Its uncertainty is the
bootstrap noise of the newest window.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GainEstimate:
    points: float  # expected gain in metric points (≥ 0)
    low: float
    high: float
    method: str
    basis: str
    calibration: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def calibration_factor(history: list[tuple[float, float]], default: float = 1.0) -> float:
    """Median realized/predicted gain over past retrains, clipped to a sane range."""
    ratios = [real / pred for pred, real in history if pred > 0.25]
    if len(ratios) < 2:
        return default
    return min(1.5, max(0.2, statistics.median(ratios)))


def estimate_gain(
    reference_points: float | None,
    current_points: float,
    current_se: float,
    history: list[tuple[float, float]] | None = None,
    z: float = 1.0,
) -> GainEstimate:
    """Degradation since promotion, calibrated by past (predicted, realized) gains."""
    if reference_points is None:
        return GainEstimate(0.0, 0.0, 0.0, "degradation", "no reference metric for the champion")
    calib = calibration_factor(history or [])
    degradation = reference_points - current_points
    se = 0.0 if current_se != current_se else current_se  # NaN → 0
    points = max(0.0, degradation * calib)
    low = max(0.0, (degradation - z * se) * calib)
    high = max(0.0, (degradation + z * se) * calib)
    basis = (
        f"champion {reference_points:.2f} pts at promotion, {current_points:.2f} ± {se:.2f} "
        f"now → degradation {degradation:+.2f} pts × calibration {calib:.2f}"
    )
    return GainEstimate(points, low, high, "degradation", basis, calib)
