from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from costaware.config import RunParams, load_all, load_model_config
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
            lambda r: r["cost_policy"].update(max_usd_per_metric_point=-1),
            "cost_policy.max_usd_per_metric_point: Input should be greater than 0 (got -1)",
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
    with pytest.raises(ConfigError, match="max_usd_per_metric_point: Input should be greater"):
        RunParams.parse({"max_usd_per_metric_point": -3})
