from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from costaware.config import RunParams, load_all, load_model_config, load_models
from costaware.errors import ConfigError

from .conftest import ROOT

MODELS = ROOT / "include" / "models"


def test_shipped_models_load() -> None:
    configs = load_all(MODELS)
    assert set(configs) == {"elec2", "weather"}
    assert "nswprice" not in configs["elec2"].feature_names  # it leaks the target
    assert configs["elec2"].drift_for("period").method == "wasserstein"
    assert configs["elec2"].drift_for("nswdemand").method == "psi"


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load((MODELS / "elec2.yaml").read_text())
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: r["cost_policy"].update(max_usd_per_point_batch=-1),
            "cost_policy.max_usd_per_point_batch: Input should be greater than 0 (got -1)",
        ),
        (lambda r: r["drift"].update(method="banana"), "unknown drift method 'banana'; allowed:"),
        (lambda r: r.update(metric="f1"), "metric: Input should be 'roc_auc', 'accuracy'"),
        (
            lambda r: r["training"].update(epochs=3),
            "training.epochs: Extra inputs are not permitted",
        ),
        (
            lambda r: r["drift"]["columns"].update(nope={"method": "psi", "threshold": 0.1}),
            "drift.columns names unknown features ['nope']",
        ),
        (lambda r: r["tags"].update(model="other"), "tags.model is 'other'"),
        (
            lambda r: r.setdefault("monitor", {}).update(window_origin="mondays"),
            "monitor.window_origin: Value error, 'mondays' is not an ISO date-time",
        ),
        (
            lambda r: r.setdefault("monitor", {}).update(window_origin="1970-01-05T00:00+02:00"),
            "give the origin in UTC",
        ),
    ],
)
def test_bad_config_names_file_key_and_allowed(tmp_path: Path, mutate, expected: str) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_unreadable_yaml(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model_config(path)


def test_run_params() -> None:
    assert RunParams.parse({"force": True, "batch": ""}).force is True
    assert RunParams.parse(None).dry_run is False
    with pytest.raises(ConfigError, match=r"unknown run parameter\(s\) \['forse'\]; allowed"):
        RunParams.parse({"forse": True})
    with pytest.raises(ConfigError, match="max_usd_per_point_batch: Input should be greater"):
        RunParams.parse({"max_usd_per_point_batch": -3})


def test_airflow_section_is_optional_with_todays_defaults() -> None:
    cfg = load_all(MODELS)["elec2"]
    assert "airflow" not in yaml.safe_load((MODELS / "elec2.yaml").read_text())
    a = cfg.airflow
    assert (a.retries, a.retry_delay_seconds, a.approval_timeout_hours, a.schedule) == (
        2,
        30,
        24,
        "@weekly",
    )


@pytest.mark.parametrize("schedule", ["@daily", "0 6 * * 1", "*/15 * * * *", None])
def test_airflow_schedule_accepts_presets_cron_and_manual(tmp_path: Path, schedule) -> None:
    path = _write(tmp_path, lambda r: r.update(airflow={"schedule": schedule, "retries": 0}))
    cfg = load_model_config(path)
    assert cfg.airflow.schedule == schedule and cfg.airflow.retries == 0


@pytest.mark.parametrize(
    ("airflow", "expected"),
    [
        ({"schedule": "weekly"}, "airflow.schedule: Value error, not a schedule: 'weekly'"),
        ({"schedule": "61 * * * *"}, "not a schedule: '61 * * * *'; allowed: null"),
        ({"schedule": "@once"}, "not a schedule: '@once'"),
        ({"retries": -1}, "airflow.retries: Input should be greater than or equal to 0"),
        ({"approval_timeout_hours": 0}, "airflow.approval_timeout_hours: Input should be greater"),
        ({"retry_delay": 5}, "airflow.retry_delay: Extra inputs are not permitted"),
    ],
)
def test_bad_airflow_section(tmp_path: Path, airflow: dict, expected: str) -> None:
    path = _write(tmp_path, lambda r: r.update(airflow=airflow))
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    assert expected in str(err.value)


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_load_models_keeps_good_configs_and_names_each_bad_file(tmp_path: Path) -> None:
    elec2 = (MODELS / "elec2.yaml").read_text()
    folder = _folder(
        tmp_path,
        {
            "elec2.yaml": elec2,
            "weather.yaml": (MODELS / "weather.yaml").read_text().replace("metric:", "metrc:"),
            "copy.yaml": elec2,  # declares elec2 again
            "syntax.yaml": "name: [unclosed\n",
            "list.yaml": "- a\n- b\n",
            "old.yml": "name: old\n",
        },
    )
    found = load_models(folder)
    assert set(found.configs) == {"elec2"}
    assert found.configs["elec2"].source_file == str(folder / "elec2.yaml")
    errors = found.errors
    assert set(errors) == {
        str(folder / n)
        for n in ("weather.yaml", "copy.yaml", "syntax.yaml", "list.yaml", "old.yml")
    }
    assert "metrc: Extra inputs are not permitted" in errors[str(folder / "weather.yaml")]
    assert (
        f"name: 'elec2' does not match the file name 'copy.yaml'; a model's runs read "
        f"<name>.yaml, so rename the file to elec2.yaml or set name: copy (model 'elec2' is "
        f"also declared by {folder / 'elec2.yaml'})"
    ) in errors[str(folder / "copy.yaml")]
    assert "not valid YAML" in errors[str(folder / "syntax.yaml")]
    assert "expected a mapping at the top level, got list" in errors[str(folder / "list.yaml")]
    assert "must end in .yaml; rename it to old.yaml" in errors[str(folder / "old.yml")]
    with pytest.raises(ConfigError) as err:
        load_all(folder)
    assert str(err.value).startswith(f"5 invalid model config(s) in {folder}")
    for path in errors:
        assert path in str(err.value)


def test_load_models_missing_folder_is_an_error_and_empty_is_not(tmp_path: Path) -> None:
    assert load_models(tmp_path).configs == {} and load_models(tmp_path).errors == {}
    missing = load_models(tmp_path / "nope")
    assert list(missing.errors) == [str(tmp_path / "nope")]
    assert "no such folder of model configs" in missing.errors[str(tmp_path / "nope")]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()  # a folder where a file is expected
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00binary")
    errors = load_models(tmp_path).errors
    assert "cannot read the model config" in errors[str(tmp_path / "dir.yaml")]
    assert "cannot read the model config" in errors[str(tmp_path / "bin.yaml")]
