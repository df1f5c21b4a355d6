"""A backlog drains: several waiting batches are processed one run each, oldest event first.

Under the real scheduler (``airflow standalone``, the helpers of ``test_scheduler.py``), one
triggered run of ``retrain_elec2`` drains three Elec2 weeks whose file names and arrival
order are both out of time order, each run taking one batch, and the drain then stops. With
``dag.test()`` (faster), the two ways a drain must stop: a run that named its batch, and a
batch that stays in the landing zone because its intake failed for a reason no retry fixes.

The model's YAML is the shipped one with ``schedule: null`` (no scheduled run joins in when
the DAG is unpaused: only the drain starts runs) and ``retries: 0`` (a failed intake fails
at once instead of after two retry delays).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from costaware.app.replay import land_batch
from costaware.store.ledger import Ledger

from .. import factories
from ..conftest import ROOT, make_settings
from .harness import WEEKS, Harness
from .test_scheduler import RUN_S, server  # noqa: F401  (the module's own standalone)

DAG_ID = "retrain_elec2"
# Event-time order is WEEKS[0], [1], [2]. Names sort the other way round, and the files
# arrive (modification time) in yet another order, so neither can pass for event time.
OUT_OF_ORDER = {0: "week_c", 1: "week_b", 2: "week_a"}
ARRIVAL = (1, 2, 0)
TERMINAL = {"success", "failed"}


@pytest.fixture(scope="module", autouse=True)
def unscheduled_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Elec2's config without a schedule or retries, for the DAG files of this module (the
    standalone's processes and ``dag.test()`` read ``COSTAWARE_MODELS_DIR``)."""
    folder = tmp_path_factory.mktemp("models")
    cfg = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    cfg["airflow"] = {"schedule": None, "retries": 0}
    (folder / "elec2.yaml").write_text(yaml.safe_dump(cfg))
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_MODELS_DIR", str(folder))
    yield folder
    mp.undo()


def _land_out_of_order(settings: Any) -> None:
    cfg = factories.model("elec2")
    for i in ARRIVAL:
        path = land_batch(settings, cfg, OUT_OF_ORDER[i], WEEKS[i][1])
        time.sleep(0.05)  # distinct modification times, in ARRIVAL order
        assert path.exists()


@pytest.mark.slow
def test_one_trigger_drains_the_backlog_in_event_time_order(server) -> None:  # noqa: F811
    api, settings = server
    _land_out_of_order(settings)
    status, _ = api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    assert status == 200
    status, first = api.call(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}}
    )
    assert status == 200, first

    runs = _wait_for_drain(api)

    for r in runs:  # shown with -s: what one run of a drain costs under the scheduler
        took_s = _seconds(r["end_date"]) - _seconds(r["start_date"])
        print(f"{r['dag_run_id']:<60} {r['state']:<8} {took_s:5.1f} s")
    assert len(runs) == 3 and runs[0]["dag_run_id"] == first["dag_run_id"]
    assert [r["state"] for r in runs] == ["success"] * 3, runs
    ledger = Ledger(settings.db_url)
    took = {}
    for i, name in OUT_OF_ORDER.items():
        row = ledger.batch("elec2", name)
        assert row is not None and row["status"] == "accepted", (name, row)
        took[row["run_id"]] = i
    # One batch per run, and the runs (in the order they ran) took them oldest event first.
    assert [took.get(r["dag_run_id"]) for r in runs] == [0, 1, 2]
    assert not list(settings.landing("elec2").glob("*.parquet"))
    drained = runs[1:]
    assert [r["run_type"] for r in drained] == ["operator_triggered"] * 2
    assert [r["conf"] for r in drained] == [{}, {}]  # a drained run keeps no one's knobs
    assert all(r["note"].startswith("Started by the backlog drain") for r in drained)
    states = [_task_states(api, r["dag_run_id"]) for r in runs]
    assert [s["drain_backlog"] for s in states] == ["success", "success", "skipped"]
    assert [s["check_backlog"] for s in states] == ["success"] * 3
    # The drain stopped: no run is waiting or running, and no fourth run was made.
    time.sleep(5)
    assert len(_runs(api)) == 3


def _seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def _runs(api: Any) -> list[dict[str, Any]]:
    status, body = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=run_after&limit=50")
    assert status == 200, body
    return list(body["dag_runs"])


def _task_states(api: Any, run_id: str) -> dict[str, str]:
    status, body = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    assert status == 200, body
    return {t["task_id"]: t["state"] for t in body["task_instances"]}


