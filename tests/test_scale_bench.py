"""bench/scale.py: the generated configs are valid and varied; the fork-parse harness finds
every model's DAGs and reports a broken config as its DAG file's import error."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from costaware.config import load_models

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from scale import make_configs, parse_times  # noqa: E402


def test_generated_configs_are_valid_and_varied(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    (folder).mkdir()
    (folder / "stale.yaml").write_text("left over from an earlier run")
    paths = make_configs(6, folder)

    found = load_models(folder)
    assert found.errors == {}  # stale.yaml was removed, every generated file validates
    assert sorted(found.configs) == [
        "elec2_000",
        "elec2_002",
        "elec2_004",
        "weather_001",
        "weather_003",
        "weather_005",
    ]
    assert sorted(p.name for p in paths) == sorted(f"{n}.yaml" for n in found.configs)
    shipped = {
        t: [
            f["name"]
            for f in yaml.safe_load((ROOT / f"include/models/{t}.yaml").read_text())["features"]
        ]
        for t in ("elec2", "weather")
    }
    for name, cfg in found.configs.items():
        template = name.split("_")[0]
        # Each model keeps its template's features (and so its data) and adds its own.
        assert cfg.feature_names[: len(shipped[template])] == shipped[template]
        assert cfg.tags.model == name and cfg.validation_suite == f"{name}_batch"
    assert len({len(c.features) for c in found.configs.values()}) > 1
    assert any(c.drift.columns for c in found.configs.values())
    assert make_configs(6, tmp_path / "again") and [
        p.read_text() for p in sorted((tmp_path / "again").glob("*.yaml"))
    ] == [p.read_text() for p in sorted(folder.glob("*.yaml"))]  # seeded: the same files


def test_parse_harness_finds_every_model_dag(tmp_path: Path) -> None:
    models = tmp_path / "models"
    make_configs(2, models)
    (models / "broken_model.yaml").write_text("name: broken_model\nfeatures: not-a-list\n")
    files = {
        name: ROOT / "dags" / name
        for name in ("costaware_retrain.py", "costaware_rollback.py", "costaware_model_configs.py")
    }

    got = parse_times(files, models, tmp_path / "work", repeats=1, warmup=0)

    res = got["files"]
    assert res["costaware_retrain.py"]["dags"] == ["retrain_elec2_000", "retrain_weather_001"]
    assert res["costaware_rollback.py"]["dags"] == ["rollback_elec2_000", "rollback_weather_001"]
    assert res["costaware_retrain.py"]["errors"] == res["costaware_rollback.py"]["errors"] == {}
    # The broken config drops only itself, and is this file's import error.
    assert res["costaware_model_configs.py"]["dags"] == []
    (error,) = res["costaware_model_configs.py"]["errors"].values()
    assert "broken_model.yaml" in error and "features" in error
    for row in res.values():
        assert len(row["seconds"]) == len(row["bag_s"]) == len(row["serialize_s"]) == 1
    assert got["config"]["models"] == 2  # load_models_for_dags() in the child saw this folder
