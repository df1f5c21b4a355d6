"""The silent-degradation incident: ``monitor_elec2`` (``dag.test()``) on Elec2 predictions
served and logged by a real `costaware serve` process (ledger on PostgreSQL).

Champion v2 was trained on weeks 4-7 and promoted on its held-out week 8 (that AUC is its
reference, as the retrain DAG records it); v1 (weeks 0-3) is previous_champion. Weeks 9-12
are replayed through ``POST /predict`` (each row at its event time) and their labels posted
one week late through ``POST /labels``. The monitor runs weekly windows with
``on_degradation: rollback``; the server follows the rollback without a restart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
from pathlib import Path

import httpx
import pytest
from sklearn.metrics import roc_auc_score

from costaware.app.replay import run_dag_once
from costaware.decide.performance import metric_points
from costaware.models.registry import CHAMPION, PREVIOUS, Registry
from costaware.models.scoring import load_model_file, score
from costaware.monitor.run import table
from costaware.settings import Settings
from costaware.store import ledger as ledger_mod
from costaware.store.ledger import Ledger

from ..conftest import ROOT, pg_database
from ..serve import helpers as h
from ..support.servers import free_port

START = dt.datetime(1996, 5, 7)  # elec2.yaml's data.time.start
WEEK = dt.timedelta(days=7)
MONITOR = {
    "window_hours": 168,
    "history_windows": 4,
    "tolerance_points": 2.0,
    "on_degradation": "rollback",
    # Weekly windows that start when Elec2's weeks do (Tuesdays), not on ISO Mondays.
    "window_origin": START.isoformat(),
}


def _load_dag() -> object:
    spec = importlib.util.spec_from_file_location(
        "monitor_dags", ROOT / "dags/costaware_monitor.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.monitor_elec2


def _serve_week(client: httpx.Client, week: int) -> list[str]:
    frame = h.weeks(week, week)
    rows = [
        {**feats, "event_time": t.isoformat()}
        for feats, t in zip(h.rows(frame), frame["event_time"], strict=True)
    ]
    r = client.post("/predict", json={"rows": rows})
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["predictions"]]


def _post_labels(client: httpx.Client, week: int, ids: list[str]) -> None:
    frame = h.weeks(week, week)
    labels = [
        {"id": i, "label": int(v)} for i, v in zip(ids, frame[h.CFG.target.name], strict=True)
    ]
    out = client.post("/labels", json={"labels": labels}).json()
    assert (out["stored"], out["unknown"]) == (len(ids), [])


@pytest.mark.slow
def test_monitor_finds_the_decay_from_labels_and_rolls_back(
    airflow_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    with pg_database("costaware_monitor") as db_url:
        monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("COSTAWARE_DB_URL", db_url)
        monkeypatch.setenv(
            "COSTAWARE_MODELS_DIR",
            str(
                h.models_dir(
                    tmp_path / "models", monitor=MONITOR, serving={"alias_poll_seconds": 1}
                )
            ),
        )
        settings = Settings.from_env()
        reg = Registry(settings.mlflow_uri, settings.mlflow_artifacts)
        ledger = Ledger(settings.db_url)
        p1 = h.train(h.weeks(0, 3), tmp_path / "m", "v1")
        p2 = h.train(h.weeks(4, 7), tmp_path / "m", "v2")
        m2 = load_model_file(p2)
        held_out = h.weeks(8, 8)
        reference = metric_points(h.labels_of(held_out), score(m2, held_out, h.FEATURES), "roc_auc")
        v1 = h.register(reg, p1, "run-1", h.weeks(0, 3), 60.0)
        v2 = h.register(reg, p2, "run-2", h.weeks(4, 7), reference)
        reg.move_champion("elec2", None, v1)
        reg.move_champion("elec2", v1, v2)
        env = {
            "COSTAWARE_HOME": str(tmp_path / "home"),
            "COSTAWARE_DB_URL": db_url,
            "COSTAWARE_MODELS_DIR": str(tmp_path / "models"),
            "COSTAWARE_SERVE_CLIENT_TIME": "1",  # a replay: rows are logged at event time
        }
        served = contextlib.ExitStack()
        request.addfinalizer(served.close)  # the server stops even when an assert fails
        port = free_port()
        served.enter_context(h.serve_process(env, port, tmp_path / "serve.log"))
        client = served.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}"))
        ids = {week: _serve_week(client, week) for week in (9, 10, 11, 12)}
        for week in (9, 10):
            _post_labels(client, week, ids[week])
        h.wait_until(lambda: client.get("/healthz").json()["log"]["pending"] == 0)
        dag = _load_dag()

        # End of week 11: weeks 9-10 labelled, week 11 not yet.
        assert (
            run_dag_once(dag, logical_date=(START + WEEK * 12).replace(tzinfo=dt.UTC)) == "success"
        )
        first = ledger_mod.monitor_history(ledger, "elec2")[-1]
        print(f"end of week 11:\n{table(first['details'])}")
        windows = first["details"]["windows"]
        assert [w["served"] for w in windows] == [336, 336, 336, 0]
        assert [w["labelled"] for w in windows] == [0, 336, 336, 0]
        assert [w["coverage"] for w in windows] == [0.0, 1.0, 1.0, None]
        week10 = h.weeks(10, 10)
        realized = 100 * roc_auc_score(h.labels_of(week10), score(m2, week10, h.FEATURES))
        assert windows[1]["points"] == pytest.approx(realized, abs=1e-3)
        assert windows[1]["low"] < realized < windows[1]["high"]
        assert "points" not in windows[0] and windows[0]["estimate"]["rows"] == 336
        assert first["details"]["drift"]["rows"] == 336
        assert first["details"]["volume"] == 336
        assert first["verdict"] in ("ok", "suspect") and first["action"] in ("none", "alert")
        assert reg.alias("elec2", CHAMPION) == v2

        # End of week 12: week 11's labels arrived, and they show the decay.
        _post_labels(client, 11, ids[11])
        assert (
            run_dag_once(dag, logical_date=(START + WEEK * 13).replace(tzinfo=dt.UTC)) == "success"
        )
        second = ledger_mod.monitor_history(ledger, "elec2")[-1]
        print(f"end of week 12:\n{table(second['details'])}")
        week11 = h.weeks(11, 11)
        realized11 = 100 * roc_auc_score(h.labels_of(week11), score(m2, week11, h.FEATURES))
        w11 = second["details"]["windows"][1]
        assert w11["points"] == pytest.approx(realized11, abs=1e-3)
        decayed = realized11 < reference - MONITOR["tolerance_points"] and w11["high"] < reference
        assert decayed  # the data: v2 scores well below its reference on week 11
        assert (second["verdict"], second["action"]) == ("degraded", "rollback")
        assert second["details"]["began"] == (START + WEEK * 11).isoformat()
        # Acted as configured: the rollback's audit row, and the registry moved.
        rollback = [a for a in ledger.audit("elec2") if a["action"] == "rollback"]
        assert len(rollback) == 1 and rollback[0]["run_id"] == second["run_id"]
        assert (rollback[0]["from_version"], rollback[0]["to_version"]) == (v2, v1)
        assert rollback[0]["actor"] == "airflow:monitor_elec2" and rollback[0]["status"] == "done"
        assert reg.alias("elec2", CHAMPION) == v1 and reg.alias("elec2", PREVIOUS) == v2
        # Service health stayed green throughout, and the server now serves v1.
        assert client.get("/healthz").status_code == 200
        row = h.rows(h.weeks(13, 13).iloc[:1])[0]
        h.wait_until(
            lambda: client.post("/predict", json=row).json()["predictions"][0]["version"] == v1
        )
        served.close()
        ledger.dispose()


def test_a_retrain_request_is_an_asset_event_the_retrain_dag_is_scheduled_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetOrTimeSchedule

    monitor = {**MONITOR, "on_degradation": "retrain", "schedule": "@daily"}
    models = h.models_dir(tmp_path / "models", monitor=monitor)
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(models))
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    mon, retrain = bag.dags["monitor_elec2"], bag.dags["retrain_elec2"]
    outlets = mon.task_dict["request_retrain"].outlets
    assert [a.name for a in outlets] == ["costaware_retrain_request_elec2"]
    assert isinstance(retrain.timetable, AssetOrTimeSchedule)
    assert mon.timetable.expression == "0 0 * * *"
    # Models that do not ask for retrains keep their plain schedule.
    assert not isinstance(bag.dags["retrain_weather"].timetable, AssetOrTimeSchedule)
    assert bag.dags["monitor_weather"].timetable.expression == "0 * * * *"
