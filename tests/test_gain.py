"""The probe-curve gain estimator."""

from __future__ import annotations

import numpy as np

from costaware.gain import (
    cycle_gain,
    estimate_gain_probe,
    regret_curve,
    smooth_curve,
)


def test_regret_curve_is_fresh_minus_older_points():
    y = np.array([1, 0, 1, 0])
    fresh = np.array([0.9, 0.1, 0.8, 0.2])  # 100 % accurate
    half = np.array([0.9, 0.9, 0.1, 0.2])  # 50 %
    assert regret_curve(y, fresh, [half, None, fresh], "accuracy") == [50.0, None, 0.0]


def test_smooth_curve_is_monotone_and_fills_unseen_ages():
    rho = smooth_curve([[1.0, 3.0, None], [2.0, 1.0, None]], halflife=1.0, ages=4)
    assert rho[0] == 0.0
    assert rho == sorted(rho) and len(rho) == 5
    assert rho[3] == rho[4] == rho[2]  # never measured: last measured value


def test_cycle_gain_is_the_renewal_rule():
    curve = [0.0, 2.0, 4.0, 6.0]
    # k = 1: 5; k = 2: 10 − 2 = 8; k = 3: 15 − 6 = 9 → best 9 at k = 3
    assert cycle_gain(5.0, curve) == (9.0, 3)
    assert cycle_gain(0.0, curve)[0] == 0.0


def test_probe_estimate_grows_with_the_champions_regret():
    curves = [[1.0, 2.0, 3.0, 4.0]] * 5
    low = estimate_gain_probe(curves, champion_age=1, champion_regret=0.0, ages=4)
    high = estimate_gain_probe(curves, champion_age=4, champion_regret=8.0, ages=4)
    assert 0 <= low.points < high.points
    assert high.low <= high.points <= high.high
    assert high.method == "probe" and "best cycle" in high.basis
    assert estimate_gain_probe([], 3, None).points == 0.0
