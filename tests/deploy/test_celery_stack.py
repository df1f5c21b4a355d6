"""costaware under Airflow's CeleryExecutor: the stack of ``make stack``, end to end.

``costaware.app.stack.up`` starts the deployed topology on this machine — moto's server as
S3, an MLflow server (PostgreSQL store, artifacts on S3), Airflow's scheduler, DAG processor,
triggerer and API server, and two Celery workers, each in its own empty folder — on fresh
databases, a fresh bucket and a Redis database of its own. Elec2 weeks are dropped into
``s3://<bucket>/state/landing/elec2/`` with boto3, as a producer would: four weeks' batches
at once (newest first, so arrival order is the reverse of event time) and the labels of the
first three. Unpausing the DAG makes one scheduled run; it takes the oldest week and the
backlog drains, one run per batch in event-time order, until the first model is trained and
promoted. Then two more weeks land and a run triggered through the REST API takes the one its
``conf`` names.
Assertions read the ledger, the registry (from a fresh process), the bucket and Airflow's
metadata DB — never log text.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from costaware.app import stack
from costaware.app.replay import load_source, split_batches
from costaware.app.stack_topology import private_overrides, s3_client
from costaware.batches.data import ID_COLUMN, TIME_COLUMN
from costaware.config import get_model

from ..support.airflow_api import AirflowApi

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.airflow]

ROOT = Path(__file__).resolve().parents[2]
UP_S, RUN_S = 240, 240
DAG = "retrain_elec2"
BACKLOG = 4  # weeks landed at once


def _free_redis_db() -> int:
    """An empty Redis database for this stack's Celery queues, claimed at once: the stack's
    workers connect ~40 s after up() starts, and until then another stack starting would see
    the database free (two stacks on one database run each other's tasks). down(drop=True)
    empties it, the claim with it."""
    import redis

    for db in range(6, 16):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.dbsize() == 0 and client.set("costaware:stack-claim", "test", nx=True):
            return db
    pytest.fail("Redis at 127.0.0.1:6379 has no empty database among 6-15 for the stack")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    """The stack on fresh databases and a fresh bucket; stopped and dropped afterwards."""
    home = tmp_path_factory.mktemp("stack")
    tag = uuid.uuid4().hex[:8]
    # Nothing runs before the test lands its data and unpauses the one DAG it drives.
    overrides = private_overrides("cw", tag)
    t0, state = time.monotonic(), None
    try:
        state = stack.up(
            home,
            overrides=overrides,
            redis_db=_free_redis_db(),
            timeout=UP_S,
            preferred_ports=False,
            say=lambda _: None,
        )
        print(f"\nstack up in {time.monotonic() - t0:.1f} s: {state['timings']}")
        yield home, state
    finally:
        if stack.read_state(stack.stack_root(home)) is not None:
            stack.down(home, drop=True, grace=20)
        elif state is not None:  # test_stack_down stopped it: drop what it made
            stack.drop_data(state)


@pytest.fixture(scope="module")
def weeks():
    cfg = get_model(ROOT / "include" / "models", "elec2")
    return cfg, list(split_batches(cfg, load_source(cfg, ROOT)))


@pytest.fixture(scope="module")
def s3(running):
    _, state = running
    return s3_client(state["urls"]["moto"])


def _put_parquet(s3: Any, bucket: str, key: str, frame: Any) -> None:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def _land_backlog(s3: Any, state: dict[str, Any], weeks: Any, n: int) -> None:
    """``n`` weeks' batches, newest first, then the labels of all but the last."""
    cfg, parts = weeks
    bucket, landing = state["bucket"], "state/landing/elec2"
    for name, part in reversed(parts[:n]):
        frame = part[[ID_COLUMN, TIME_COLUMN, *cfg.feature_names]]
        _put_parquet(s3, bucket, f"{landing}/{name}.parquet", frame)
        time.sleep(1.1)  # S3's LastModified has one-second steps: arrival order is visible
    for name, part in parts[: n - 1]:
        frame = part[[ID_COLUMN, cfg.target.name]]
        _put_parquet(s3, bucket, f"{landing}/labels/{name}.parquet", frame)


@pytest.fixture(scope="module")
def flow(running, s3, weeks):
    """A four-week backlog through the stack: one scheduled run, then the drain. Returns the
    API client and the run ids, oldest first."""
    home, state = running
    password = json.loads(Path(state["secrets_file"]).read_text())["passwords"]["admin"]
    api = AirflowApi(state["urls"]["api-server"]).login("admin", password)
    deadline = time.monotonic() + 120
    while api.call("GET", f"/api/v2/dags/{DAG}")[0] != 200:  # parsed by the DAG processor
        assert time.monotonic() < deadline, f"{DAG} was not parsed; see {state['logs']}"
        time.sleep(2)
    _land_backlog(s3, state, weeks, BACKLOG)
    t0 = time.monotonic()
    status, body = api.call("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": False})
    assert status == 200, body
    while not (found := api.call("GET", f"/api/v2/dags/{DAG}/dagRuns")[1]["dag_runs"]):
        assert time.monotonic() < t0 + 60, "unpausing the DAG made no scheduled run"
        time.sleep(1)
    assert found[0]["run_type"] == "scheduled", found
    runs = [api.wait_for_run(DAG, found[0]["dag_run_id"], RUN_S)["dag_run_id"]]
    # Each run's teardown triggers the next while batches wait (max_active_runs=1).
    deadline = time.monotonic() + BACKLOG * RUN_S
    while len(runs) < BACKLOG:
        listed = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns?order_by=run_after")[1]
        new = [r["dag_run_id"] for r in listed["dag_runs"] if r["dag_run_id"] not in runs]
        if new:
            runs.append(api.wait_for_run(DAG, new[0], RUN_S)["dag_run_id"])
        else:
            assert time.monotonic() < deadline, f"the backlog stopped draining after {runs}"
            time.sleep(2)
    time.sleep(10)  # the last run's drain_backlog is skipped: no fifth run may appear
    listed = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns")[1]["dag_runs"]
    assert sorted(r["dag_run_id"] for r in listed) == sorted(runs), listed
    print(f"{BACKLOG} runs through Celery in {time.monotonic() - t0:.1f} s")
    for run_id in runs:
        print(_split(state, run_id))
    return api, runs


