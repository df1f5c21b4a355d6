"""The real retrain DAG (``dag.test()``) on the other model kinds, with the configs that
``costaware init-model`` wrote and a person reviewed (``examples/models/``):

* ``flights_lga``: binary, string categorical features (carrier, destination) and weather
  columns with real missing values;
* ``hotel_rates``: regression (lower RMSE is better), categoricals and missing values;
* ``storms``: multiclass (9 classes, log loss), nullable features.

Four batches each (storms: six, as its first model needs 500 training rows), exactly as
``costaware replay`` lands them. After the replay, the next batches are served as the
serving app logs them (``PredictionLog`` → ``log_predictions``), some get their labels
(``record_labels``), and ``monitor.run.run_monitor`` runs on them: its window metric is
compared with scikit-learn's on the registered model's own predictions for those rows.

The flights and hotel runs:

Four batches each, exactly as ``costaware replay`` lands them (labels one batch late): three
runs wait for 500 labelled rows, the fourth trains the first model on batches 0-1 and
evaluates it on batch 2. Assertions read the ledger and the registry; the metric the ledger
reports is recomputed here with scikit-learn from the registered model's own predictions on
the held-out rows, and compared with a constant predictor computed here too.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score, root_mean_squared_error

from costaware.app.replay import (
    _load_dag,
    arrival_time,
    land_batch,
    land_labels,
    load_source,
    run_dag_once,
    split_batches,
)
from costaware.config import MonitorSpec, get_model
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

    # Monitored after the replay: batches 4-5 served, 4 labelled. The window's RMSE is
    # scikit-learn's on the champion's predictions; regression has no label-free estimate.
    out, frames = _serve_and_monitor(ctx, parts, range(4, 6), range(4, 5), tmp_path)
    w = {x["age"]: x for x in out["windows"]}
    f = frames[4]
    rmse_w = root_mean_squared_error(f["avg_price_per_room"], model.predict(f))
    # (the run's table keeps 4 decimals)
    assert w[1]["labelled"] == len(f) and w[1]["points"] == pytest.approx(-rmse_w, abs=1e-4)
    assert w[1]["low"] < -rmse_w < w[1]["high"]
    assert w[0]["labelled"] == 0 and "estimate" not in w[0] and "points" not in w[0]
    assert "no label-free estimate for regression" in out["note"]
    assert "DLE" in out["note"]


def _json(value: object) -> object:
    """A frame cell as the serving app receives it in JSON: None for missing, plain numbers."""
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _serve_and_monitor(
    ctx: StepContext, parts: list, served: range, labelled: range, tmp_path: Path
) -> tuple[dict, dict]:
    """Log ``served`` batches through the serving app's prediction log (one day each, the
    newest first in window 0), label the ``labelled`` ones, run the monitor with daily
    windows. Returns the run's output and the frames served by batch."""
    import datetime as dt

    from costaware.models.scoring import score
    from costaware.monitor.run import run_monitor
    from costaware.serve.logbook import PredictionLog
    from costaware.store import ledger as ledger_mod

    cfg, model = ctx.cfg, ctx.model
    version = ctx.registry.alias(model, "champion")
    champion = ctx.registry.load(model, version)
    start = dt.datetime(2026, 6, 1)
    log = PredictionLog(
        tmp_path / "spool",
        lambda rows: ledger_mod.log_predictions(  # as serve/app.py writes: ISO times back
            ctx.ledger, [{**r, "ts": dt.datetime.fromisoformat(r["ts"])} for r in rows]
        ),
        fsync=False,
    )
    log.start()
    frames, ids = {}, {}
    for day, b in enumerate(served):
        frame = parts[b][1].reset_index(drop=True)
        frames[b], ids[b] = frame, [f"{b}-{i}" for i in range(len(frame))]
        s = score(champion, frame, cfg.feature_names)
        log.add(
            [
                {
                    "model": model,
                    "request_id": rid,
                    "ts": (start + dt.timedelta(days=day, seconds=i)).isoformat(),
                    "features": {f: _json(row[f]) for f in cfg.feature_names},
                    "score": float(v),
                    "version": version,
                    "alias": "champion",
                    "latency_ms": 1.0,
                }
                for i, (rid, (_, row), v) in enumerate(
                    zip(ids[b], frame.iterrows(), s, strict=True)
                )
            ]
        )
    deadline = time.monotonic() + 300
    while log.depth and time.monotonic() < deadline:  # shipped to the ledger, all of it
        time.sleep(0.2)
    log.close()
    assert log.depth == 0 and log.dropped == 0
    for b in labelled:
        truth = {r: str(v) for r, v in zip(ids[b], frames[b][cfg.target.name], strict=True)}
        ledger_mod.record_labels(ctx.ledger, model, truth, start)
    spec = MonitorSpec(window_hours=24, history_windows=len(served), min_rows=30)
    mctx = StepContext(
        cfg.model_copy(update={"monitor": spec}),
        ctx.settings,
        run_id="monitor-e2e",
        clock=start + dt.timedelta(days=len(served)),
    )
    return run_monitor(mctx), frames


