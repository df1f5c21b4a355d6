"""The retrain DAG under Airflow's real scheduler, triggered through the REST API.

`airflow standalone` (scheduler, DAG processor, triggerer, API server; each task in its own
process) on a private state folder and a free port. Slower than ``dag.test()`` but the only
way to see the trigger form's validation and the task processes that production runs.
"""

from __future__ import annotations

import json
import time

import pytest

from costaware.app.replay import land_batch
from costaware.store.ledger import Ledger

from ..conftest import make_settings
from ..support.standalone import airflow_standalone
from .harness import WEEKS

RUN_S = 420


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    settings = make_settings(tmp_path_factory.mktemp("scheduler"))
    with airflow_standalone(settings) as api:
        yield api, settings


def test_trigger_form_rejects_invalid_values(server) -> None:
    api, _ = server
    status, body = api.call(
        "POST",
        "/api/v2/dags/retrain_elec2/dagRuns",
        {"logical_date": None, "conf": {"max_usd_per_point_batch": -1}},
    )
    assert status == 400
    assert "max_usd_per_point_batch" in json.dumps(body)


def test_scheduler_runs_the_dag_end_to_end(server) -> None:
    api, settings = server
    cfg_name = "elec2"
    from costaware.config import get_model

    cfg = get_model(settings.models_dir, cfg_name)
    for i in (0, 1):  # the scheduled run (on unpause) takes the oldest; ours names the other
        land_batch(settings, cfg, *WEEKS[i])
    status, run = api.call(
        "POST",
        "/api/v2/dags/retrain_elec2/dagRuns",
        {"logical_date": None, "conf": {"batch": WEEKS[1][0]}},
    )
    assert status == 200, run
    status, _ = api.call("PATCH", "/api/v2/dags/retrain_elec2", {"is_paused": False})
    assert status == 200
    deadline, state = time.monotonic() + RUN_S, "queued"
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(3)
        _, got = api.call("GET", f"/api/v2/dags/retrain_elec2/dagRuns/{run['dag_run_id']}")
        state = got["state"]
    assert state == "success"
    decision = Ledger(settings.db_url).decision_for_batch("elec2", WEEKS[1][0])
    assert decision is not None and decision["run_id"] == run["dag_run_id"]
    assert decision["action"] == "skip" and decision["reason"].startswith("waiting for labels")
    _, tis = api.call(
        "GET", f"/api/v2/dags/retrain_elec2/dagRuns/{run['dag_run_id']}/taskInstances"
    )
    states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
    assert states["cost_checkpoint"] == states["publish_report"] == "success"
    assert states["train_challenger"] == "skipped"