def _split(state: dict[str, Any], run_id: str) -> str:
    """How a run's wall time splits: tasks running vs. waiting to start (printed with -s)."""
    import sqlalchemy as sa

    engine = sa.create_engine(state["airflow_db_url"])
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT extract(epoch FROM max(ti.end_date) - min(dr.start_date)),"
                    " sum(extract(epoch FROM ti.end_date - ti.start_date)),"
                    " sum(extract(epoch FROM ti.start_date - ti.queued_dttm)), count(*)"
                    " FROM task_instance ti JOIN dag_run dr ON dr.dag_id = ti.dag_id"
                    " AND dr.run_id = ti.run_id"
                    " WHERE ti.run_id = :run AND ti.start_date IS NOT NULL"
                    " AND ti.queued_dttm IS NOT NULL"
                ),
                {"run": run_id},
            ).one()
    finally:
        engine.dispose()
    wall, busy, queued, n = (float(x or 0) for x in row)
    return (
        f"{run_id}: {wall:.0f} s, {n:.0f} tasks ran {busy:.0f} s in all "
        f"and waited {queued:.0f} s from queued to started"
    )


def test_the_backlog_drains_one_run_per_batch_in_event_time_order_and_promotes(
    running, weeks, flow
) -> None:
    from costaware.store.ledger import Ledger

    _, state = running
    _, parts = weeks
    _, runs = flow
    assert [r.startswith("backlog__after_") for r in runs] == [False] + [True] * (BACKLOG - 1)
    ledger = Ledger(state["ledger_url"])
    for i, run_id in enumerate(runs):  # run i took week i, whatever order they arrived in
        batch = ledger.batch("elec2", parts[i][0])
        assert batch is not None and batch["status"] == "accepted", batch
        decision = ledger.decision_for_batch("elec2", parts[i][0])
        assert decision is not None and decision["run_id"] == run_id
    d = ledger.decision_for_batch("elec2", parts[0][0])
    assert d["action"] == "skip" and d["reason"].startswith("waiting for labels"), d
    trained = [
        (run_id, d)
        for run_id, (name, _) in zip(runs, parts, strict=False)
        if (d := ledger.decision_for_batch("elec2", name))["action"] == "retrain"
    ]
    run_id, first = trained[0]
    assert first["outcome"] == "promoted", first["reason"]
    costs = ledger.run_costs("elec2", run_id)
    assert costs and all(c["usd"] > 0 and c["status"] == "final" for c in costs), costs
    audit = [(a["action"], a["from_version"], a["to_version"]) for a in ledger.audit("elec2")]
    assert audit[0] == ("promote", None, "1"), audit