def test_storms_multiclass_end_to_end_and_monitored(
    airflow_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, cfg, parts = _replay("storms", tmp_path, monkeypatch, batches=6)
    decisions = ctx.ledger.decisions("storms")
    assert [d["batch_id"] for d in decisions] == [p[0] for p in parts[:6]]
    promoted = [d for d in decisions if d["outcome"] == "promoted"]
    # Each promotion made a version; the newest is the champion.
    champion = str(len(promoted))
    assert promoted and ctx.registry.alias("storms", "champion") == champion
    ev = promoted[-1]["details"]["evaluation"]
    assert ev["metric"] == "log_loss" and ev["higher_is_better"] is False
    model = ctx.registry.load("storms", champion)
    # The held-out batch the ledger names, scored by the registered model, scored here.
    name = ev["holdout_batches"][0]
    held = next(p for n, p in parts if n == name)
    classes = [str(c) for c in cfg.target.classes]
    y = held[cfg.target.name].astype(str).map(classes.index).to_numpy()
    probs = model.scores(held)
    assert probs.shape == (len(held), len(classes))
    expected = log_loss(y, probs, labels=list(range(len(classes))))
    assert ev["rows"] == len(held)
    assert ev["challenger_value"] == pytest.approx(expected, rel=1e-4)

    # Served after the replay: batches 6-8; 6 and 7 labelled, 8 not yet.
    out, frames = _serve_and_monitor(ctx, parts, range(6, 9), range(6, 8), tmp_path)
    w = {x["age"]: x for x in out["windows"]}
    assert [w[k]["served"] for k in (0, 1, 2)] == [len(frames[8]), len(frames[7]), len(frames[6])]
    assert [w[k]["labelled"] for k in (0, 1, 2)] == [0, len(frames[7]), len(frames[6])]
    for k, b in ((1, 7), (2, 6)):
        f = frames[b]
        yy = f[cfg.target.name].astype(str).map(classes.index).to_numpy()
        # The metric clips probabilities at 1e-7 (decide.performance); scikit-learn would clip
        # these float32 probabilities at float32's eps (1.2e-7): the same clip is given here.
        probs = np.clip(model.scores(f).astype(float), 1e-7, 1)
        realized = -100 * log_loss(yy, probs, labels=list(range(len(classes))))
        assert w[k]["points"] == pytest.approx(realized, abs=1e-3)
        assert w[k]["low"] < w[k]["points"] < w[k]["high"]
    est = w[0]["estimate"]  # label-free: multiclass CBPE on the unlabelled newest window
    assert est["metric"] == "log_loss" and est["rows"] == len(frames[8])
    assert est["reference_rows"] == len(frames[6]) + len(frames[7])
    assert est["low"] <= est["points"] <= est["high"]
    assert "rows_note" not in out  # re-scored probabilities predict the logged classes
    assert out["verdict"] in ("ok", "suspect", "degraded")
