"""``finops_showback`` through ``dag.test()`` on a realistic FOCUS export (Azure's shape:
unmarked refunds, null pricing categories, committed pricing, tag keys spelled four ways):
the run's report says what loading the export found, and its totals are the file's own."""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ROOT

EXPORT = ROOT / "tests" / "fixtures" / "focus" / "azure_real.csv"
TRUTH = json.loads(EXPORT.with_suffix(".truth.json").read_text())


def _dag() -> Any:
    spec = importlib.util.spec_from_file_location("showback_dag", ROOT / "dags/finops_showback.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.finops_showback()


@pytest.mark.airflow
def test_the_showback_run_reports_the_exports_anomalies(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    dag = _dag()
    conf = {k: dag.params[k] for k in dag.params.keys()}
    conf.update(source="focus", focus_path=str(EXPORT), lookback_days=60)
    day = dt.datetime(2026, 11, 15, tzinfo=dt.UTC)  # the export covers October 2026
    run = copy.deepcopy(dag).test(run_conf=conf, logical_date=day)
    assert run.state == "success"

    (folder,) = (tmp_path / "home" / "reports" / "finops").iterdir()
    pages = {p.name: p.read_text() for p in folder.glob("*.html")}
    team_page = next(text for name, text in pages.items() if "team" in name)
    for kind in TRUTH["planted"]:
        assert kind in team_page, f"{kind} not in the report"
    assert "reconcile to the file" in team_page
    assert "merged from" in team_page  # Environment / environment / Env -> env
    for team, usd in TRUTH["effective_by_team"].items():
        assert f"{usd:,.2f}" in team_page, (team, usd)
