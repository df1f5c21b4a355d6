"""An ``approve`` decision driven to the end through the real retrain DAG (``dag.test()``).

With ``auto_approve_usd: 0`` every retrain the checkpoint finds worth its cost needs a
person. ``approve_retrain`` (Airflow 3.3's HITL ApprovalOperator) parks in AWAITING_INPUT and
``dag.test()`` waits for it. A thread in the test plays the person: it finds the open request
and answers it through Airflow's REST API (``PATCH .../hitlDetails``, what the UI's Required
actions page calls; the API app runs in process) — or, for "nobody answers", plays the
scheduler's timeout sweep (``SchedulerJobRunner.check_awaiting_input_timeouts``), which writes
the default (Reject) once the response deadline has passed. The outcome is read from the
ledger, the registry and Airflow's task states, never from log text.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import ROOT, make_settings
from ..support.airflow_api import InProcessApi
from .harness import Harness

pytestmark = pytest.mark.airflow  # runs the real retrain DAG with dag.test()

DAG_ID = "retrain_elec2"
TIMEOUT_HOURS = 0.001  # 3.6 s: long enough to answer, short enough to wait out
WAIT_S = 180  # for the request to appear (the run's earlier tasks take a few seconds)


def _sweep_timeouts() -> int:
    """One pass of the scheduler's AWAITING_INPUT timeout sweep; returns how many are left."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import func, select

    SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()
    with create_session() as session:
        return session.scalar(
            select(func.count()).where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
            )
        )


class Person(threading.Thread):
    """Answers the run's approval request with ``answer`` ("Approve" / "Reject"), or never
    (``None``: the scheduler's sweep applies the default after the timeout)."""

    def __init__(self, api: InProcessApi, answer: str | None) -> None:
        super().__init__(daemon=True)
        self.api, self.answer = api, answer
        self.request: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.run_ended = threading.Event()

    def run(self) -> None:
        try:
            deadline = time.monotonic() + WAIT_S
            while (req := self.api.open_request()) is None:
                if self.run_ended.is_set() or time.monotonic() > deadline:
                    return  # never asked: the test says why from the ledger
                time.sleep(0.3)
            self.request = req
            if self.answer is not None:
                self.api.answer(req, self.answer)
                return
        except BaseException as exc:  # reported by the test; the run must still end
            self.error = exc
        # Nobody answers (or answering failed): be the scheduler until the deadline passes.
        deadline = time.monotonic() + WAIT_S
        while not self.run_ended.is_set() and _sweep_timeouts() and time.monotonic() < deadline:
            time.sleep(0.5)


