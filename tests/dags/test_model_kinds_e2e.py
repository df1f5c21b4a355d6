"""The real retrain DAG (``dag.test()``) on the other model kinds, with the configs that
``costaware init-model`` wrote and a person reviewed (``examples/models/``):

* ``flights_lga``: binary, string categorical features (carrier, destination) and weather
  columns with real missing values;
* ``hotel_rates``: regression (lower RMSE is better), categoricals and missing values.

Four batches each, exactly as ``costaware replay`` lands them (labels one batch late): three
runs wait for 500 labelled rows, the fourth trains the first model on batches 0-1 and
evaluates it on batch 2. Assertions read the ledger and the registry; the metric the ledger
reports is recomputed here with scikit-learn from the registered model's own predictions on
the held-out rows, and compared with a constant predictor computed here too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, root_mean_squared_error

from costaware.app.replay import (
    _load_dag,
    arrival_time,
    land_batch,
    land_labels,
    load_source,
    run_dag_once,
    split_batches,
)
from costaware.config import get_model
from costaware.settings import Settings
from costaware.steps.context import StepContext

from ..conftest import ROOT

MODELS = ROOT / "examples" / "models"
pytestmark = pytest.mark.slow


def _replay(model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batches: int = 4):
    home = tmp_path / "home"
    monkeypatch.setenv("COSTAWARE_HOME", str(home))
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(MODELS))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    settings = Settings.from_env(
        {
            "COSTAWARE_HOME": str(home),
            "COSTAWARE_PROJECT_ROOT": str(ROOT),
            "COSTAWARE_MODELS_DIR": str(MODELS),
        }
    )
    cfg = get_model(MODELS, model)
    parts = list(split_batches(cfg, load_source(cfg, ROOT)))
    dag = _load_dag(settings, model)
    for i in range(batches):
        name, part = parts[i]
        land_batch(settings, cfg, name, part)
        if i >= 1:
            land_labels(settings, cfg, *parts[i - 1])
        assert run_dag_once(dag, logical_date=arrival_time(cfg, part)) == "success", (model, i)
    ctx = StepContext.for_model(model, settings=settings)
    return ctx, cfg, parts


def _first_model(ctx: StepContext, model: str, parts: list) -> dict:
    decisions = ctx.ledger.decisions(model)
    assert [d["batch_id"] for d in decisions] == [p[0] for p in parts[:4]]
    for d in decisions[:3]:
        assert d["action"] == "skip" and d["reason"].startswith("waiting for labels"), d
    d = decisions[3]
    assert (d["action"], d["outcome"]) == ("retrain", "promoted"), d["reason"]
    assert ctx.registry.alias(model, "champion") == "1"
    costs = ctx.ledger.run_costs(model, d["run_id"])
    assert costs and all(c["usd"] > 0 and c["status"] == "final" for c in costs)
    ev = d["details"]["evaluation"]
    assert ev["holdout_batches"] == [parts[2][0]] and ev["rows"] == len(parts[2][1])
    return ev


def test_flights_categorical_and_missing(
    airflow_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, cfg, parts = _replay("flights_lga", tmp_path, monkeypatch)
    ev = _first_model(ctx, "flights_lga", parts)
    model = ctx.registry.load("flights_lga", "1")
    # Categories fixed at training: the declared carriers; the destinations seen in the
    # training window (batches 0-1), a destination first seen later scores as missing.
    assert model.categories["carrier"] == [str(c) for c in cfg.features[0].categories]
    seen = sorted(set(parts[0][1]["dest"]) | set(parts[1][1]["dest"]))
    assert model.categories["dest"] == seen
    held = parts[2][1]
    assert held[["wind_dir", "wind_gust"]].isna().any().all()  # real gaps reach the model
    auc = roc_auc_score(held["late"], model.predict_proba(held)[:, 1])
    assert math.isclose(ev["challenger_value"], auc, rel_tol=1e-9)
    assert auc > 0.5  # better than any constant score, which ranks nothing


def test_hotel_regression_lower_rmse_is_better(
    airflow_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, cfg, parts = _replay("hotel_rates", tmp_path, monkeypatch)
    ev = _first_model(ctx, "hotel_rates", parts)
    assert ev["metric"] == "rmse" and ev["higher_is_better"] is False
    model = ctx.registry.load("hotel_rates", "1")
    held = parts[2][1]
    y = held["avg_price_per_room"].to_numpy()
    rmse = root_mean_squared_error(y, model.predict(held))
    assert math.isclose(ev["challenger_value"], rmse, rel_tol=1e-9)
    # The mean price of the training weeks, predicted for every held-out booking.
    train_mean = np.concatenate([p[1]["avg_price_per_room"] for p in parts[:2]]).mean()
    constant = root_mean_squared_error(y, np.full(len(y), train_mean))
    assert rmse < constant
    # Points carry the direction: a lower RMSE is more points.
    assert ev["challenger_points"] == pytest.approx(-rmse)
