"""Confidence-based performance estimation, checked against what it estimates.

A champion trained on Elec2's first four weeks, calibrated on weeks 4-5 (its "reference":
labelled logged predictions), estimates its ROC AUC on weeks 6-39 without their labels.

* Where the method's assumption holds by construction (each label drawn from the calibrated
  probability of the real score), the estimate must be unbiased and its 90 % interval must
  hold the realized AUC about 90 % of the time.
* On Elec2's real labels — real concept drift, which CBPE cannot see — it must still beat
  the naive label-free guess (the reference window's AUC carried forward) and move with the
  realized metric. The numbers are in the README ("The live loop").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from costaware.decide.performance import metric_points
from costaware.models.scoring import load_model_file, score
from costaware.monitor import cbpe

from . import helpers as h

WEEKS = range(6, 40)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("cbpe")
    model = load_model_file(h.train(h.weeks(0, 3), folder, "v1"))
    ref = h.weeks(4, 5)
    ref_s = score(model, ref, h.FEATURES)
    windows = []
    for w in WEEKS:
        f = h.weeks(w, w)
        windows.append((score(model, f, h.FEATURES), h.labels_of(f)))
    return {
        "calibration": cbpe.calibrate(ref_s, h.labels_of(ref)),
        "reference_auc": metric_points(h.labels_of(ref), ref_s, "roc_auc"),
        "windows": windows,
    }


def test_expected_auc_is_the_mean_auc_of_labels_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(0)
    s = rng.random(400)
    p = np.clip(s + rng.normal(0, 0.15, 400), 0.02, 0.98)
    draws = (rng.random((1500, 400)) < p).astype(int)
    simulated = np.mean([metric_points(d, s, "roc_auc") for d in draws])
    assert 100 * cbpe.expected_auc(p, s) == pytest.approx(simulated, abs=0.4)
    # Accuracy: the expected share of right answers at threshold 0.5.
    acc = np.mean([metric_points(d, s, "accuracy") for d in draws[:1000]])
    cal = cbpe.Calibration(np.sort(s), p[np.argsort(s)], 400)
    assert cbpe.estimate(cal, s, "accuracy").points == pytest.approx(acc, abs=0.5)


def test_when_the_calibration_holds_the_estimate_is_unbiased_and_covers(scored: dict) -> None:
    rng = np.random.default_rng(1)
    cal = scored["calibration"]
    errors, inside = [], 0
    for s, _ in scored["windows"]:
        y = (rng.random(len(s)) < cal(s)).astype(int)
        realized = metric_points(y, s, "roc_auc")
        est = cbpe.estimate(cal, s, "roc_auc")
        errors.append(est.points - realized)
        inside += est.low <= realized <= est.high
    assert abs(np.mean(errors)) < 1.0  # points of AUC; the spread of one window is ~2.5
    assert 0.75 <= inside / len(errors) <= 1.0  # 90 % intervals over 34 windows


def test_on_real_labels_it_beats_carrying_the_reference_forward(scored: dict) -> None:
    cal = scored["calibration"]
    realized = np.array([metric_points(y, s, "roc_auc") for s, y in scored["windows"]])
    estimated = np.array([cbpe.estimate(cal, s, "roc_auc").points for s, _ in scored["windows"]])
    cbpe_error = np.abs(estimated - realized).mean()
    naive_error = np.abs(scored["reference_auc"] - realized).mean()
    assert cbpe_error < naive_error
    assert np.corrcoef(estimated, realized)[0, 1] > 0


def test_calibration_needs_labelled_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="calibration needs"):
        cbpe.calibrate([0.5], [1])
