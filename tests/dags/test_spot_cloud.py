"""SageMaker training waits in Airflow's real triggerer, not in a worker slot.

``airflow standalone`` (scheduler, DAG processor, triggerer, API server; each task in its own
process) runs a one-task DAG with ``SageMakerSpotTrainingOperator`` for a model whose YAML
says ``training.backend: sagemaker``. SageMaker is moto's server in this process, reached
by every Airflow process through the Airflow connection; moto's jobs are made to start
``InProgress`` (as SageMaker's do) and to end when the test says (see
``tests/models/training/cloud.py`` for what moto cannot do itself). While the job trains the
task instance must be ``deferred`` (no worker process holds it) and the job must still be
polled — by the triggerer, the only Airflow process running anything for it — and when the
job ends the task resumes: Completed → success with its cost in the ledger; Stopped with
MaxWaitTimeExceeded → the task fails, its cost in the ledger all the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from costaware.store.ledger import Ledger

from ..conftest import ROOT, make_settings, moto_server
from ..models.training import cloud
from ..support.airflow_api import AirflowApi
from ..support.standalone import airflow_standalone

pytestmark = pytest.mark.slow
READY_S, STATE_S = 240, 180
DAG_ID = "spot_cloud_elec2"
TIMEOUT_DAG = "spot_cloud_timeout"
PRICE = 0.23  # $/h, ml.m5.xlarge in the model's price table below

DAG_FILE = """
import datetime as dt

from airflow.sdk import dag

from costaware.app.cloud_training import SageMakerSpotTrainingOperator
from costaware.config import get_model
from costaware.settings import Settings

CFG = get_model(Settings.from_env().models_dir, "elec2")


@dag(start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False, tags=["test"])
def spot_cloud_elec2():
    SageMakerSpotTrainingOperator(
        task_id="train_challenger",
        cfg=CFG,
        job={JOB},
        max_polls=600,
        retries=0,
    )


spot_cloud_elec2()


@dag(start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False, tags=["test"])
def spot_cloud_timeout():
    SageMakerSpotTrainingOperator(
        task_id="train_challenger",
        cfg=CFG,
        job={JOB},
        max_polls=15,  # 15 one-second polls: the job never ends, the wait must
        retries=0,
    )


