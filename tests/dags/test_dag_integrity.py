"""Every DAG file imports cleanly, fast, with tags and retries."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT

DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag(airflow_home: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_one_retrain_and_rollback_dag_per_model(dagbag) -> None:
    ids = set(dagbag.dag_ids)
    for model in ("elec2", "weather"):
        assert {f"retrain_{model}", f"rollback_{model}"} <= ids


def test_tags_retries_and_docs(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"


def test_retrain_dag_shape_and_params(dagbag) -> None:
    dag = dagbag.dags["retrain_elec2"]
    assert dag.max_active_runs == 1
    order = [
        "collect_batch",
        "validate_batch",
        "measure_drift",
        "measure_performance",
        "estimate_cost",
        "cost_checkpoint",
        "train_challenger",
        "evaluate_challenger",
        "promote_or_reject",
        "publish_report",
    ]
    assert set(order) <= set(dag.task_ids)
    assert "validate_batch" in dag.get_task("collect_batch").downstream_task_ids
    assert "evaluate_challenger" in dag.get_task("train_challenger").downstream_task_ids
    approval = dag.get_task("approve_retrain")
    assert type(approval).__name__ == "HITLOperator"  # its answer always reaches XCom
    assert approval.options == ["Approve", "Reject"] and approval.multiple is False
    assert approval.defaults == ["Reject"]  # silence never spends money
    assert dag.get_task("needs_approval").downstream_task_ids == {"approve_retrain"}
    assert "train_challenger" in approval.downstream_task_ids
    assert set(dag.params.keys()) == {"force", "dry_run", "max_usd_per_metric_point", "batch"}
    for key in dag.params.keys():
        assert dag.params.get_param(key).schema.get("title"), key


def test_shipped_airflow_knobs(dagbag) -> None:
    """No ``airflow:`` section in the shipped YAMLs: the DAGs run as they always did."""
    retrain, rollback = dagbag.dags["retrain_elec2"], dagbag.dags["rollback_elec2"]
    assert retrain.schedule == "@weekly" and rollback.schedule is None
    for dag in (retrain, rollback):
        for t in dag.tasks:
            assert (t.retries, t.retry_delay) == (2, dt.timedelta(seconds=30)), t.task_id
    assert retrain.get_task("approve_retrain").response_timeout == dt.timedelta(hours=24)


def test_airflow_knobs_come_from_the_model_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_home: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["airflow"] = {
        "retries": 5,
        "retry_delay_seconds": 0.5,
        "approval_timeout_hours": 0.25,
        "schedule": "0 6 * * 1",
    }
    (tmp_path / "elec2.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert {"retrain_elec2", "rollback_elec2"} <= set(bag.dag_ids)
    assert "retrain_weather" not in bag.dag_ids  # only this folder's models
    retrain, rollback = bag.dags["retrain_elec2"], bag.dags["rollback_elec2"]
    assert retrain.schedule == "0 6 * * 1"
    assert retrain.timetable.expression == "0 6 * * 1"
    assert rollback.schedule is None  # rollbacks are always manual
    for dag in (retrain, rollback):
        for t in dag.tasks:
            assert (t.retries, t.retry_delay) == (5, dt.timedelta(milliseconds=500)), t.task_id
    assert retrain.get_task("approve_retrain").response_timeout == dt.timedelta(minutes=15)


_PARSE = """
import json, sys, time
t = time.perf_counter()
import runpy
runpy.run_path(sys.argv[1])
print(json.dumps(time.perf_counter() - t))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_fast(path: Path, airflow_home: Path) -> None:
    """Parse time of each DAG file in a fresh interpreter, after Airflow itself is imported
    (what the DAG processor pays per file): heavy imports belong inside tasks."""
    code = "import airflow.sdk\n" + _PARSE
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    seconds = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{path.name}: parsed in {seconds:.3f} s")
    assert seconds < 1.0, f"{path.name} took {seconds:.2f} s to parse"
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import airflow.sdk, runpy, sys; runpy.run_path(sys.argv[1]);"
            "print(sorted(m for m in ('pandas','evidently','mlflow','xgboost','sklearn',"
            "'great_expectations') if m in sys.modules))",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert heavy.stdout.strip().splitlines()[-1] == "[]"
