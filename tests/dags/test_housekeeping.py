"""``finops_housekeeping`` through ``dag.test()`` against moto's server over HTTP, with the AWS
credentials and endpoint only in the Airflow connection ``aws_default``.

A dry run (the default) reports exactly the idle resources with their $/day and touches
nothing; a run with ``dry_run`` off waits for a person, and the person's Approve — given
through Airflow's REST API, as the UI's Required actions page does — stops the notebook and
the training job and deletes the endpoint (moto's state shows it). What moto cannot do (a
running training job, StopTrainingJob) is stood in for as in tests/costs/test_idle.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ..conftest import ROOT, moto_server
from ..costs.sagemaker_helpers import (
    ROLE,
    add_stop_training_job,
    calls,
    make_endpoint,
    make_training_job,
)
from ..support.airflow_api import InProcessApi

DAG_ID = "finops_housekeeping"
WAIT_S = 120


class Api(InProcessApi):
    """Airflow's REST API in process, logged in as ``username``."""

    def __init__(self, username: str) -> None:
        super().__init__(username, DAG_ID)

    def answer_when_asked(self, answer: str, stop: threading.Event) -> None:
        deadline = time.monotonic() + WAIT_S
        while not stop.is_set() and time.monotonic() < deadline:
            request = self.open_request()
            if request is not None:
                self.answer(request, answer)
                return
            time.sleep(0.3)


@pytest.fixture
def account(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    add_stop_training_job(monkeypatch)  # moto lacks it; see tests/costs/test_idle.py
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    with moto_server() as url:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            monkeypatch.delenv(key)
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": url, "region_name": "us-east-1"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))

        def client(service: str) -> Any:
            return boto3.client(
                service,
                region_name="us-east-1",
                endpoint_url=url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )

        sm, cw = client("sagemaker"), client("cloudwatch")
        created = dt.datetime.now(dt.UTC)
        make_endpoint(sm, "idle-ep", "ml.m5.large", 2)
        make_endpoint(sm, "busy-ep", "ml.m5.large", 1)
        sm.create_notebook_instance(
            NotebookInstanceName="nb-left-on", InstanceType="ml.t2.medium", RoleArn=ROLE
        )
        make_training_job(sm, "job-overdue", "ml.m5.xlarge", spot=True)
        now = created + dt.timedelta(days=10)
        calls(cw, "busy-ep", now - dt.timedelta(days=1), 12)
        yield {"sm": sm, "cw": cw, "now": now, "home": tmp_path / "home"}


def _dag() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("hk_dag", ROOT / "dags" / f"{DAG_ID}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.finops_housekeeping()  # the @dag function builds the DAG it names


def _run(dag: Any, logical_date: dt.datetime, conf: dict[str, Any]) -> Any:
    defaults = {k: dag.params[k] for k in dag.params.keys()}
    return copy.deepcopy(dag).test(run_conf={**defaults, **conf}, logical_date=logical_date)


def _state(sm: Any) -> dict[str, Any]:
    return {
        "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
        "notebook": sm.describe_notebook_instance(NotebookInstanceName="nb-left-on")[
            "NotebookInstanceStatus"
        ],
        "job": sm.describe_training_job(TrainingJobName="job-overdue")["TrainingJobStatus"],
    }


@pytest.mark.slow
def test_dry_run_reports_and_an_approval_acts(account: dict[str, Any]) -> None:
    sm, now = account["sm"], account["now"]
    dag, api = _dag(), Api("alice")
    before = _state(sm)
    assert before == {
        "endpoints": ["busy-ep", "idle-ep"],
        "notebook": "InService",
        "job": "InProgress",
    }

    t0 = time.monotonic()
    dry = _run(dag, now, {})
    print(f"dry run: {time.monotonic() - t0:.1f} s")
    states = api.task_states(dry.run_id)
    assert states["find_idle"] == "success"
    assert states["approve_housekeeping"] == states["apply_actions"] == "skipped"
    assert _state(sm) == before  # a dry run touches nothing
    [path] = (account["home"] / "reports" / "finops" / "housekeeping").glob("*/*.json")
    report = json.loads(path.read_text())
    idle = {(r["kind"], r["name"]): r for r in report["idle"]}
    assert set(idle) == {
        ("endpoint", "idle-ep"),
        ("notebook", "nb-left-on"),
        ("training_job", "job-overdue"),
    }
    # The static table has no ml.* prices: the EC2 hardware's, as lower bounds (README).
    assert idle[("endpoint", "idle-ep")]["usd_per_day"] == pytest.approx(2 * 0.096 * 24)
    assert idle[("training_job", "job-overdue")]["usd_per_day"] == pytest.approx(0.074 * 24)
    assert idle[("notebook", "nb-left-on")]["usd_per_day"] is None  # t2.medium: unknown
    assert report["usd_per_day"]["unknown"] == 1
    assert report["checked_at"].startswith(now.date().isoformat())  # the run's clock

    stop = threading.Event()
    person = threading.Thread(target=api.answer_when_asked, args=("Approve", stop), daemon=True)
    person.start()
    t0 = time.monotonic()
    real = _run(dag, now + dt.timedelta(hours=1), {"dry_run": False})
    stop.set()
    person.join(WAIT_S)
    print(f"approved run: {time.monotonic() - t0:.1f} s")
    states = api.task_states(real.run_id)
    assert states["approve_housekeeping"] == states["apply_actions"] == "success", states
    assert _state(sm) == {"endpoints": ["busy-ep"], "notebook": "Stopped", "job": "Stopped"}
    [log] = (account["home"] / "reports" / "finops" / "housekeeping").glob("*/*.actions.json")
    done = json.loads(log.read_text())
    assert done["approved_by"] == "alice"
    assert {(a["name"], a["action"], a["outcome"]) for a in done["actions"]} == {
        ("idle-ep", "delete_endpoint", "done"),
        ("nb-left-on", "stop_notebook_instance", "done"),
        ("job-overdue", "stop_training_job", "done"),
    }


@pytest.mark.parametrize(
    "answer, who",
    [
        ({"chosen_options": ["Approve"], "responded_by_user": {"name": "alice"}}, "alice"),
        ({"chosen_options": ["Reject"], "responded_by_user": {"name": "bob"}}, None),
        ({"chosen_options": ["Reject"], "responded_by_user": None}, None),  # the timeout
        ({"chosen_options": ["Approve"], "responded_by_user": None}, None),  # nobody approved
        (None, None),  # the approval never ran
    ],
)
def test_only_a_persons_approve_acts(answer: dict[str, Any] | None, who: str | None) -> None:
    from costaware.app.housekeeping import approved_by

    assert approved_by(answer) == who


def test_the_dag_is_a_dry_run_unless_told_and_silence_touches_nothing() -> None:
    dag = _dag()  # its import errors, tags and retries: tests/dags/test_dag_integrity.py
    assert dag.params["dry_run"] is True
    assert (dag.params["endpoint_idle_days"], dag.params["notebook_idle_hours"]) == (7, 24)
    assert dag.params["training_max_hours"] == 24 and dag.max_active_runs == 1
    approval = dag.get_task("approve_housekeeping")
    assert type(approval).__name__ == "HITLOperator"
    assert approval.options == ["Approve", "Reject"] and approval.defaults == ["Reject"]
    assert dag.get_task("needs_approval").downstream_task_ids == {"approve_housekeeping"}
    assert approval.downstream_task_ids == {"apply_actions"}
