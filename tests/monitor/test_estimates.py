"""The sampled windows' intervals and the multiclass label-free estimate, each checked
against a second method: the analytic standard errors against the bootstrap on the same
rows; multiclass CBPE on the real NOAA storms stream against labels drawn from the
calibrated probabilities (where the method's assumption holds by construction). The
cross-check with NannyML's multiclass CBPE is bench/cbpe_multiclass_nannyml.py (NannyML
needs a virtualenv of its own)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from costaware.app.replay import load_source, split_batches
from costaware.config import get_model
from costaware.decide.performance import bootstrap_se, metric_points
from costaware.monitor import cbpe
from costaware.monitor.run import fast_se, read_labels

from ..conftest import ROOT


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss", "accuracy"])
def test_binary_standard_errors_match_the_bootstrap(metric: str) -> None:
    rng = np.random.default_rng(11)
    s = rng.beta(2, 2, 3000)
    y = (rng.random(3000) < 0.2 + 0.6 * s).astype(float)
    boot = bootstrap_se(y, s, metric, resamples=400, seed=1)
    assert fast_se(y, s, metric) == pytest.approx(boot, rel=0.12)


@pytest.mark.parametrize("metric", ["rmse", "mae"])
def test_regression_standard_errors_match_the_bootstrap(metric: str) -> None:
    rng = np.random.default_rng(12)
    y = rng.gamma(3, 30, 3000)
    pred = y + rng.standard_t(4, 3000) * 15
    boot = bootstrap_se(y, pred, metric, resamples=400, seed=1)
    assert fast_se(y, pred, metric) == pytest.approx(boot, rel=0.12)


def test_multiclass_accuracy_and_log_loss_errors_match_the_bootstrap() -> None:
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(3000, 4)) * 1.5
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p], dtype=float)
    for metric in ("accuracy", "log_loss"):
        boot = bootstrap_se(y, p, metric, resamples=400, seed=1)
        assert fast_se(y, p, metric) == pytest.approx(boot, rel=0.12), metric


@pytest.fixture(scope="module")
def storms() -> dict:
    import xgboost as xgb

    cfg = get_model(ROOT / "examples" / "models", "storms")
    parts = [p for _, p in split_batches(cfg, load_source(cfg, ROOT))]

    def xy(first: int, last: int) -> tuple[pd.DataFrame, np.ndarray]:
        f = pd.concat(parts[first : last + 1], ignore_index=True)
        return f[cfg.feature_names], read_labels(cfg.target, f[cfg.target.name].astype(str))

    k = len(cfg.target.classes or [])
    x, y = xy(0, 39)
    params = {"objective": "multi:softprob", "num_class": k, "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), 40)
    x_ref, y_ref = xy(40, 69)
    cal = cbpe.calibrate_multiclass(booster.predict(xgb.DMatrix(x_ref)), y_ref.astype(int))
    windows = [booster.predict(xgb.DMatrix(xy(b, b)[0])) for b in range(70, 97)]
    return {"calibration": cal, "windows": windows, "k": k}


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "log_loss"])
def test_multiclass_estimate_is_unbiased_and_covers_when_calibration_holds(
    storms: dict, metric: str
) -> None:
    cal, rng = storms["calibration"], np.random.default_rng(2)
    errors, inside = [], 0
    for p in storms["windows"]:
        q = cal(p)
        y = np.array([rng.choice(storms["k"], p=row) for row in q], dtype=float)
        realized = metric_points(y, p, metric)
        est = cbpe.estimate_multiclass(cal, p, metric)
        errors.append(est.points - realized)
        inside += est.low <= realized <= est.high
    spread = np.std(errors)
    assert abs(np.mean(errors)) < max(0.6 * spread, 0.5), (np.mean(errors), spread)
    assert inside / len(errors) >= 0.7  # 90 % intervals over 27 windows of 200 rows


def test_calibrated_probabilities_are_distributions(storms: dict) -> None:
    q = storms["calibration"](storms["windows"][0])
    assert q.shape == storms["windows"][0].shape
    assert np.allclose(q.sum(axis=1), 1.0) and (q >= 0).all()


def test_unknown_multiclass_metric_is_refused(storms: dict) -> None:
    with pytest.raises(ValueError, match="allowed: roc_auc, accuracy, macro_f1, log_loss"):
        cbpe.estimate_multiclass(storms["calibration"], storms["windows"][0], "rmse")


def test_float32_scores_closer_than_a_millionth_keep_their_own_calibration() -> None:
    # A hand-worked reference: class 0's scores 5e-8 < 1e-7 < 8e-7 rank its rows perfectly,
    # as classes 1 and 2's do, so isotonic calibration on the reference is exact (each row's
    # own class at 1) and the estimate on those rows is their realized metric. scikit-learn's
    # isotonic regression pools float32 inputs closer than float32's resolution (1e-6) as
    # ties; fitted that way (as NannyML does on float32 columns) class 0 reads 1/3 everywhere,
    # expected accuracy 50 and ROC AUC below 100.
    rows = np.array(
        [[1e-7, 0.6, 0.4 - 1e-7], [8e-7, 0.3, 0.7 - 8e-7], [5e-8, 0.1, 0.9 - 5e-8]],
        dtype=np.float32,
    )
    probs = np.repeat(rows, 5, axis=0)
    y = np.repeat([1, 0, 2], 5)
    cal = cbpe.calibrate_multiclass(probs, y)
    assert np.array_equal(cal(probs), np.eye(3)[y])
    for metric, realized in (("accuracy", 200 / 3), ("roc_auc", 100.0)):
        assert metric_points(y.astype(float), probs, metric) == pytest.approx(realized)
        assert cbpe.estimate_multiclass(cal, probs, metric).points == pytest.approx(realized)