def _wait_for_drain(api: Any) -> list[dict[str, Any]]:
    """The DAG's runs once the chain has ended: every run finished and the newest one did not
    trigger another (a trigger creates the next run before its task succeeds)."""
    deadline = time.monotonic() + RUN_S * 3
    while True:
        runs = _runs(api)
        if runs and all(r["state"] in TERMINAL for r in runs):
            last = _task_states(api, runs[-1]["dag_run_id"])
            if last.get("drain_backlog") != "success":
                return runs
        assert time.monotonic() < deadline, f"the backlog did not drain: {runs}"
        time.sleep(3)


# -- where the drain stops, with dag.test() --------------------------------------------------


@pytest.fixture
def harness(airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    home = tmp_path / "home"
    monkeypatch.setenv("COSTAWARE_HOME", str(home))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    return Harness(make_settings(home))


def _test_run(h: Harness, conf: dict[str, Any]) -> tuple[str, dict[str, str], set[str]]:
    """One ``dag.test()`` run: its state, its task states, and the ids of the runs of this
    DAG that appeared meanwhile besides it (those the drain started)."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    def run_ids() -> set[str]:
        with create_session() as session:
            query = sa.select(DagRun.run_id).where(DagRun.dag_id == DAG_ID)
            return set(session.scalars(query).all())

    before = run_ids()
    defaults = {k: h.dag.params[k] for k in h.dag.params.keys()}
    dr = h.dag.test(run_conf={**defaults, **conf})
    with create_session() as session:
        run = session.scalars(
            sa.select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == dr.run_id)
        ).one()
        tasks = {
            ti.task_id: str(getattr(ti.state, "value", ti.state))
            for ti in run.get_task_instances(session=session)
        }
    started = run_ids() - before - {dr.run_id}
    return str(getattr(dr.state, "value", dr.state)), tasks, started


def test_a_batch_that_stays_in_landing_stops_the_drain(harness: Harness) -> None:
    h = harness
    land_batch(h.settings, h.cfg, "stuck_w0", WEEKS[0][1])
    land_batch(h.settings, h.cfg, "waits_w1", WEEKS[1][1])
    # Accepted data cannot be written (a file where its folder must be): the intake of the
    # oldest batch fails, it stays in the landing zone, and no retry would change that.
    h.settings.accepted("elec2").parent.parent.mkdir(parents=True)
    h.settings.accepted("elec2").parent.write_text("not a folder")

    state, tasks, started = _test_run(h, {})

    assert state == "failed"
    assert tasks["validate_batch"] == "failed"
    assert tasks["check_backlog"] == "success" and tasks["drain_backlog"] == "skipped"
    assert started == set()  # no next run: it would only take stuck_w0 again
    assert sorted(p.stem for p in h.settings.landing("elec2").iterdir()) == [
        "stuck_w0",
        "waits_w1",
    ]


def test_a_quarantined_batch_does_not_stop_the_drain(harness: Harness) -> None:
    h = harness
    bad = WEEKS[0][1].assign(nswdemand=WEEKS[0][1]["nswdemand"] + 3)  # out of range
    land_batch(h.settings, h.cfg, "bad_w0", bad)
    land_batch(h.settings, h.cfg, "next_w1", WEEKS[1][1])

    state, tasks, started = _test_run(h, {})

    assert state == "failed"  # the quarantine fails the run loudly; the drain is no excuse
    assert tasks["validate_batch"] == "failed"
    assert tasks["check_backlog"] == "success" and tasks["drain_backlog"] == "success"
    assert len(started) == 1 and started.pop().startswith("backlog__after_bad_w0__")
    assert [p.stem for p in h.settings.landing("elec2").iterdir()] == ["next_w1"]


def test_a_run_for_a_named_batch_does_not_drain(harness: Harness) -> None:
    h = harness
    land_batch(h.settings, h.cfg, "named_w0", WEEKS[0][1])
    land_batch(h.settings, h.cfg, "left_w1", WEEKS[1][1])

    state, tasks, started = _test_run(h, {"batch": "left_w1"})

    assert state == "success"
    assert tasks["check_backlog"] == "success" and tasks["drain_backlog"] == "skipped"
    assert started == set()
    assert Ledger(h.settings.db_url).batch("elec2", "left_w1") is not None
    assert [p.stem for p in h.settings.landing("elec2").iterdir()] == ["named_w0"]