def test_the_champion_loads_in_a_fresh_process_from_the_mlflow_server(
    running, weeks, flow, tmp_path: Path
) -> None:
    """A process with no AWS key, in an empty folder, loads the champion through the MLflow
    server (which alone reads the bucket) and scores a week with it."""
    _, state = running
    cfg, parts = weeks
    week = tmp_path / "week.parquet"
    parts[4][1][cfg.feature_names].to_parquet(week, index=False)
    code = (
        "import sys, mlflow, pandas as pd\n"
        "client = mlflow.MlflowClient()\n"
        "v = client.get_model_version_by_alias('elec2', 'champion')\n"
        "model = mlflow.pyfunc.load_model('models:/elec2@champion')\n"
        "pred = model.predict(pd.read_parquet(sys.argv[1]))\n"
        "print(v.version, len(pred), client.get_run(v.run_id).info.artifact_uri)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = state["urls"]["mlflow"]
    empty = tmp_path / "fresh"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", code, str(week)],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    version, rows, artifact_uri = done.stdout.split()[-3:]
    assert (version, int(rows)) == ("1", len(parts[4][1]))
    assert artifact_uri.startswith("mlflow-artifacts:"), artifact_uri  # served, not a path


def test_the_bucket_holds_accepted_data_reports_and_model_and_the_landing_zone_is_empty(
    running, s3, weeks, flow
) -> None:
    _, state = running
    _, parts = weeks
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=state["bucket"])
        for o in page.get("Contents", [])
    ]
    landing = [k for k in keys if k.startswith("state/landing/")]
    assert landing == [], landing
    accepted = [k for k in keys if k.startswith("state/data/elec2/batches/")]
    for name, _ in parts[:4]:
        assert any(name in k and k.endswith(".parquet") for k in accepted), (name, accepted)
    labels = [k for k in keys if k.startswith("state/data/elec2/labels/")]
    assert labels, keys
    assert f"state/reports/elec2/{parts[3][0]}/index.html" in keys
    assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in keys), keys
    assert any(k.startswith("logs/dag_id=retrain_elec2/") for k in keys)  # task logs


def test_both_celery_workers_ran_tasks(running, flow) -> None:
    import sqlalchemy as sa

    _, state = running
    engine = sa.create_engine(state["airflow_db_url"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT hostname, count(*) FROM task_instance "
                    "WHERE dag_id = :dag AND state = 'success' GROUP BY hostname"
                ),
                {"dag": DAG},
            ).all()
    finally:
        engine.dispose()
    by_host = dict(rows)
    assert set(by_host) == set(state["workers"]), by_host


