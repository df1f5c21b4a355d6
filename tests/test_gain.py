"""The probe-curve gain estimator."""

from __future__ import annotations

import numpy as np

from costaware.decide.gain import (
    cycle_gain,
    estimate_gain_probe,
    regret_curve,
    regret_se,
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


def test_regret_se_is_paired_and_shrinks_with_rows():
    rng = np.random.default_rng(0)

    def se(n):
        y = rng.integers(0, 2, n)
        fresh = np.where(rng.random(n) < 0.8, y, 1 - y).astype(float)
        old = np.where(rng.random(n) < 0.7, y, 1 - y).astype(float)
        return regret_se(y, fresh, [old, None], "accuracy")

    small, big = se(30), se(3000)
    assert big[1] is None and small[0] > 5 * big[0] > 0
    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.1, 0.8, 0.3, 0.6, 0.4])
    assert regret_se(y, s, [s], "accuracy") == [0.0]  # a model against itself: no noise
    assert regret_se(y, s, [np.array([0.6, 0.4, 0.2, 0.7, 0.9, 0.1])], "roc_auc")[0] > 0


def test_noise_aware_estimate_needs_sustained_regret_on_few_rows():
    curves = [[0.5] * 4] * 20
    ses = [[8.0] * 4] * 20
    blind = estimate_gain_probe(curves, 10, 9.0, ages=4)
    kw = {"curve_se": ses, "champion_se": 8.0, "rows": 30, "ages": 4}
    once = estimate_gain_probe(curves, 10, 9.0, champion_history=[(0.0, 8.0)] * 9, **kw)
    sustained = estimate_gain_probe(curves, 10, 9.0, champion_history=[(9.0, 8.0)] * 9, **kw)
    assert once.points < sustained.points <= blind.points
    assert once.low <= once.points <= once.high and "sampling" in once.basis
    cautious = estimate_gain_probe(curves, 10, 9.0, champion_history=[(9.0, 8.0)] * 9, z=1, **kw)
    assert cautious.points < sustained.points


def test_defaults_keep_the_noise_blind_estimate():
    curves = [[1.0, 2.0, 3.0, 4.0]] * 5
    a = estimate_gain_probe(curves, 3, 5.0, ages=4)
    b = estimate_gain_probe(curves, 3, 5.0, ages=4, champion_history=None, rows=None)
    assert a == b and "sampling" not in a.basis


def test_extend_lets_an_old_champion_buy_a_longer_cycle():
    curves = [[0.5] * 4] * 5
    short = estimate_gain_probe(curves, 30, 3.0, ages=4)
    long = estimate_gain_probe(curves, 30, 3.0, ages=4, extend=True)
    assert long.points > short.points
