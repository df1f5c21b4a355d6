"""The limit's new name (its old one still works, with a warning) and ``budgets.yaml``."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml

from costaware.config import (
    CostPolicy,
    RunParams,
    get_model,
    load_budgets,
    load_model_config,
    load_models,
)
from costaware.decide.policy import CheckpointInputs, decide
from costaware.errors import ConfigError

from .conftest import ROOT

MODELS = ROOT / "include" / "models"
INPUTS = CheckpointInputs(
    model="elec2",
    has_champion=True,
    labelled_rows=5000,
    min_train_rows=500,
    gain_points=3.0,
    gain_low=1.0,
    gain_high=5.0,
    gain_basis="test",
    cost_usd=0.03,
    cost_quality="estimated",
    cost_source="static",
    spent_this_month_usd=0.0,
    hours_since_last_retrain=None,
    metric="roc_auc",
)


def _elec2_with(tmp_path: Path, **policy: object) -> Path:
    raw = yaml.safe_load((MODELS / "elec2.yaml").read_text())
    del raw["cost_policy"]["max_usd_per_point_batch"]
    raw["cost_policy"].update(policy)
    path = tmp_path / "elec2.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_old_key_warns_names_the_file_and_decides_the_same(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    new = load_model_config(MODELS / "elec2.yaml")
    path = _elec2_with(tmp_path, max_usd_per_metric_point=0.0075)
    with (
        caplog.at_level(logging.WARNING, logger="costaware.config"),
        pytest.warns(DeprecationWarning, match="rename it to max_usd_per_point_batch"),
    ):
        old = load_model_config(path)
    assert f"{path}: cost_policy: max_usd_per_metric_point is deprecated" in caplog.text
    assert old.cost_policy == new.cost_policy
    assert old.cost_policy.max_usd_per_metric_point == 0.0075  # the old attribute still reads
    # Same behaviour: the same decision, word for word, on both sides of the limit.
    actions = []
    for cost in (0.02, 0.03):  # $0.0067 and $0.01 per pt·batch against $0.0075
        a = decide(CheckpointInputs(**{**INPUTS.__dict__, "cost_usd": cost}), old.cost_policy)
        b = decide(CheckpointInputs(**{**INPUTS.__dict__, "cost_usd": cost}), new.cost_policy)
        assert a.as_dict() == b.as_dict()
        actions.append(a.action)
    assert actions == ["retrain", "skip"]


def test_both_keys_is_a_config_error_naming_the_file_and_both(tmp_path: Path) -> None:
    path = _elec2_with(tmp_path, max_usd_per_metric_point=0.01, max_usd_per_point_batch=0.0075)
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    text = str(err.value)
    assert str(path) in text
    assert "both max_usd_per_point_batch (0.0075) and its deprecated old name" in text
    assert "keep only max_usd_per_point_batch" in text


def test_run_parameters_and_library_callers_keep_the_old_name() -> None:
    with pytest.warns(DeprecationWarning):
        assert RunParams.parse({"max_usd_per_metric_point": 0.5}).max_usd_per_point_batch == 0.5
    # The trigger form sends the new key as null beside an old one given in the run's conf.
    with pytest.warns(DeprecationWarning):
        p = RunParams.parse({"max_usd_per_point_batch": None, "max_usd_per_metric_point": 2})
    assert p.max_usd_per_point_batch == 2
    with pytest.raises(ConfigError, match="invalid run parameters: run parameters gives both"):
        RunParams.parse({"max_usd_per_point_batch": 1, "max_usd_per_metric_point": 2})
    with pytest.warns(DeprecationWarning):
        pol = CostPolicy(max_usd_per_metric_point=1.0, auto_approve_usd=1, monthly_budget_usd=5)  # type: ignore[call-arg]
    assert pol.max_usd_per_point_batch == 1.0
    with pytest.warns(DeprecationWarning, match="use max_usd_per_point_batch"):
        old = decide(INPUTS, pol, max_usd_per_metric_point=0.02)
    assert old.as_dict() == decide(INPUTS, pol, 0.02).as_dict()
    assert old.action == "retrain" and old.thresholds["max_usd_per_point_batch"] == 0.02


def test_gain_is_said_in_points_of_the_models_metric() -> None:
    d = decide(INPUTS, load_model_config(MODELS / "elec2.yaml").cost_policy)
    assert d.reason == ("$0.0100 per pt·batch of roc_auc > limit $0.0075 per pt·batch")
    assert d.numbers["metric"].startswith("roc_auc: 1 point = 1/100 of roc_auc")


def _folder(tmp_path: Path, budgets: str) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("elec2", "weather"):
        shutil.copy(MODELS / f"{name}.yaml", folder)
    (folder / "budgets.yaml").write_text(budgets)
    return folder


def test_budgets_file_sits_beside_the_models_and_is_not_a_model(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "budgets:\n  forecasting:\n    monthly_usd: 40\n    models: [elec2, weather]\n",
    )
    found = load_models(folder)
    assert found.errors == {} and set(found.configs) == {"elec2", "weather"}
    budgets = load_budgets(folder, found.configs)
    name, b = budgets.of("weather") or ("", None)
    assert name == "forecasting" and b is not None
    assert (b.monthly_usd, b.window, b.wait_minutes) == (40, "@weekly", 60)
    assert budgets.of("storms") is None
    with pytest.raises(ConfigError, match="unknown model 'budgets'"):
        get_model(folder, "budgets")
    assert load_budgets(tmp_path).budgets == {}  # no file: no shared budget


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "budgets:\n  t:\n    monthly_usd: 40\n    models: [elec2, storms]\n",
            "budgets.t.models names ['storms'], which have no model config here",
        ),
        (
            "budgets:\n  a:\n    monthly_usd: 4\n    models: [elec2]\n"
            "  b:\n    monthly_usd: 4\n    models: [elec2, weather]\n",
            "model 'elec2' is in budgets 'a' and 'b'",
        ),
        (
            "budgets:\n  t:\n    monthly_usd: 0\n    models: [elec2]\n",
            "budgets.t.monthly_usd: Input should be greater than 0 (got 0)",
        ),
        (
            "budgets:\n  t:\n    monthly_usd: 4\n    models: [elec2]\n    window: '@hourly'\n",
            "budgets.t.window: Input should be '@daily', '@weekly' or '@monthly'",
        ),
        ("budgets:\n  Team A:\n    monthly_usd: 4\n    models: [elec2]\n", "budget name 'Team A'"),
    ],
)
def test_a_bad_budgets_file_is_reported_with_the_models(
    tmp_path: Path, text: str, expected: str
) -> None:
    folder = _folder(tmp_path, text)
    found = load_models(folder)
    assert set(found.configs) == {"elec2", "weather"}  # the models still load
    assert list(found.errors) == [str(folder / "budgets.yaml")]
    assert expected in found.errors[str(folder / "budgets.yaml")]
