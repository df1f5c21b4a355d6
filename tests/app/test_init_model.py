"""`costaware init-model` on the real shipped streams: what it infers, what it refuses, that
the file it writes loads, validates and matches its data, and that `costaware replay` runs on
it straight away. Expected values are facts of the data files (data/README.md), read by hand
from the data, not recomputed by the inference code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from costaware.app.cli import main
from costaware.app.init_model import init_model
from costaware.app.replay import load_source
from costaware.config import load_model_config
from costaware.errors import ConfigError
from costaware.settings import Settings

from ..conftest import ROOT

FLIGHTS = ROOT / "data" / "flights_lga.parquet"
STORMS = ROOT / "data" / "storms.csv"
HOTEL = ROOT / "data" / "hotel_rates.csv"
CARRIERS = ["9E", "AA", "B6", "DL", "EV", "F9", "FL", "MQ", "OO", "UA", "US", "WN", "YV"]
STORM_CLASSES = [
    "disturbance",
    "extratropical",
    "hurricane",
    "other low",
    "subtropical depression",
    "subtropical storm",
    "tropical depression",
    "tropical storm",
    "tropical wave",
]


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    """A private project folder: the repo's DAGs and data, its own GX project (suites written
    here, never into the repo's great_expectations/), its own state and models folder."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("dags", "plugins", "data", "include"):
        (root / name).symlink_to(ROOT / name)
    shutil.copytree(
        ROOT / "great_expectations",
        root / "great_expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    env = {
        "COSTAWARE_PROJECT_ROOT": str(root),
        "COSTAWARE_HOME": str(tmp_path / "home"),
        "COSTAWARE_MODELS_DIR": str(tmp_path / "models"),
    }
    return Settings.from_env(env)


def _features(cfg) -> dict:
    return {f.name: f for f in cfg.features}


def test_flights_string_categories_and_missing_values(project: Settings) -> None:
    out = init_model("flights", FLIGHTS, "late", time="time_hour", settings=project)
    cfg = load_model_config(out.config_path)
    f = _features(cfg)
    assert f["carrier"].type == "categorical" and f["carrier"].categories == CARRIERS
    assert not f["carrier"].nullable
    # 68 destinations: more than a person can review, so an open set, said in the checklist
    assert f["dest"].type == "categorical" and f["dest"].categories is None
    assert any("'dest' has 68 categories" in line for line in out.checklist)
    # the weather station's gaps: every weather column has missing values, flights none
    for name in ("temp", "humid", "wind_dir", "wind_speed", "wind_gust", "pressure", "visib"):
        assert f[name].type == "numeric" and f[name].nullable, name
    assert not f["hour"].nullable and not f["distance"].nullable
    assert f["distance"].min <= 96 and f["distance"].max >= 1620  # LGA-PHL .. LGA-DEN
    assert any("'wind_gust' is missing in 74% of rows" in line for line in out.checklist)
    assert cfg.target.kind == "binary" and cfg.target.positive == 1
    assert cfg.metric == "roc_auc"
    assert cfg.data.time.column == "time_hour" and cfg.data.time.freq == "1h"
    # about 277 arrived flights a day: one day is the shortest period with >= 200 rows
    assert 270 <= cfg.data.batch_rows <= 285 and cfg.airflow.schedule == "@daily"
    assert cfg.training.algorithm == "xgboost"
    assert out.suite_path == project.gx_dir / "expectations" / "flights_batch.json"
    suite = yaml.safe_load(out.suite_path.read_text())  # JSON is YAML
    in_set = [e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set"]
    assert [e["kwargs"]["column"] for e in in_set] == ["carrier"]


def test_storms_multiclass(project: Settings) -> None:
    out = init_model("storm_status", STORMS, "status", time="time", settings=project)
    cfg = load_model_config(out.config_path)
    assert cfg.target.kind == "multiclass" and cfg.target.classes == STORM_CLASSES
    assert cfg.metric == "log_loss"
    f = _features(cfg)
    # recorded only from 2004: missing before
    assert f["tropicalstorm_force_diameter"].nullable and f["hurricane_force_diameter"].nullable
    assert not f["pressure"].nullable and f["pressure"].type == "numeric"
    assert f["name"].type == "categorical" and f["name"].categories is None  # 260 storm names
    assert any("'year' rises or falls with time" in line for line in out.checklist)
    assert cfg.data.time.freq == "6h"  # six-hourly best track
    # ~1.1 rows a day: no calendar period holds 200 rows, so batches of 200 rows
    assert cfg.data.batch_rows == 200


def test_hotel_regression(project: Settings) -> None:
    out = init_model("hotel", HOTEL, "avg_price_per_room", time="arrival_date", settings=project)
    cfg = load_model_config(out.config_path)
    assert cfg.target.kind == "regression" and cfg.metric == "rmse"
    f = _features(cfg)
    assert f["meal"].categories == [
        "bed_and_breakfast",
        "breakfast_and_one_other_meal",
        "breakfast_lunch_and_dinner",
        "no_meal_package",
    ]
    assert f["country"].type == "categorical" and f["country"].nullable  # 164 bookings
    assert not f["meal"].nullable
    assert f["is_repeated_guest"].min == 0 and f["is_repeated_guest"].max == 1  # a 0/1 flag
    assert any("'arrival_date_num' rises or falls with time" in x for x in out.checklist)
    assert cfg.data.time.freq == "1D" and cfg.airflow.schedule == "@weekly"


def test_cli_prints_the_checklist_and_refuses_to_overwrite(
    project: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("COSTAWARE_PROJECT_ROOT", str(project.project_root))
    monkeypatch.setenv("COSTAWARE_HOME", str(project.home))
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(project.models_dir))
    args = ["init-model", "hotel", "--data", str(HOTEL), "--target", "avg_price_per_room"]
    args += ["--time", "arrival_date"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Check by hand" in printed and "tags.team is 'unassigned'" in printed
    assert "costaware replay hotel" in printed
    written = (project.models_dir / "hotel.yaml").read_text()
    assert main(args) == 2  # refused, file untouched
    err = capsys.readouterr().err
    assert "hotel.yaml" in err and "hotel_batch.json" in err and "--force" in err
    assert (project.models_dir / "hotel.yaml").read_text() == written
    assert main([*args, "--force"]) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "price"}, "--target 'price' is not a column; columns: ['avg_price_per_room'"),
        ({"name": "Hotel-1"}, "model name 'Hotel-1' is not allowed"),
        (
            {"time": "meal"},
            "column 'meal' has 15402 value(s) that are not times, e.g. ['bed_and_breakfast'",
        ),
        ({"target": "agent"}, "--target 'agent' holds text with 125 distinct values"),
        ({"data": ROOT / "data" / "nope.csv"}, "nope.csv: no such file"),
    ],
)
def test_refusals_say_what_and_where(project: Settings, kwargs: dict, message: str) -> None:
    call = {"name": "hotel", "data": HOTEL, "target": "avg_price_per_room", **kwargs}
    with pytest.raises(ConfigError) as err:
        init_model(call.pop("name"), call.pop("data"), call.pop("target"), settings=project, **call)
    assert message in str(err.value)
    assert not (project.models_dir / "hotel.yaml").exists()


