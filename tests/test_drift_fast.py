"""The drift fast path: Evidently's scores from NumPy, and the edge cases of big batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from costaware.batches.drift import measure_drift
from costaware.batches.drift_fast import column_score, wasserstein_exact
from costaware.config import ModelConfig

ROWS = 50_000


def _cfg(columns: list[str], method: str, threshold: float, categorical: bool = False):
    return ModelConfig.model_validate(
        {
            "name": "fast_drift",
            "data": {"source": "none.parquet", "batch_rows": 1},
            "features": [
                {"name": c, "type": "categorical" if categorical else "numeric"} for c in columns
            ],
            "target": {"name": "y"},
            "validation_suite": "none",
            "drift": {"method": method, "threshold": threshold},
            "cost_policy": {
                "max_usd_per_point_batch": 1,
                "auto_approve_usd": 1,
                "monthly_budget_usd": 1,
            },
            "tags": {"model": "fast_drift", "team": "t"},
        }
    )


@pytest.fixture(scope="module")
def numeric() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    cols = [f"x{j}" for j in range(8)]
    ref = pd.DataFrame(rng.normal(size=(ROWS, 8)), columns=cols)
    cur = pd.DataFrame(rng.normal(size=(ROWS, 8)) + 0.06 * np.arange(8), columns=cols)
    cur["x7"] = rng.integers(0, 5, ROWS).astype(float)  # few distinct values: one bin per value
    ref["x7"] = rng.integers(0, 4, ROWS).astype(float)
    cur.loc[::97, "x3"] = np.nan  # nulls are dropped, as Evidently drops them
    return ref, cur


@pytest.mark.parametrize(
    ("method", "threshold"), [("psi", 0.2), ("wasserstein", 0.1), ("jensenshannon", 0.1)]
)
def test_fast_path_equals_evidently(numeric, method, threshold):
    ref, cur = numeric
    cfg = _cfg(list(ref.columns), method, threshold)
    fast = measure_drift(ref, cur, cfg, engine="fast")
    evid = measure_drift(ref, cur, cfg, engine="evidently")
    assert [c.drifted for c in fast.columns] == [c.drifted for c in evid.columns]
    for f, e in zip(fast.columns, evid.columns, strict=True):
        assert f.score == pytest.approx(e.score, abs=1e-4)
    assert 0 < sum(c.drifted for c in fast.columns) < len(fast.columns)  # a real test


@pytest.mark.parametrize("method", ["psi", "jensenshannon"])
def test_fast_path_categorical_equals_evidently(method):
    rng = np.random.default_rng(2)
    cats = list("abcdefg")
    ref = pd.DataFrame({"k": rng.choice(cats, ROWS), "j": rng.choice(cats, ROWS)})
    cur = pd.DataFrame({"k": rng.choice(cats + ["h"], ROWS), "j": rng.choice(cats, ROWS)})
    cfg = _cfg(["k", "j"], method, 0.1, categorical=True)
    fast = measure_drift(ref, cur, cfg, engine="fast")
    evid = measure_drift(ref, cur, cfg, engine="evidently")
    for f, e in zip(fast.columns, evid.columns, strict=True):
        assert f.score == pytest.approx(e.score, abs=1e-9)
        assert f.drifted == e.drifted


def test_wasserstein_near_threshold_falls_back_to_exact():
    rng = np.random.default_rng(3)
    ref = pd.Series(rng.normal(size=ROWS))
    cur = pd.Series(rng.normal(size=ROWS) + 0.1)
    exact = wasserstein_exact(ref.to_numpy(), cur.to_numpy())
    # With the threshold at the exact score the grid cannot call it: the exact value is used.
    assert column_score(ref, cur, "wasserstein", exact, False) == pytest.approx(exact, abs=1e-12)


def test_identical_data_has_no_drift():
    rng = np.random.default_rng(4)
    ref = pd.DataFrame(rng.normal(size=(200_000, 3)), columns=["a", "b", "c"])
    res = measure_drift(ref, ref.copy(), _cfg(["a", "b", "c"], "psi", 0.1))  # auto → fast
    assert res.drifted_columns == [] and res.drift_share == 0.0
    assert all(c.score == pytest.approx(0.0, abs=1e-12) for c in res.columns)


def test_all_null_and_empty_columns_are_warnings(tmp_path):
    rng = np.random.default_rng(5)
    ref = pd.DataFrame(rng.normal(size=(ROWS, 3)), columns=["a", "b", "c"])
    cur = ref.copy()
    cur["b"] = np.nan
    res = measure_drift(ref, cur, _cfg(["a", "b", "c"], "psi", 0.2), engine="fast")
    assert any("b: not compared" in w for w in res.warnings)
    assert res.columns[1].score is None and not res.columns[1].drifted
    empty = measure_drift(ref, cur.iloc[:0], _cfg(["a", "b", "c"], "psi", 0.2), engine="fast")
    assert len(empty.warnings) == 3 and empty.drift_share == 0.0


def test_fast_path_report_uses_a_sample_and_says_so(tmp_path):
    rng = np.random.default_rng(6)
    ref = pd.DataFrame(rng.normal(size=(120_000, 2)), columns=["a", "b"])
    cur = pd.DataFrame(rng.normal(size=(120_000, 2)), columns=["a", "b"])
    html = tmp_path / "drift.html"
    res = measure_drift(ref, cur, _cfg(["a", "b"], "psi", 0.2), report_path=html)
    assert html.exists() and res.report_path == str(html)
    assert any("sample" in w for w in res.warnings)
