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