spot_cloud_timeout()
"""


def _model_dir(tmp: Path) -> Path:
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["training"].update(
        backend="sagemaker",
        instance_type="ml.m5.xlarge",
        sagemaker={"role_arn": cloud.ROLE, "aws_conn_id": cloud.CONN_ID, "poll_seconds": 1},
    )
    raw["cost_policy"]["price_source_options"] = {"table": {"ml.m5.xlarge": [PRICE, 0.069]}}
    folder = tmp / "models"
    folder.mkdir()
    (folder / "elec2.yaml").write_text(yaml.safe_dump(raw))
    return folder


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from moto.sagemaker import models as sm_models
    from moto.sagemaker.responses import SageMakerResponse

    home = tmp_path_factory.mktemp("spot_cloud")
    describes: list[float] = []
    mp = pytest.MonkeyPatch()
    created = sm_models.FakeTrainingJob.__init__

    def starts_in_progress(self: Any, *args: Any, **kwargs: Any) -> None:
        created(self, *args, **kwargs)
        self.training_job_status, self.secondary_status = "InProgress", "Training"

    described = SageMakerResponse.describe_training_job

    def counted(self: Any) -> Any:
        describes.append(time.monotonic())
        return described(self)

    mp.setattr(sm_models.FakeTrainingJob, "__init__", starts_in_progress)
    mp.setattr(SageMakerResponse, "describe_training_job", counted)
    cloud.add_stop_training_job(mp)
    with moto_server() as moto:
        settings = make_settings(home)
        dags = home / "dags"
        dags.mkdir()
        job = {
            "algorithm": "xgboost",
            "train_path": "s3://costaware/state/work/elec2/cloud/train.csv",
            "features": ["period", "nswdemand", "vicprice", "vicdemand", "transfer"],
            "target": "class",
            "params": {"max_depth": 5},
            "num_boost_round": 120,
            "chunk_rounds": 20,
            "seed": 7,
            "workdir": str(home / "work"),
            "mirror": "s3://costaware/state/work/elec2/cloud",
        }
        (dags / "spot_cloud.py").write_text(DAG_FILE.replace("{JOB}", repr(job)))
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": moto, "region_name": cloud.REGION},
        }
        env = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            f"AIRFLOW_CONN_{cloud.CONN_ID.upper()}": json.dumps(conn),
            "COSTAWARE_MODELS_DIR": str(_model_dir(home)),
        }
        try:
            with airflow_standalone(
                settings, env, healthy=("triggerer",), drop=("AWS_",), ready_s=READY_S
            ) as api:
                deadline = time.monotonic() + READY_S
                for dag_id in (DAG_ID, TIMEOUT_DAG):
                    while api.call("GET", f"/api/v2/dags/{dag_id}")[0] != 200:
                        assert time.monotonic() < deadline, f"{dag_id} was never parsed"
                        time.sleep(2)
                    status, _ = api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                    assert status == 200
                yield {"api": api, "settings": settings, "describes": describes, "home": home}
        finally:
            mp.undo()


def _trigger(api: AirflowApi, dag_id: str = DAG_ID) -> str:
    status, run = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    assert status == 200, run
    return str(run["dag_run_id"])


def _wait(api: AirflowApi, path: str, key: str, wanted: set[str], home: Path) -> str:
    deadline, state = time.monotonic() + STATE_S, None
    while time.monotonic() < deadline:
        status, got = api.call("GET", path)
        state = got.get(key) if status == 200 else None
        if state in wanted:
            return str(state)
        time.sleep(1)
    tail = (home / "standalone.log").read_text()[-3000:]
    raise AssertionError(f"{path}: still {state!r}, wanted {wanted}\n{tail}")


def _deferred_job(stack: dict[str, Any], dag_id: str = DAG_ID) -> tuple[str, str]:
    """Trigger a run; wait until its task is deferred; the training job it created."""
    api, home = stack["api"], stack["home"]
    known = set(cloud.jobs())
    run_id = _trigger(api, dag_id)
    ti = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/train_challenger"
    _wait(api, ti, "state", {"deferred"}, home)
    new = sorted(set(cloud.jobs()) - known)
    assert len(new) == 1, new  # the run's task created one training job
    assert cloud.jobs()[new[0]].training_job_status == "InProgress"
    return run_id, new[0]


def test_training_waits_in_the_triggerer_and_its_end_decides_the_task(
    stack: dict[str, Any],
) -> None:
    api, home = stack["api"], stack["home"]
    endless_run, endless_job = _deferred_job(stack, TIMEOUT_DAG)  # SageMaker never ends it
    ok_run, ok_job = _deferred_job(stack)
    late_run, late_job = _deferred_job(stack)

    # Deferred and still polled: the triggerer asks SageMaker while no worker holds either
    # task. Polled at least twice more, and deferred for 12 s: a trigger that fires within
    # seconds of the deferral can race the scheduler (Airflow 3.3.2 with the LocalExecutor
    # marked such a resumed task FAILED here when the deferring workload's exit event
    # arrived after the resumed run had started). Real training jobs take minutes.
    deferred_at = time.monotonic()
    before, deadline = len(stack["describes"]), deferred_at + 60
    while (
        len(stack["describes"]) < before + 2 or time.monotonic() < deferred_at + 12
    ) and time.monotonic() < deadline:
        time.sleep(1)
    assert len(stack["describes"]) >= before + 2, "nobody polls the deferred jobs"
    for run_id in (ok_run, late_run):
        _, ti = api.call(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/train_challenger"
        )
        assert ti["state"] == "deferred"

    cloud.set_ended(ok_job, billable=120, training=400, interrupted=1, metrics={"train:auc": 0.9})
    cloud.set_ended(late_job, "Stopped", "MaxWaitTimeExceeded", billable=90, training=90)
    ledger = Ledger(stack["settings"].db_url)

    # Completed: the task resumes and succeeds, priced from billable time.
    run = f"/api/v2/dags/{DAG_ID}/dagRuns/{ok_run}"
    assert _wait(api, run, "state", {"success", "failed"}, home) == "success"
    status, xcom = api.call("GET", f"{run}/taskInstances/train_challenger/xcomEntries/return_value")
    assert status == 200, xcom
    value = xcom["value"]
    result = value if isinstance(value, dict) else json.loads(value)
    assert result["handle"] == ok_job and result["interruptions"] == 1
    # Hand-worked: 120 billable s at $0.23/h = $0.0076667; saved 280 s = $0.0178889.
    assert result["usd"] == pytest.approx(0.0076667, abs=1e-6)
    assert result["saved_usd"] == pytest.approx(0.0178889, abs=1e-6)
    rows = ledger.run_costs("elec2", ok_run)
    assert [(r["status"], r["capacity"], r["interruptions"]) for r in rows] == [
        ("final", "spot", 1)
    ]
    assert rows[0]["usd"] == pytest.approx(0.0076667, abs=1e-6)
    assert rows[0]["tags"]["team"] == "energy-forecasting"

    # Stopped for exceeding its max wait: the task fails, and what ran is still billed.
    run = f"/api/v2/dags/{DAG_ID}/dagRuns/{late_run}"
    assert _wait(api, run, "state", {"success", "failed"}, home) == "failed"
    _, ti = api.call("GET", f"{run}/taskInstances/train_challenger")
    assert ti["state"] == "failed"
    rows = ledger.run_costs("elec2", late_run)
    assert len(rows) == 1 and rows[0]["status"] == "final"
    assert rows[0]["usd"] == pytest.approx(90 * PRICE / 3600, abs=1e-6)  # $0.00575
    assert "MaxWaitTimeExceeded" in rows[0]["note"]

    # Never ends: the trigger's polls run out, the job is asked to stop and the task fails;
    # its cost stays unknown (never $0) until a retry sees the job stopped and prices it.
    run = f"/api/v2/dags/{TIMEOUT_DAG}/dagRuns/{endless_run}"
    assert _wait(api, run, "state", {"success", "failed"}, home) == "failed"
    assert cloud.jobs()[endless_job].training_job_status == "Stopped"
    rows = ledger.run_costs("elec2", endless_run)
    assert [(r["status"], r["usd"]) for r in rows] == [("running", None)]
