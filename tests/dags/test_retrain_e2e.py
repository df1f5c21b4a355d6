"""The real retrain DAG, end to end with ``dag.test()``, on Elec2 weeks.

The state (landing zone, ledger, MLflow registry) is built by running the DAG week by week
exactly as ``costaware replay`` does; assertions read the ledger and the registry, never
log text. The ledger is SQLite here, the embedded default of ``make demo``; the same DAG runs
on a PostgreSQL ledger end to end under Celery (``tests/deploy/test_celery_stack.py``), and
every task of this week's path is killed and retried on PostgreSQL in
``tests/faults/test_step_faults_pg.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from costaware.settings import Settings
from costaware.steps.context import StepContext

from ..conftest import ROOT, make_settings
from .harness import WEEKS, Harness

pytestmark = pytest.mark.airflow  # runs the real retrain DAG with dag.test()


@pytest.fixture(scope="module")
def harness(airflow_home, tmp_path_factory) -> Harness:
    home = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_HOME", str(home))
    mp.delenv("COSTAWARE_DB_URL", raising=False)
    h = Harness(make_settings(home))
    # Weeks 0-10 exactly as `costaware replay elec2` runs them: labels arrive, a first
    # model, drifted weeks that pay, a challenger that loses, weeks not worth a retrain.
    for i in range(11):
        assert h.week(i) == "success"
    yield h
    mp.undo()


def test_first_weeks_wait_for_labels_then_train_a_first_model(harness: Harness) -> None:
    for i in range(3):
        d = harness.decision(i)
        assert d["action"] == "skip" and d["reason"].startswith("waiting for labels")
    d = harness.decision(3)
    assert (d["action"], d["outcome"]) == ("retrain", "promoted")
    assert "no champion yet" in d["reason"]
    first = harness.ctx.ledger.audit("elec2")[0]
    assert (first["action"], first["from_version"], first["to_version"]) == ("promote", None, "1")


def test_drifted_week_with_acceptable_cost_retrains_and_promotes(harness: Harness) -> None:
    d = harness.decision(5)
    num, thr = d["details"]["numbers"], d["details"]["thresholds"]
    assert d["details"]["drift"]["drifted_columns"] == ["nswdemand"]  # real drift, Evidently PSI
    assert d["action"] == "retrain" and d["outcome"] == "promoted", d["reason"]
    assert num["$ per pt·batch"] <= thr["max_usd_per_point_batch"]
    assert num["expected gain (pt·batches)"] >= thr["min_expected_gain_points"]
    ev = d["details"]["evaluation"]
    assert ev["verdict"] == "promote" and ev["gain"] >= ev["min_gain_points"]
    assert ev["interval"][0] > 0
    promote = [a for a in harness.ctx.ledger.audit("elec2") if a["run_id"] == d["run_id"]]
    assert [(a["action"], a["from_version"], a["to_version"]) for a in promote] == [
        ("promote", ev["champion_version"], ev["challenger_version"])
    ]
    # One row per training attempt (a spot reclaim adds one), each priced and tagged.
    costs = harness.ctx.ledger.run_costs("elec2", d["run_id"])
    assert 1 <= len(costs) <= 1 + harness.cfg.training.spot.max_interruptions
    assert all(c["usd"] > 0 and c["status"] == "final" for c in costs)
    assert sum(c["interruptions"] for c in costs) == len(costs) - 1
    assert {tuple(sorted(c["tags"].items())) for c in costs} == {
        (("env", "dev"), ("model", "elec2"), ("purpose", "retrain"), ("team", "energy-forecasting"))
    }
    report = harness.settings.reports("elec2") / WEEKS[5][0]
    assert (report / "index.html").exists() and (report / "drift.html").exists()


def test_challenger_that_does_not_win_is_rejected(harness: Harness) -> None:
    promoted_at_5 = harness.decision(5)["details"]["evaluation"]["challenger_version"]
    d = harness.decision(6)
    assert d["action"] == "retrain" and d["outcome"] == "rejected"
    ev = d["details"]["evaluation"]
    assert ev["verdict"] == "reject" and ev["champion_version"] == promoted_at_5
    assert ev["gain"] < ev["min_gain_points"] or ev["interval"][0] <= 0
    rows = [a for a in harness.ctx.ledger.audit("elec2") if a["run_id"] == d["run_id"]]
    assert [(a["action"], a["from_version"], a["to_version"]) for a in rows] == [
        ("reject", promoted_at_5, promoted_at_5)
    ]


def test_week_not_worth_a_retrain_skips_and_says_why(harness: Harness) -> None:
    d = harness.decision(10)
    assert d["action"] == "skip" and d["outcome"] == "skipped"
    num, thr = d["details"]["numbers"], d["details"]["thresholds"]
    assert num["$ per pt·batch"] > thr["max_usd_per_point_batch"] == 0.0075
    assert f"> limit ${thr['max_usd_per_point_batch']:g} per pt·batch" in d["reason"]
    assert not [c for c in harness.ctx.ledger.costs(model="elec2") if c["run_id"] == d["run_id"]]
    assert not [a for a in harness.ctx.ledger.audit("elec2") if a["run_id"] == d["run_id"]]


def test_dry_run_decides_but_trains_nothing(harness: Harness) -> None:
    before = harness.versions()
    assert harness.week(11, {"dry_run": True, "force": True}) == "success"
    d = harness.decision(11)
    assert d["dry_run"] is True and d["action"] == "retrain" and d["outcome"] == "dry_run"
    assert harness.versions() == before


def test_force_retrains_whatever_the_checkpoint_says(harness: Harness) -> None:
    before = harness.versions()
    assert harness.week(12, {"force": True, "max_usd_per_point_batch": 0.000001}) == "success"
    d = harness.decision(12)
    assert d["action"] == "retrain" and "forced" in d["reason"]
    assert d["outcome"] in ("promoted", "rejected")
    assert len(harness.versions()) == len(before) + 1


def test_invalid_run_parameters_are_rejected(harness: Harness) -> None:
    before = harness.versions()
    assert harness.week(13, {"forse": True}, land=True) == "failed"
    assert harness.decision(13) is None and harness.versions() == before
    # The batch was not consumed: the next (valid) run processes it.
    assert (harness.settings.landing("elec2") / f"{WEEKS[13][0]}.parquet").exists()
    assert harness.week(13, land=False) == "success"
    assert harness.decision(13) is not None


def test_rollback_dag_restores_previous_champion(harness: Harness) -> None:
    from costaware.steps.promote import rollback

    reg = harness.ctx.registry
    champ, prev = reg.alias("elec2", "champion"), reg.alias("elec2", "previous_champion")
    dag = _rollback_dag(harness.settings)
    dr = dag.test(run_conf={"reason": "test: live AUC dropped"})
    assert str(getattr(dr.state, "value", dr.state)) == "success"
    assert reg.alias("elec2", "champion") == prev
    assert reg.alias("elec2", "previous_champion") == champ
    row = harness.ctx.ledger.audit("elec2")[-1]
    assert (row["action"], row["from_version"], row["to_version"]) == ("rollback", champ, prev)
    assert row["actor"] == "airflow:rollback_elec2" and "live AUC" in row["reason"]
    # And back again from the library (the CLI's path), to a named version.
    ctx = StepContext.for_model("elec2", run_id="test-undo", actor="cli:test")
    assert rollback(ctx, champ, "undo") == {"from": prev, "to": champ}
    assert reg.alias("elec2", "champion") == champ


def _rollback_dag(settings: Settings):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "rollback_dags", settings.project_root / "dags" / "costaware_rollback.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rollback_elec2


def test_losing_challenger_is_rejected_and_champion_kept(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A challenger that really is worse (one shallow tree) must not replace the champion."""
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["training"].update(num_boost_round=1, chunk_rounds=1, params={"max_depth": 1})
    (tmp_path / "elec2.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(tmp_path))
    champion, n_audit = harness.champion(), len(harness.ctx.ledger.audit("elec2"))
    assert harness.week(14, {"force": True}) == "success"
    d = harness.decision(14)
    assert d["outcome"] == "rejected", d["details"].get("evaluation")
    assert d["details"]["evaluation"]["gain"] < 0
    assert harness.champion() == champion
    audit = harness.ctx.ledger.audit("elec2")
    assert len(audit) == n_audit + 1 and audit[-1]["action"] == "reject"
