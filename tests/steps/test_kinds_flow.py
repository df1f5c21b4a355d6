"""The retrain steps on a regression model with string categories and missing values (real
Elec2 rows, tests/models/kinds_data.py): probe, training worker, MLflow, evaluation, drift
and validation's unseen-category warning — and a data error that fails at once."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn import metrics as skm

from costaware.errors import DataError
from costaware.settings import Settings
from costaware.steps.evaluate import evaluate_challenger
from costaware.steps.measure import champion_categories, measure_drift, measure_performance
from costaware.steps.train import train_challenger

from ..models import kinds_data as kd
from .helpers import accept_frames, install_registry, make_ctx

WEEK = 336


def _weeks(first: int, count: int) -> dict[str, pd.DataFrame]:
    rows = kd.frame(WEEK * (first + count))
    rows.insert(0, "event_time", pd.date_range("1996-05-07", periods=len(rows), freq="30min"))
    rows.insert(0, "event_id", range(len(rows)))
    return {
        f"week-{i:02d}": rows.iloc[i * WEEK : (i + 1) * WEEK] for i in range(first, first + count)
    }


@pytest.mark.slow
def test_regression_model_with_categories_runs_the_retrain_steps(settings: Settings) -> None:
    cfg = kd.config(
        "regression",
        "xgboost",
        min_train_rows=600,
        window_batches=4,
        spot={"enabled": True, "interruption_rate": 0.0},
    )
    install_registry(settings, "empty")
    ctx = make_ctx(cfg, settings, "run-1")
    accept_frames(settings, ctx.ledger, cfg, _weeks(0, 4))

    perf = measure_performance(ctx)
    assert perf["champion_version"] is None
    assert perf["probe_curve"] == [None] * 8  # no older probes yet
    assert perf["probe_points"] < 0  # −RMSE in target units: points of a lower-is-better metric

    trained = train_challenger(ctx, "week-03")
    evaluation = evaluate_challenger(ctx, trained["version"])
    assert evaluation["metric"] == "rmse" and evaluation["higher_is_better"] is False
    # The challenger's RMSE on the held-out week, by scikit-learn on the registered model.
    hold = _weeks(3, 1)["week-03"]
    model = ctx.registry.load(cfg.name, trained["version"])
    rmse = skm.root_mean_squared_error(hold["price"], model.predict(hold))
    assert evaluation["challenger_value"] == pytest.approx(rmse)
    # Elec2's price level fell that week (mean 5.6 after 9.2 in training): the first model
    # does worse than the week's own mean, and the guardrail says so instead of promoting.
    assert evaluation["verdict"] == "reject"
    assert evaluation["guardrails"]["better than chance"] is False
    assert "predicting the window's mean" in evaluation["reason"]
    assert ctx.champion() is None
    # Made champion by hand (the registry's compare-and-set move) for the next run.
    ctx.registry.move_champion(cfg.name, None, trained["version"])

    # The champion's training categories, for validation's unseen-category warning.
    assert champion_categories(ctx) == {"demand_band": ["high", "low", "mid"]}

    # A week later: drift against the champion's training data, categorical columns included.
    ctx2 = make_ctx(cfg, settings, "run-2")
    accept_frames(settings, ctx2.ledger, cfg, _weeks(4, 1))
    week = settings.accepted(cfg.name) / "week-04.parquet"
    drift = measure_drift(ctx2, {"batch_id": "week-04", "path": str(week)})
    by = {c["column"]: c for c in drift["columns"]}
    assert by["demand_band"]["method"] == "psi" and by["demand_band"]["score"] is not None
    assert drift["prediction"]["score"] is not None
    perf2 = measure_performance(ctx2)
    assert perf2["champion_version"] == trained["version"]
    assert perf2["metric_unit"].startswith("rmse: 1 point = one unit of the target")


def test_category_outside_the_declared_set_fails_measure_performance_at_once(
    settings: Settings,
) -> None:
    """Batches taken in under one config; the config then declares fewer categories (as when
    a team narrows the list): the probe's training data breaks the declaration, and the
    step fails at once naming the column, examples and the declared set."""
    features = [f.model_dump() for f in kd.config("binary").features]
    for f in features:
        if f["name"] == "day_part":
            f["categories"] = ["night", "morning", "afternoon"]
    cfg = kd.config("binary", "xgboost", features=features)
    ctx = make_ctx(cfg, settings, "run-1")  # fails before the registry is asked anything
    accept_frames(settings, ctx.ledger, cfg, _weeks(0, 3))
    with pytest.raises(DataError) as err:
        measure_performance(ctx)
    msg = str(err.value)
    assert "column 'day_part' of the training data" in msg and "['evening']" in msg
    assert "declares categories ['night', 'morning', 'afternoon']" in msg
