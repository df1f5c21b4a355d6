from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from costaware.decide.performance import bootstrap_se, metric_points, paired_bootstrap


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.25, 400), 0.001, 0.999)
    weak = np.clip(y * 0.15 + rng.normal(0.4, 0.25, 400), 0.001, 0.999)
    return y, good, weak


def test_metric_points_match_sklearn(scores) -> None:
    y, good, _ = scores
    assert metric_points(y, good, "roc_auc") == pytest.approx(100 * roc_auc_score(y, good))
    assert metric_points(y, good, "accuracy") == pytest.approx(100 * accuracy_score(y, good >= 0.5))
    assert metric_points(y, good, "log_loss") == pytest.approx(-100 * log_loss(y, good))


def test_paired_bootstrap_sees_a_real_gain(scores) -> None:
    y, good, weak = scores
    c = paired_bootstrap(y, weak, good, "roc_auc", resamples=300, confidence=0.9)
    assert c.gain > 10 and c.low > 0 and c.high > c.low
    back = paired_bootstrap(y, good, weak, "roc_auc", resamples=300, confidence=0.9)
    assert back.gain == pytest.approx(-c.gain) and back.high < 0


def test_identical_models_have_no_gain(scores) -> None:
    y, good, _ = scores
    c = paired_bootstrap(y, good, good, "roc_auc", resamples=200)
    assert c.gain == 0 and c.low == 0 and c.high == 0


def test_one_class_window_is_nan() -> None:
    y = np.ones(50)
    assert np.isnan(metric_points(y, np.linspace(0, 1, 50), "roc_auc"))
    mixed = np.r_[np.ones(50), np.zeros(50)]
    noisy = np.random.default_rng(0).uniform(size=100)
    assert bootstrap_se(mixed, noisy, "roc_auc") > 0


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "log_loss"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_broken_score_makes_the_metric_nan_never_a_number(scores, metric, bad) -> None:
    """Before: a NaN score counted as "below 0.5" for accuracy, and ±inf was clipped to a
    confident probability for log loss — a broken model got a finite, comparable score."""
    y, good, _ = scores
    broken = good.copy()
    broken[0] = bad
    assert np.isnan(metric_points(y, broken, metric))


@pytest.mark.parametrize("metric", ["accuracy", "log_loss"])
def test_probability_metrics_are_undefined_outside_unit_interval(scores, metric) -> None:
    y, good, _ = scores
    assert np.isnan(metric_points(y, np.r_[1.5, good[1:]], metric))
    assert np.isnan(metric_points(y, np.r_[-0.1, good[1:]], metric))


def test_roc_auc_of_a_margin_is_its_rank_auc(scores) -> None:
    y, good, _ = scores
    margin = 8 * good - 4
    assert metric_points(y, margin, "roc_auc") == pytest.approx(100 * roc_auc_score(y, margin))


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "log_loss"])
def test_paired_bootstrap_on_degenerate_windows_cannot_win(scores, metric) -> None:
    """No exception, and nothing in the result compares as a win (NaN compares False)."""
    y, good, weak = scores
    cases = {
        "empty": (y[:0], weak[:0], good[:0]),
        "all-NaN challenger": (y, weak, np.full(len(y), np.nan)),
        "one class": (np.ones(len(y)), weak, good),
    }
    for name, (yy, a, b) in cases.items():
        c = paired_bootstrap(yy, a, b, metric, resamples=100)
        assert c.resamples == 0, name  # no resample is defined
        assert c.drawn == (0 if name == "empty" else 100), name
        assert not (c.low > 0), name
        assert np.isnan(c.low) and np.isnan(c.high), name
    c = paired_bootstrap(
        cases["all-NaN challenger"][0], weak, cases["all-NaN challenger"][2], metric
    )
    assert np.isnan(c.gain) and not (c.gain >= 0)


def test_paired_bootstrap_counts_resamples_missing_a_class_as_undefined() -> None:
    """One positive in 40 rows: a resample misses it with probability (39/40)^40 ≈ 0.363."""
    y = np.zeros(40)
    y[3] = 1
    s = np.where(y == 1, 0.9, 0.1)
    for metric in ("roc_auc", "accuracy", "log_loss"):
        c = paired_bootstrap(y, np.full(40, 0.5), s, metric, resamples=2000, seed=1)
        assert c.drawn == 2000
        assert c.resamples / c.drawn == pytest.approx(1 - (39 / 40) ** 40, abs=0.03)


def test_paired_bootstrap_rejects_misaligned_rows(scores) -> None:
    y, good, weak = scores
    with pytest.raises(ValueError, match="400 labels, 400 champion and 399 challenger"):
        paired_bootstrap(y, weak, good[:-1], "roc_auc")


def test_bootstrap_se_of_an_empty_window_is_nan() -> None:
    assert np.isnan(bootstrap_se(np.array([]), np.array([]), "accuracy"))
