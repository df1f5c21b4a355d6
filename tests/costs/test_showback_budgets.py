"""Showback on the FOCUS fixture, the `costaware costs` command, budgets (config and AWS
Budgets through moto) with alerts, and the finops_showback DAG's integrity."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from costs_helpers import NOW, TODAY

from costaware.app.cli_costs import add_costs_commands
from costaware.costs.budgets import BudgetStatus, alert, aws_budgets, model_budget
from costaware.costs.focus import FocusCostSource
from costaware.costs.showback import UNTAGGED, load_charges, render_text, summarize, write_report
from costaware.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FOCUS = ROOT / "tests" / "fixtures" / "focus" / "costs.csv"
START, END = dt.date(2026, 10, 1), dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def charges() -> Any:
    return load_charges(FocusCostSource(FOCUS, clock=lambda: NOW), START, END)


def test_showback_by_team(charges: Any) -> None:
    s = summarize(charges, "team", START, END)
    by = dict(zip(s.by_key["key"], s.by_key["usd"], strict=True))
    # elec2: 50 days x 24 h serving at $0.096, 5 spot retrains, 2 on-demand fallbacks.
    assert by["forecasting"] == pytest.approx(50 * 24 * 0.096 + 5 * 0.35 * 0.0741 + 2 * 0.2 * 0.192)
    assert by["forecasting"] == pytest.approx(115.41, abs=0.01)
    assert by["climate"] == pytest.approx(1.89, abs=0.01)
    # Untagged: NAT 50 days x 24 x 0.045, notebook 20 days x 24 x 0.2304, minus a $5 credit.
    assert s.untagged_usd == pytest.approx(50 * 24 * 0.045 + 20 * 24 * 0.2304 - 5.0)
    assert by[UNTAGGED] == pytest.approx(s.untagged_usd)
    assert s.untagged_share == pytest.approx(s.untagged_usd / s.total_usd)
    assert list(s.top_untagged["resource_id"][:2]) == ["i-0notebook77", "nat-0abc12"]
    assert s.purpose["serve"] == pytest.approx(50 * 24 * 0.096)
    assert set(s.capacity) == {"spot", "on_demand", "other (not compute, or committed)"}
    assert list(s.monthly.index) == ["2026-10", "2026-11"]
    assert s.unreconciled_usd > 0  # the last two days are inside the billing lag
    text = render_text(s)
    assert "untagged: $159.59 (57.6% of spend)" in text


def test_report_files(charges: Any, tmp_path: Path) -> None:
    s = summarize(charges, "model", START, END)
    paths = write_report(charges, s, tmp_path)
    csv = Path(paths["csv"]).read_text().splitlines()
    assert csv[0].startswith("usage_date,usd,model,team,env,purpose,capacity,resource_id")
    assert len(csv) == len(charges) + 1
    html = Path(paths["html"]).read_text()
    assert '<img alt="daily and monthly cost by model" src="data:image/png;base64,' in html
    assert "Biggest untagged resources" in html and "i-0notebook77" in html


def test_report_of_a_window_without_costs(tmp_path: Path) -> None:
    """A new deployment has spent nothing yet: the report says so instead of failing."""
    from costaware.costs.ledger_source import LedgerCostSource
    from costaware.store.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    empty = load_charges(LedgerCostSource(ledger), START, END)
    s = summarize(empty, "model", START, END)
    assert s.total_usd == 0 and empty.empty
    paths = write_report(empty, s, tmp_path / "out")
    html = Path(paths["html"]).read_text()
    assert "Total <b>$0.00</b>" in html and "data:image/png;base64," in html


def test_showback_rejects_unknown_dimension(charges: Any) -> None:
    with pytest.raises(ConfigError, match=r"showback by 'region'; allowed: \['model'"):
        summarize(charges, "region", START, END)


def test_costs_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    parser = argparse.ArgumentParser(prog="costaware")
    add_costs_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "costs",
            "--by",
            "env",
            "--from",
            "2026-10-01",
            "--to",
            "2026-11-20",
            "--source",
            "focus",
            "--path",
            str(FOCUS),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "cost by env, 2026-10-01 .. 2026-11-20" in out and "prod" in out
    assert (tmp_path / "out" / "showback_env_2026-10-01_2026-11-20.html").exists()
    with pytest.raises(ConfigError, match="--source focus needs --path"):
        args.func(
            parser.parse_args(
                ["costs", "--from", "2026-10-01", "--to", "2026-11-01", "--source", "focus"]
            )
        )


def test_model_budget_alerts(caplog: pytest.LogCaptureFixture, gcloud: Any) -> None:
    src = FocusCostSource(FOCUS, clock=lambda: NOW)
    tags = {"model": "elec2", "team": "forecasting", "env": "prod"}
    status = model_budget("elec2", tags, 50.0, src, TODAY)
    # November so far: 19 days of serving plus two retrains.
    assert status.month == "2026-11"
    assert status.spent_usd == pytest.approx(
        19 * 24 * 0.096 + 0.35 * 0.0741 + (0.35 * 0.0741 + 0.2 * 0.192)
    )
    assert status.crossed == 0.8 and not status.would_exceed(1.0)
    assert status.would_exceed(50.0 - status.spent_usd + 0.01)
    quiet = BudgetStatus("weather", "2026-11", 100.0, 10.0, "focus")
    with caplog.at_level(logging.WARNING, logger="costaware.costs.budgets"):
        sent = alert([status, quiet], slack_webhook=f"{gcloud.url}/services/T0/B0/x")
    assert len(sent) == 1 and sent[0].startswith(
        "80% alert: budget elec2 2026-11: $43.87 of $50.00"
    )
    assert "80% alert" in caplog.text and "weather" not in caplog.text
    hook = [r for r in gcloud.requests if r["path"] == "/services/T0/B0/x"]
    assert hook and hook[0]["body"]["text"] == sent[0]


def test_aws_budgets_through_moto(aws_client: Any) -> None:
    client = aws_client("budgets")
    for name, limit, actual in [
        ("ml-elec2", "100", "55.5"),
        ("ml-weather", "50", "51.0"),
        ("ml-idle", "80", "10"),
    ]:
        client.create_budget(
            AccountId="123456789012",
            Budget={
                "BudgetName": name,
                "BudgetLimit": {"Amount": limit, "Unit": "USD"},
                "TimeUnit": "MONTHLY",
                "BudgetType": "COST",
                "CalculatedSpend": {"ActualSpend": {"Amount": actual, "Unit": "USD"}},
            },
        )
    statuses = {s.name: s for s in aws_budgets(client, "123456789012", TODAY)}
    assert statuses["ml-elec2"].spent_usd == 55.5 and statuses["ml-elec2"].crossed == 0.5
    assert statuses["ml-weather"].share > 1
    sent = alert(statuses.values())
    assert sorted(m.split(":")[0] for m in sent) == ["50% alert", "OVER BUDGET"]


def test_finops_showback_dag_integrity(airflow_home) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "finops_showback.py"))
    assert bag.import_errors == {}
    dag = bag.dags["finops_showback"]
    assert {"finops", "showback"} <= set(dag.tags)
    assert dag.default_args["retries"] == 2 and dag.catchup is False
    assert [t.task_id for t in dag.tasks] == ["showback_report", "budget_alerts"]
    assert dag.doc_md and "untagged share" in dag.doc_md
    assert set(dag.params.keys()) == {
        "source",
        "focus_path",
        "lookback_days",
        "aws_budgets_conn_id",
    }
