"""Categorical and nullable features in validation (Great Expectations) and drift
(Evidently and the fast path), and prediction drift of multiclass and regression models, on
real Elec2 rows (tests/models/kinds_data.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costaware.batches.drift import SCORE_COLUMN, measure_drift
from costaware.batches.validation import UNSEEN, validate_frame, write_suite

from ..models import kinds_data as kd


@pytest.fixture(scope="module")
def gx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GX file context of its own holding the test model's suite."""
    folder = tmp_path_factory.mktemp("gx")
    write_suite(kd.config("binary"), folder)
    return folder


def _batch(start: int, rows: int = 336, seed: int = 0) -> pd.DataFrame:
    frame = kd.frame(rows, start=start, seed=seed)[kd.FEATURES]
    frame.insert(0, "event_time", pd.date_range("1996-05-07", periods=rows, freq="30min"))
    frame.insert(0, "event_id", range(start, start + rows))
    return frame


def test_nulls_pass_where_nullable_and_fail_where_not(gx_dir: Path) -> None:
    cfg = kd.config("binary")
    batch = _batch(0)
    assert batch["nswdemand"].isna().any() and batch["demand_band"].isna().any()
    out = validate_frame(batch, cfg, gx_dir)
    assert out.status in ("pass", "warn"), out.summary()
    assert not [f for f in out.failures if f.column in ("nswdemand", "demand_band")]
    bad = batch.copy()
    bad.loc[3, "transfer"] = np.nan  # not nullable
    out = validate_frame(bad, cfg, gx_dir)
    assert out.status == "fail"
    assert ("expect_column_values_to_not_be_null", "transfer") in {
        (f.expectation, f.column) for f in out.failures
    }


def test_declared_categories_are_enforced(gx_dir: Path) -> None:
    bad = _batch(0)
    bad.loc[[1, 2], "day_part"] = "dusk"
    out = validate_frame(bad, kd.config("binary"), gx_dir)
    assert out.status == "fail"
    hit = [f for f in out.failures if f.column == "day_part"]
    assert hit and "dusk" in hit[0].detail


def test_unseen_categories_are_a_warning_with_counts(gx_dir: Path) -> None:
    batch = _batch(0)
    batch.loc[:9, "demand_band"] = "peak"
    batch.loc[10:12, "demand_band"] = "surge"
    known = {"demand_band": ["high", "low", "mid"]}
    out = validate_frame(batch, kd.config("binary"), gx_dir, known_categories=known)
    assert out.status == "warn", out.summary()
    unseen = [w for w in out.warnings if w.expectation == UNSEEN]
    assert len(unseen) == 1 and unseen[0].column == "demand_band"
    assert "13 of 336 value(s) in 2 categor(y/ies)" in unseen[0].detail
    assert "'peak': 10" in unseen[0].detail and "'surge': 3" in unseen[0].detail
    # Nothing unseen: no such warning.
    clean = validate_frame(_batch(0), kd.config("binary"), gx_dir, known_categories=known)
    assert not [w for w in clean.warnings if w.expectation == UNSEEN]


def _psi(ref: pd.Series, cur: pd.Series) -> float:
    """PSI over categories, hand-written (no zero shares in these frames)."""
    r = ref.value_counts(normalize=True)
    c = cur.value_counts(normalize=True).reindex(r.index, fill_value=0)
    return float(((r - c) * np.log(r / c)).sum())


@pytest.mark.parametrize("engine", ["evidently", "fast"])
def test_categorical_feature_drift(engine: str) -> None:
    cfg = kd.config("binary")
    ref = _batch(0, 1000)
    same = _batch(1000, 1000, seed=1)
    shifted = same.copy()
    rng = np.random.default_rng(0)
    shifted.loc[rng.random(1000) < 0.6, "demand_band"] = "low"  # the feed changed
    quiet = measure_drift(ref, same, cfg, engine=engine)
    loud = measure_drift(ref, shifted, cfg, engine=engine)
    by = {c.column: c for c in loud.columns}
    assert by["demand_band"].method == "psi" and by["demand_band"].drifted
    expected = _psi(ref["demand_band"].dropna(), shifted["demand_band"].dropna())
    assert by["demand_band"].score == pytest.approx(expected, rel=1e-6)
    assert not {c.column: c for c in quiet.columns}["demand_band"].drifted


def test_prediction_drift_of_multiclass_and_regression() -> None:
    from costaware.models import algorithms as alg
    from costaware.models.scoring import score

    train, later = kd.frame(1500), kd.frame(1500, start=12000, seed=2)
    for kind in ("multiclass", "regression"):
        cfg = kd.config(kind, "lightgbm")
        model = alg.fit(train, cfg)
        ref, cur = train[kd.FEATURES].copy(), later[kd.FEATURES].copy()
        ref[SCORE_COLUMN] = score(model, train, cfg.feature_names)
        cur[SCORE_COLUMN] = score(model, later, cfg.feature_names)
        result = measure_drift(ref, cur, cfg, engine="evidently")
        fast = measure_drift(ref, cur, cfg, engine="fast")
        assert result.prediction is not None and result.prediction.score is not None
        assert fast.prediction is not None
        # Evidently and the fast path agree (the fast path bins numbers by Sturges and
        # categories one bin each, so a wrong column type would show here).
        assert fast.prediction.score == pytest.approx(result.prediction.score, rel=1e-6)
        if kind == "multiclass":  # the predicted class, compared as categories
            assert set(ref[SCORE_COLUMN]) <= {0.0, 1.0, 2.0}
            expected = _psi(ref[SCORE_COLUMN], cur[SCORE_COLUMN])
            assert result.prediction.score == pytest.approx(expected, rel=1e-6)
        else:  # a number: more distinct values than categories would allow
            assert ref[SCORE_COLUMN].nunique() > 20
