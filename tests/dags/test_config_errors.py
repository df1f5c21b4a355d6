"""One bad model YAML must not hide every DAG.

Each broken config shows as an import error (what Airflow's UI lists under *DAG Import
Errors*) naming the file and the key, while every other model's DAGs still load. The DAGs
come from ``COSTAWARE_MODELS_DIR``, read by the library when the DAG files are parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from costaware.app.cli import main

from ..conftest import ROOT

MODELS = ROOT / "include" / "models"


def _yaml(mutate: Callable[[dict[str, Any]], None]) -> str:
    raw = yaml.safe_load((MODELS / "weather.yaml").read_text())
    mutate(raw)
    return yaml.safe_dump(raw)


# (broken weather.yaml text, what the error must say about it)
CASES = {
    "unknown key": (
        _yaml(lambda r: r["training"].update(epochs=3)),
        ["training.epochs: Extra inputs are not permitted (got 3)"],
    ),
    "wrong type": (
        _yaml(lambda r: r["data"].update(batch_rows="lots")),
        ["data.batch_rows: Input should be a valid integer", "(got 'lots')"],
    ),
    "bad YAML syntax": (
        (MODELS / "weather.yaml").read_text().replace("metric:", "metric: [roc_auc\nx:", 1),
        ["not valid YAML", "line "],
    ),
    "name of another model": (
        (MODELS / "elec2.yaml").read_text(),
        ["name: 'elec2' does not match the file name 'weather.yaml'", "also declared by"],
    ),
    "bad schedule": (
        _yaml(lambda r: r.update(airflow={"schedule": "every monday"})),
        ["airflow.schedule: Value error, not a schedule: 'every monday'", "@weekly"],
    ),
}


def _models_dir(tmp_path: Path, broken: str) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "elec2.yaml").write_text((MODELS / "elec2.yaml").read_text())
    (folder / "weather.yaml").write_text(broken)
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_is_an_import_error_and_other_dags_load(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_home: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    text, expected = CASES[case]
    folder = _models_dir(tmp_path, text)
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(folder))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    ids = set(bag.dag_ids)
    assert {"retrain_elec2", "rollback_elec2", "finops_showback"} <= ids
    assert not {"retrain_weather", "rollback_weather"} & ids
    assert len(bag.import_errors) == 1, bag.import_errors
    (where, error), *_ = bag.import_errors.items()
    assert where.endswith("costaware_model_configs.py")
    assert f"{folder / 'weather.yaml'}: " in error
    for words in expected:
        assert words in error, error
    if case != "name of another model":
        assert str(folder / "elec2.yaml") not in error  # the good file is not blamed


def test_every_bad_file_is_listed_and_the_good_ones_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_home: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    folder = _models_dir(tmp_path, CASES["unknown key"][0])
    (folder / "broken.yaml").write_text("name: [unclosed\n")
    (folder / "extra.yml").write_text("name: extra\n")  # never read: not *.yaml
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(folder))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert {"retrain_elec2", "rollback_elec2"} <= set(bag.dag_ids)
    (error,) = bag.import_errors.values()
    assert "3 invalid model config(s)" in error
    for name in ("weather.yaml", "broken.yaml", "extra.yml"):
        assert str(folder / name) in error
    assert "rename it to extra.yaml" in error


def test_missing_models_folder_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_home: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(tmp_path / "nope"))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert set(bag.dag_ids) == {"finops_showback", "finops_housekeeping"}
    (error,) = bag.import_errors.values()
    assert f"{tmp_path / 'nope'}: no such folder of model configs" in error


def test_costaware_check_reports_every_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _models_dir(tmp_path, CASES["wrong type"][0])
    (folder / "broken.yaml").write_text("name: [unclosed\n")
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(folder))
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'weather.yaml'}: invalid model config" in err
    assert "data.batch_rows: Input should be a valid integer" in err
    assert f"{folder / 'broken.yaml'}: not valid YAML" in err
    assert str(folder / "elec2.yaml") not in err
