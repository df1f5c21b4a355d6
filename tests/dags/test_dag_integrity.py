"""Every DAG file imports cleanly, fast, with tags and retries."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    assert set(dag.params.keys()) == {"force", "dry_run", "max_usd_per_point_batch", "batch"}
    for key in dag.params.keys():
        assert dag.params.get_param(key).schema.get("title"), key


# Each DAG's trigger-form defaults, and one valid value a run's conf may give.
RUN_PARAMS = {
    "retrain_elec2": (
        {"force": False, "dry_run": False, "max_usd_per_point_batch": None, "batch": None},
        {"force": True},
    ),
    "rollback_elec2": ({"target_version": None, "reason": ""}, {"target_version": "7"}),
}


def test_a_run_sees_the_dag_params_that_no_task_copies(dagbag) -> None:
    """The trigger form's Params live on the DAG only (``with_run_params``): a copy in each
    task made every parse re-check 4 JSON schemas twice per task (bench/results/scale.md).
    What a task gets at run time is unchanged: the DAG's Params under the run's conf, each
    validated (Airflow's ``process_params``, what the task runner calls), with the same
    meaning under the JSON Schema draft the Params declare."""
    from airflow.sdk.definitions.param import process_params
    from airflow.sdk.exceptions import ParamValidationError

    from costaware.app.dag_defaults import PARAM_SCHEMA

    for dag_id, (defaults, given) in RUN_PARAMS.items():
        dag = dagbag.dags[dag_id]
        assert [t.task_id for t in dag.tasks if t.params] == [], dag_id
        for key in defaults:  # each schema names its draft (draft 7: a cheaper check)
            assert dag.params.get_param(key).schema["$schema"] == PARAM_SCHEMA["$schema"]
        task = dag.tasks[0]
        assert process_params(dag, task, {}, suppress_exception=False) == defaults
        got = process_params(dag, task, given, suppress_exception=False)
        assert got == {**defaults, **given}
    retrain, rollback = dagbag.dags["retrain_elec2"], dagbag.dags["rollback_elec2"]
    for dag, bad in (
        (retrain, {"max_usd_per_point_batch": 0}),  # exclusiveMinimum 0
        (retrain, {"force": "yes"}),
        (rollback, {"target_version": "v2"}),  # digits only
    ):
        with pytest.raises(ParamValidationError):
            process_params(dag, dag.tasks[-1], bad, suppress_exception=False)


def test_run_params_set_late_are_still_checked_by_airflow() -> None:
    """Assigning ``dag.params`` runs Airflow's own check: a scheduled DAG whose Param
    defaults fail their schema does not load, as when they are given to ``@dag``."""
    from airflow.sdk import DAG, Param

    from costaware.app.dag_defaults import START, with_run_params

    manual = with_run_params(DAG("manual", schedule=None, start_date=START), {"n": Param(1)})
    assert manual.params["n"] == 1
    weekly = DAG("weekly", schedule="@weekly", start_date=START)
    with pytest.raises(ValueError, match="not allowed to define a Schedule"):
        with_run_params(weekly, {"n": Param(None, type="integer")})


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
t, c = time.perf_counter(), time.process_time()
import runpy
runpy.run_path(sys.argv[1])
print(json.dumps([time.perf_counter() - t, time.process_time() - c]))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_fast(path: Path, airflow_home: Path) -> None:
    """Parse time of each DAG file in a fresh interpreter, after Airflow itself and the
    ``airflow.*`` modules the file names are imported (the dag-processor's manager imports
    those before it forks a parse: ``_pre_import_airflow_modules``), so what is timed is
    what each parse pays: heavy imports belong inside tasks."""
    code = (
        "import sys, structlog\n"
        "from airflow.dag_processing.processor import _pre_import_airflow_modules\n"
        "_pre_import_airflow_modules(sys.argv[1], structlog.get_logger())\n" + _PARSE
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    # The limit is on CPU time, what the parse costs the dag-processor: wall time also counts
    # whatever else the machine runs (the suite's other workers, under CI's load).
    wall, cpu = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{path.name}: parsed in {wall:.3f} s ({cpu:.3f} s of CPU)")
    assert cpu < 1.0, f"{path.name} took {cpu:.2f} s of CPU to parse"
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


def _elec2_yaml(**airflow: Any) -> str:
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["airflow"] = airflow
    return yaml.safe_dump(raw)


def test_parsed_yaml_cache_follows_every_edit_and_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_home: Path
) -> None:
    """The DAG files reuse parsed model YAML (``ParsedYamlCache``) between parses. An edit is
    seen at the next parse even when it keeps the file's size and modification time, and a
    config broken after it was cached is still its import error, its DAGs gone."""
    from airflow.dag_processing.dagbag import DagBag

    from costaware.config import parsed_yaml_cache
    from costaware.settings import Settings

    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "elec2.yaml"
    path.write_text(_elec2_yaml(schedule="@weekly"))
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(folder))
    cache = parsed_yaml_cache(Settings.from_env())
    assert not cache.exists()

    def parse() -> Any:
        return DagBag(dag_folder=str(ROOT / "dags"))

    assert parse().dags["retrain_elec2"].schedule == "@weekly"
    written = cache.stat().st_mtime_ns
    assert len(json.loads(cache.read_text())["entries"]) == 1
    assert parse().dags["retrain_elec2"].schedule == "@weekly"
    assert cache.stat().st_mtime_ns == written  # every config came from the cache

    before = path.stat()
    path.write_text(_elec2_yaml(schedule="@hourly"))  # as long as "@weekly"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert parse().dags["retrain_elec2"].schedule == "@hourly"

    path.write_text(_elec2_yaml(schedule="@hourly", retries=-1))
    bag = parse()
    assert not {"retrain_elec2", "rollback_elec2"} & set(bag.dag_ids)
    ((where, error),) = bag.import_errors.items()
    assert where.endswith("costaware_model_configs.py")
    assert f"{path}: invalid model config" in error and "airflow.retries" in error
    path.write_text(_elec2_yaml(schedule="@hourly") + "metric: [roc_auc\n")
    ((where, error),) = parse().import_errors.items()
    assert f"{path}: not valid YAML" in error and "line " in error


def test_parsed_yaml_cache_gives_what_yaml_gives(tmp_path: Path) -> None:
    """With or without the cache, ``load_models`` returns the same configs and the same
    errors: YAML that JSON cannot carry (a date) is parsed every time, and a torn or
    unwritable cache file is no cache."""
    from costaware.config import load_models

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "elec2.yaml").write_text(_elec2_yaml(schedule="@weekly"))
    raw = yaml.safe_load((ROOT / "include" / "models" / "weather.yaml").read_text())
    raw["data"]["time"]["start"] = dt.date(1949, 1, 1)  # YAML writes a date, not a string
    (folder / "weather.yaml").write_text(yaml.safe_dump(raw))
    plain = load_models(folder)
    assert set(plain.configs) == {"elec2"}
    assert (
        "data.time.start: Input should be a valid string"
        in plain.errors[str(folder / "weather.yaml")]
    )

    cache = tmp_path / "cache" / "models.json"
    for _ in range(2):  # filling the cache, then served from it
        assert load_models(folder, cache=cache) == plain
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 1  # elec2's; the date cannot be JSON

    cache.write_text('{"version": 1, "entries": {"x": ')  # torn by a crash
    assert load_models(folder, cache=cache) == plain
    assert json.loads(cache.read_text())["entries"] == entries  # and rebuilt

    blocked = tmp_path / "a-file" / "models.json"
    blocked.parent.write_text("not a folder")
    assert load_models(folder, cache=blocked) == plain
