"""AWS Budgets read through an Airflow connection: the monthly cost budgets of the account the
connection signs in to, with the spend AWS computed for each (``CalculatedSpend``).

The clients come from the Amazon provider's ``AwsBaseHook`` (``builders.aws_client_factory``):
the connection's keys or role and its ``endpoint_url`` extras. The account id is the one the
connection's credentials belong to (STS ``GetCallerIdentity``), unless given: a budget of
another account needs a role there, which is the connection's business, not the code's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from costaware.costs.budgets import (
    THRESHOLDS,
    BudgetStatus,
    aws_budgets,
    contributors_from_charges,
    month_bounds,
    with_contributors,
)
from costaware.errors import CostSourceError

BUDGETS_REGION = "us-east-1"  # the Budgets API has one endpoint, in us-east-1


def read_aws_budgets(
    conn_id: str,
    today: dt.date,
    account_id: str | None = None,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> list[BudgetStatus]:
    from botocore.exceptions import BotoCoreError, ClientError

    from costaware.costs.builders import aws_client_factory

    factory = aws_client_factory(conn_id)
    if account_id is None:
        try:
            account_id = str(factory("sts", BUDGETS_REGION).get_caller_identity()["Account"])
        except (ClientError, BotoCoreError) as exc:
            raise CostSourceError(
                f"AWS Budgets: cannot tell the account of Airflow connection {conn_id!r} "
                f"(STS GetCallerIdentity): {exc}"
            ) from exc
    return aws_budgets(factory("budgets", BUDGETS_REGION), account_id, today, thresholds)


def account_budgets(
    conn_id: str, today: dt.date, source: Any, account_id: str | None = None
) -> list[BudgetStatus]:
    """The account's AWS Budgets, each naming the month's biggest models and resources in
    ``source`` (a source that lists every charge: ``ledger`` or ``focus``). An AWS budget
    covers the account, so its contributors are the account's, not one model's."""
    from costaware.costs.showback import load_charges

    statuses = read_aws_budgets(conn_id, today, account_id)
    start, _ = month_bounds(today)
    charges = load_charges(source, start, today + dt.timedelta(days=1))
    top = contributors_from_charges(charges)
    return with_contributors(statuses, top, f"{source.name}, {start:%Y-%m}")