def test_each_worker_preloaded_what_tasks_import(running, flow) -> None:
    """deploy/common.env names costaware.app.celery_preload in Celery's ``imports``: every
    worker imported all of its modules before its tasks were forked from it. (Not imported
    here: importing it is the preload.)"""
    from costaware.app.stack_topology import WORKERS

    _, state = running
    logs = Path(state["logs"])
    for worker in WORKERS:
        text = (logs / f"{worker}.log").read_text()
        counts = re.findall(r"costaware: preloaded (\d+) of (\d+) modules", text)
        assert counts, f"{worker} did not preload: {text[-3000:]}"
        assert all(done == total and int(total) > 10 for done, total in counts), counts


def test_trigger_form_rejects_invalid_values(flow) -> None:
    api, _ = flow
    status, body = api.call(
        "POST",
        f"/api/v2/dags/{DAG}/dagRuns",
        {"logical_date": None, "conf": {"max_usd_per_point_batch": -1}},
    )
    assert status == 400
    assert "max_usd_per_point_batch" in json.dumps(body)


def test_a_run_triggered_through_the_api_takes_the_batch_it_names(running, s3, weeks, flow) -> None:
    """Two weeks wait in the landing zone; a run triggered through the REST API with
    ``conf.batch`` naming the newer one takes that one, whatever the oldest is. (Its teardown
    then triggers a drain run for the other: ``test_stack_down`` stops the stack under it.)"""
    from costaware.store.ledger import Ledger

    api, _ = flow
    _, state = running
    cfg, parts = weeks
    for name, part in parts[4:6]:
        frame = part[[ID_COLUMN, TIME_COLUMN, *cfg.feature_names]]
        _put_parquet(s3, state["bucket"], f"state/landing/elec2/{name}.parquet", frame)
    named = parts[5][0]
    status, run = api.call(
        "POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": {"batch": named}}
    )
    assert status == 200, run
    api.wait_for_run(DAG, run["dag_run_id"], RUN_S)
    decision = Ledger(state["ledger_url"]).decision_for_batch("elec2", named)
    assert decision is not None and decision["run_id"] == run["dag_run_id"], decision
    _, tis = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances")
    states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
    assert states["collect_batch"] == states["cost_checkpoint"] == "success", states
    assert states["publish_report"] == "success", states


def test_stack_down_stops_every_process_it_started(running) -> None:
    home, state = running
    assert stack.processes(state), "the stack's processes were not found while it runs"
    stopped = stack.down(home, drop=False, grace=20)
    assert set(stopped) == {
        "moto",
        "mlflow",
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        "worker1",
        "worker2",
    }
    assert stack.processes(state) == []
    leaders = [c["pid"] for c in state["components"]]
    ps = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout
    sessions = {int(line.split()[1]) for line in ps.splitlines() if line.strip()}
    assert not sessions & set(leaders), "a process of the stack is still running"


def test_a_component_that_cannot_start_is_named_with_its_log_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    """An executor that does not exist: Airflow's components exit while starting. ``up``
    names the first one it sees fail and its log, and stops everything it started."""
    tag = uuid.uuid4().hex[:8]
    overrides = {
        "COSTAWARE_AIRFLOW_DB": f"cw_{tag}_airflow",
        "COSTAWARE_MLFLOW_DB": f"cw_{tag}_mlflow",
        "COSTAWARE_LEDGER_DB": f"cw_{tag}_ledger",
        "AIRFLOW__CORE__EXECUTOR": "costaware.no_such_module.Executor",
    }
    root = stack.stack_root(tmp_path)
    try:
        with pytest.raises(stack.StackError) as err:
            stack.up(
                tmp_path,
                overrides=overrides,
                redis_db=_free_redis_db(),
                timeout=UP_S,
                preferred_ports=False,
                say=lambda _: None,
            )
        message = str(err.value)
        name, log = message.split(" ", 1)[0], message.split("its log: ", 1)[1].split("\n")[0]
        assert "exited with code" in message and Path(log) == root / "logs" / f"{name}.log"
        assert "no_such_module" in Path(log).read_text()
        state = stack.read_state(root)
        assert state is not None and len(state["components"]) == 8
        assert stack.processes(state) == []
    finally:
        stack.down(tmp_path, drop=True, grace=10)