@pytest.fixture(scope="module")
def approvals(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("approval")
    models = tmp_path_factory.mktemp("approval-models")
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["cost_policy"]["auto_approve_usd"] = 0.0  # any retrain with a champion asks a person
    raw["airflow"] = {"approval_timeout_hours": TIMEOUT_HOURS}
    (models / "elec2.yaml").write_text(yaml.safe_dump(raw))
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_HOME", str(home))
    mp.setenv("COSTAWARE_MODELS_DIR", str(models))  # read when the DAG file is parsed
    mp.delenv("COSTAWARE_DB_URL", raising=False)
    try:
        h = Harness(make_settings(home))
        # Weeks 0-2 wait for labels; week 3 trains the first model (no champion: no approval).
        for i in range(4):
            assert h.week(i) == "success"
        assert h.champion() == "1"
        yield h, InProcessApi("alice", DAG_ID)
    finally:
        mp.undo()


def _run_with_answer(
    h: Harness, api: InProcessApi, week: int, answer: str | None
) -> dict[str, Any]:
    """Run ``week`` with a person answering ``answer``; what the state looked like before."""
    before = {
        "champion": h.champion(),
        "versions": h.versions(),
        "audit": len(h.ctx.ledger.audit("elec2")),
    }
    person = Person(api, answer)
    person.start()
    t0 = time.monotonic()
    # The trigger form's cost-per-gain override makes the week worth retraining whatever the
    # gain estimate says, so the checkpoint's answer hinges on auto_approve_usd alone.
    state = h.week(week, {"max_usd_per_point_batch": 10.0})
    person.run_ended.set()
    person.join(WAIT_S)
    if person.error is not None:
        raise person.error
    assert state == "success"
    d = h.decision(week)
    assert d["action"] == "approve", d["reason"]
    assert "auto-approve limit $0" in d["reason"]
    req = person.request
    assert req is not None and req["task_instance"]["dag_run_id"] == d["run_id"]
    print(f"week {week} answered {answer}: {time.monotonic() - t0:.1f} s")
    return {**before, "decision": d, "run_id": d["run_id"]}


def _run_costs(h: Harness, run_id: str) -> list[dict[str, Any]]:
    return [c for c in h.ctx.ledger.costs(model="elec2") if c["run_id"] == run_id]


def _assert_nothing_spent(h: Harness, api: InProcessApi, run: dict[str, Any]) -> None:
    states = api.task_states(run["run_id"])
    assert states["approve_retrain"] == "success"
    for task in ("train_challenger", "evaluate_challenger", "promote_or_reject"):
        assert states[task] == "skipped", states
    assert states["publish_report"] == "success"
    assert _run_costs(h, run["run_id"]) == []
    assert h.versions() == run["versions"]  # no challenger registered
    assert h.champion() == run["champion"]
    assert len(h.ctx.ledger.audit("elec2")) == run["audit"]


def test_reject_trains_nothing(approvals) -> None:
    h, api = approvals
    run = _run_with_answer(h, api, 4, "Reject")
    _assert_nothing_spent(h, api, run)
    answer = api.hitl(run["run_id"], "approve_retrain")
    assert answer["chosen_options"] == ["Reject"]
    assert answer["responded_by_user"]["name"] == "alice"
    assert run["decision"]["outcome"] == "rejected by alice"


def test_no_answer_times_out_to_reject(approvals) -> None:
    h, api = approvals
    run = _run_with_answer(h, api, 5, None)
    _assert_nothing_spent(h, api, run)
    answer = api.hitl(run["run_id"], "approve_retrain")
    assert answer["chosen_options"] == ["Reject"]  # the default, applied by the sweep
    assert answer["responded_by_user"] is None
    waited = dt.datetime.fromisoformat(answer["responded_at"]) - dt.datetime.fromisoformat(
        answer["created_at"]
    )
    assert waited >= dt.timedelta(hours=TIMEOUT_HOURS)  # not before the deadline
    assert run["decision"]["outcome"] == "timed out"


def test_approve_trains_evaluates_and_decides(approvals) -> None:
    h, api = approvals
    run = _run_with_answer(h, api, 6, "Approve")
    states = api.task_states(run["run_id"])
    for task in ("approve_retrain", "train_challenger", "evaluate_challenger"):
        assert states[task] == "success", states
    assert states["promote_or_reject"] == states["publish_report"] == "success"
    new = sorted(set(h.versions()) - set(run["versions"]))
    assert len(new) == 1  # exactly one challenger registered
    costs = _run_costs(h, run["run_id"])
    assert len(costs) >= 1 and all(c["usd"] is not None and c["usd"] > 0 for c in costs)
    d = h.decision(6)
    ev = d["details"]["evaluation"]
    assert ev["challenger_version"] == new[0]
    audit = [a for a in h.ctx.ledger.audit("elec2") if a["run_id"] == run["run_id"]]
    if ev["verdict"] == "promote":
        assert h.champion() == new[0]
        assert [(a["action"], a["to_version"]) for a in audit] == [("promote", new[0])]
        assert d["outcome"] == "promoted"
    else:
        assert h.champion() == run["champion"]
        assert [a["action"] for a in audit] == ["reject"]
        assert d["outcome"] == "rejected"
    assert api.hitl(run["run_id"], "approve_retrain")["responded_by_user"]["name"] == "alice"