def test_a_config_that_contradicts_its_data_fails_with_file_key_column_values(
    project: Settings,
) -> None:
    out = init_model("flights", FLIGHTS, "late", time="time_hour", settings=project)
    raw = yaml.safe_load(out.config_path.read_text())
    feats = {f["name"]: f for f in raw["features"]}
    feats["carrier"]["categories"].remove("UA")  # the data has 7,803 UA flights
    feats["pressure"].pop("nullable")  # 11 % missing
    feats["dest"] = {"name": "dest", "type": "numeric"}  # text: airport codes
    raw["features"].append({"name": "gate", "type": "numeric"})  # no such column
    raw["features"] = [feats.get(f["name"], f) for f in raw["features"]]
    out.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_model_config(out.config_path)
    with pytest.raises(ConfigError) as err:
        load_source(cfg, project.project_root)
    text = str(err.value)
    assert text.startswith(f"{out.config_path}: does not match its data ")
    assert (
        "features[0] (carrier).categories: 7803 row(s) hold values not listed, e.g. ['UA']" in text
    )
    assert "features[1] (dest).type: numeric, but the column holds text, e.g. ['IAH'" in text
    assert "(pressure).nullable: false, but 11192 row(s) are empty" in text
    assert "features[12] (gate): no such column in the data" in text


def test_the_shipped_example_configs_match_their_data() -> None:
    """examples/models (written by init-model, reviewed by hand) load, validate and match."""
    settings = Settings.from_env({"COSTAWARE_PROJECT_ROOT": str(ROOT)})
    kinds = {}
    for path in sorted((ROOT / "examples" / "models").glob("*.yaml")):
        cfg = load_model_config(path)
        load_source(cfg, settings.project_root)  # runs check_source: raises on a mismatch
        assert (settings.gx_dir / "expectations" / f"{cfg.validation_suite}.json").exists()
        kinds[cfg.name] = cfg.target.kind
    assert kinds == {"flights_lga": "binary", "hotel_rates": "regression", "storms": "multiclass"}


@pytest.mark.slow
def test_replay_runs_on_what_init_model_wrote(project: Settings, airflow_home: Path) -> None:
    """`costaware init-model` then `costaware replay`, as a new user types them: two hotel
    weeks through the real DAG in a fresh state folder. Airflow's metadata DB is a copy of
    the session's (an `airflow db migrate` takes a minute and is not what this tests)."""
    from costaware.steps.context import StepContext

    shutil.copytree(airflow_home, project.airflow_home)
    init_model("hotel", HOTEL, "avg_price_per_room", time="arrival_date", settings=project)
    env = {
        **os.environ,
        "COSTAWARE_PROJECT_ROOT": str(project.project_root),
        "COSTAWARE_HOME": str(project.home),
        "COSTAWARE_MODELS_DIR": str(project.models_dir),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("COSTAWARE_DB_URL", None)
    for key in [k for k in env if k.startswith("AIRFLOW")]:
        env.pop(key)  # replay points Airflow at the new state folder itself
    cmd = [sys.executable, "-m", "costaware.app.cli", "replay", "hotel", "--batches", "2"]
    done = subprocess.run(
        [*cmd, "--no-progress"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ctx = StepContext.for_model("hotel", settings=project)
    rows = ctx.ledger.decisions("hotel")
    assert [r["batch_id"] for r in rows] == ["b0000_2016-07-02", "b0001_2016-07-10"]
    # no labels yet in week 0, one week's 254 in week 1: below min_train_rows 500
    assert [r["action"] for r in rows] == ["skip", "skip"]
    assert "waiting for labels" in rows[1]["reason"]
