"""Serving spend counted against budgets, AWS Budgets read through an Airflow connection, and
alerts that name the biggest contributors. Clouds over HTTP: moto's server (Cost Explorer's
queued answers, Budgets, STS)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from costs_helpers import ce_day, ce_result, queue_ce, use_aws_connection

from costaware.costs.aws import AwsCostExplorerSource
from costaware.costs.aws_budgets import account_budgets, read_aws_budgets
from costaware.costs.budgets import alert, model_budget
from costaware.costs.ledger_source import LedgerCostSource
from costaware.errors import ConfigError
from costaware.store.ledger import Ledger

TODAY = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 20, 12)
TAGS = {"model": "elec2", "team": "forecasting", "env": "prod"}
SERVE = ("serve", "On Demand Instances")
RETRAIN = ("retrain", "Spot Instances")


def test_serving_spend_from_cost_explorer_counts_against_the_budget(
    moto: str, aws_client: Any
) -> None:
    queue_ce(
        moto,
        [
            ce_result(
                [
                    ce_day(dt.date(2026, 11, 3), {SERVE: 30.0, RETRAIN: 2.0}),
                    ce_day(dt.date(2026, 11, 4), {SERVE: 12.0}),
                ]
            )
        ],
    )
    source = AwsCostExplorerSource(aws_client("ce"), None, clock=lambda: NOW)
    status = model_budget("elec2", TAGS, 80.0, source, TODAY)
    # Retraining alone is $2 of $80 (2.5 %, no alert); serving makes it $44 (55 %).
    assert status.by_purpose == {"retrain": pytest.approx(2.0), "serve": pytest.approx(42.0)}
    assert status.spent_usd == pytest.approx(44.0) and status.crossed == 0.5
    [sent] = alert([status])
    assert sent == (
        "50% alert: budget elec2 2026-11: $44.00 of $80.00 spent (55%; alerts at 50%, 80%; "
        "source: aws); biggest: serve (aws cost explorer (UnblendedCost)) $42.00, "
        "retrain (aws cost explorer (UnblendedCost)) $2.00"
    )


def _cost(ledger: Ledger, model: str, run: str, purpose: str, usd: float | None, n: int) -> None:
    ledger.record_cost(
        model=model,
        run_id=run,
        purpose=purpose,
        attempt=f"job/{n}",
        usd=usd,
        status="final" if usd is not None else "lost",
        capacity="on_demand" if purpose == "serve" else "spot",
        instance_type="m5.xlarge",
        runtime_s=None,
        interruptions=0,
        price_source="static",
        usage_date=dt.datetime(2026, 11, 3 + n),
        tags={"model": model, "team": "forecasting", "env": "prod", "purpose": purpose},
    )


@pytest.fixture
def spend(ledger: Ledger) -> Ledger:
    """November: elec2 retrains twice (one attempt unpriced) and serves; weather retrains."""
    _cost(ledger, "elec2", "run-a", "retrain", 5.0, 1)
    _cost(ledger, "elec2", "run-b", "retrain", 0.5, 2)
    _cost(ledger, "elec2", "run-b", "retrain", None, 3)
    _cost(ledger, "elec2", "serve-2026-11", "serve", 20.0, 4)
    _cost(ledger, "weather", "run-w", "retrain", 7.0, 5)
    return ledger


def test_a_model_alert_names_its_biggest_runs_and_serving(spend: Ledger) -> None:
    status = model_budget("elec2", TAGS, 30.0, LedgerCostSource(spend), TODAY)
    assert status.spent_usd == pytest.approx(25.5) and status.unknown == 1
    assert status.crossed == 0.8  # 85 %: the serving $20 is what crosses 80 %
    [sent] = alert([status])
    assert sent.startswith("80% alert: budget elec2 2026-11: $25.50 + 1 unknown of $30.00")
    assert sent.endswith(
        "biggest: serve serve-2026-11 $20.00, retrain run-a $5.00, retrain run-b $0.50 + 1 unknown"
    )


def test_aws_budgets_through_the_connection_name_the_accounts_biggest(
    moto: str, spend: Ledger, aws_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    budgets = aws_client("budgets")
    for name, limit, actual in [("ml-platform", "60", "50.0"), ("sandbox", "100", "10")]:
        budgets.create_budget(
            AccountId="123456789012",  # moto's account, as STS answers for any key
            Budget={
                "BudgetName": name,
                "BudgetLimit": {"Amount": limit, "Unit": "USD"},
                "TimeUnit": "MONTHLY",
                "BudgetType": "COST",
                "CalculatedSpend": {"ActualSpend": {"Amount": actual, "Unit": "USD"}},
            },
        )
    use_aws_connection(monkeypatch, "aws_billing", endpoint_url=moto)
    statuses = {s.name: s for s in account_budgets("aws_billing", TODAY, LedgerCostSource(spend))}
    assert set(statuses) == {"ml-platform", "sandbox"}
    assert statuses["ml-platform"].spent_usd == 50.0 and statuses["ml-platform"].crossed == 0.8
    [sent] = alert(statuses.values())
    assert sent.startswith("80% alert: budget ml-platform 2026-11: $50.00 of $60.00")
    # The month's models, then its resources (ledger: runs), from the report's source.
    assert sent.endswith(
        "biggest (from ledger, 2026-11): model elec2 $25.50 + 1 unknown, model weather $7.00, "
        "resource serve-2026-11 (costaware training) $20.00, resource run-w (costaware "
        "training) $7.00, resource run-a (costaware training) $5.00"
    )


def test_a_missing_budgets_connection_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_AWS_TEAM_BUDGETS", raising=False)
    with pytest.raises(ConfigError, match="no Airflow connection 'aws_team_budgets'"):
        read_aws_budgets("aws_team_budgets", TODAY)
