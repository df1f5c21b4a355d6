"""The retrain DAG under Airflow's real scheduler, triggered through the REST API.

`airflow standalone` (scheduler, DAG processor, triggerer, API server; each task in its own
process) on a private state folder and a free port. Slower than ``dag.test()`` but the only
way to see the trigger form's validation and the task processes that production runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from costaware.app.airflow_env import airflow_env, ensure_airflow_db
from costaware.app.replay import land_batch
from costaware.store.ledger import Ledger

from ..conftest import make_settings
from ..support.airflow_api import AirflowApi
from .harness import WEEKS

READY_S, RUN_S = 240, 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("scheduler")
    settings = make_settings(home)
    ensure_airflow_db(settings)
    port = _free_port()
    env = {
        **os.environ,
        **airflow_env(settings),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        # Task processes report to the API server's execution API (default port 8080).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
    }
    env.pop("COSTAWARE_DB_URL", None)
    log = (home / "standalone.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("airflow")), "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = AirflowApi(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + READY_S
        while True:
            try:
                status, health = api.call("GET", "/api/v2/monitor/health")
                if status == 200 and health["scheduler"]["status"] == "healthy":
                    break
            except (OSError, KeyError):
                pass
            assert proc.poll() is None, (home / "standalone.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "airflow standalone did not become healthy"
            time.sleep(2)
        pw_file = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
        password = json.loads(pw_file.read_text())["admin"]
        status, token = api.call("POST", "/auth/token", {"username": "admin", "password": password})
        assert status in (200, 201), token
        api.token = token["access_token"]
        yield api, settings
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_trigger_form_rejects_invalid_values(server) -> None:
    api, _ = server
    status, body = api.call(
        "POST",
        "/api/v2/dags/retrain_elec2/dagRuns",
        {"logical_date": None, "conf": {"max_usd_per_metric_point": -1}},
    )
    assert status == 400
    assert "max_usd_per_metric_point" in json.dumps(body)


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
