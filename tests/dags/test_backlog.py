"""A backlog drains: several waiting batches are processed one run each, oldest event first.

The drain under the real engine (the CeleryExecutor stack: a four-week backlog landed newest
first on S3, drained one run per batch in event-time order) is in
``tests/deploy/test_celery_stack.py``; ordering by event time rather than name or arrival is
in ``tests/batches/test_order_and_clock.py``. Here, with ``dag.test()``: a quarantined batch
does not stop the drain, and the two ways a drain must stop: a run that named its batch, and a
batch that stays in the landing zone because its intake failed for a reason no retry fixes.

The model's YAML is the shipped one with ``schedule: null`` (no scheduled run joins in when
the DAG is unpaused: only the drain starts runs) and ``retries: 0`` (a failed intake fails
at once instead of after two retry delays).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from costaware.app.replay import dag_test_run, land_batch
from costaware.store.ledger import Ledger

from ..conftest import ROOT, make_settings
from .harness import WEEKS, Harness

pytestmark = pytest.mark.airflow  # runs the real retrain DAG with dag.test()

DAG_ID = "retrain_elec2"


@pytest.fixture(scope="module", autouse=True)
def unscheduled_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Elec2's config without a schedule or retries, for the DAG files of this module
    (``dag.test()`` reads ``COSTAWARE_MODELS_DIR``)."""
    folder = tmp_path_factory.mktemp("models")
    cfg = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    cfg["airflow"] = {"schedule": None, "retries": 0}
    (folder / "elec2.yaml").write_text(yaml.safe_dump(cfg))
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_MODELS_DIR", str(folder))
    yield folder
    mp.undo()


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
    # Through replay's runner, as `costaware replay` runs the DAG: the drain's
    # TriggerDagRunOperator must work there too (a deep copy of the DAG once broke it).
    dr = dag_test_run(h.dag, conf)
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
