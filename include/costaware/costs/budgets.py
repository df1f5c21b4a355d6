"""Monthly budgets per model: how much of this month's budget is spent, alerts at 50% and 80%,
and whether one more retrain would pass the budget (the checkpoint then asks for approval).

Spend comes from any CostSource (retrain + serve this month) or, on AWS, from the Budgets API
(``describe_budgets``: the budget's own ``CalculatedSpend``). Alerts are log lines; a Slack
incoming-webhook URL is optional.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from costaware.costs.base import CostSource
from costaware.errors import CostSourceError

log = logging.getLogger(__name__)
THRESHOLDS = (0.5, 0.8)


@dataclass(frozen=True)
class BudgetStatus:
    name: str  # the model, or the AWS budget's name
    month: str  # YYYY-MM
    budget_usd: float
    spent_usd: float
    source: str
    thresholds: tuple[float, ...] = THRESHOLDS

    @property
    def share(self) -> float:
        return self.spent_usd / self.budget_usd if self.budget_usd else float("inf")

    @property
    def crossed(self) -> float | None:
        """The highest alert threshold reached, None below the first."""
        hit = [t for t in self.thresholds if self.share >= t]
        return max(hit) if hit else None

    def would_exceed(self, next_cost_usd: float) -> bool:
        return self.spent_usd + next_cost_usd > self.budget_usd

    def message(self) -> str:
        return (
            f"budget {self.name} {self.month}: ${self.spent_usd:,.2f} of ${self.budget_usd:,.2f} "
            f"spent ({self.share:.0%}; alerts at {', '.join(f'{t:.0%}' for t in self.thresholds)}"
            f"; source: {self.source})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": self.share, "crossed": self.crossed}


def month_bounds(today: dt.date) -> tuple[dt.date, dt.date]:
    start = today.replace(day=1)
    return start, (start + dt.timedelta(days=32)).replace(day=1)


def model_budget(
    model: str,
    tags: dict[str, str],
    budget_usd: float,
    source: CostSource,
    today: dt.date,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> BudgetStatus:
    """This month's retrain + serve spend of a model, from its cost source."""
    start, end = month_bounds(today)
    spent = 0.0
    for purpose in ("retrain", "serve"):
        spent += sum(r.usd for r in source.costs(tags, start, end, purpose=purpose))
    return BudgetStatus(model, start.strftime("%Y-%m"), budget_usd, spent, source.name, thresholds)


def aws_budgets(
    client: Any, account_id: str, today: dt.date, thresholds: tuple[float, ...] = THRESHOLDS
) -> list[BudgetStatus]:
    """Monthly cost budgets of an AWS account, with the spend AWS computed for them."""
    from botocore.exceptions import BotoCoreError, ClientError

    out = []
    try:
        pages = client.get_paginator("describe_budgets").paginate(AccountId=account_id)
        budgets = [b for page in pages for b in page.get("Budgets", [])]
    except (ClientError, BotoCoreError) as exc:
        raise CostSourceError(f"AWS Budgets for account {account_id}: {exc}") from exc
    for b in budgets:
        if b.get("BudgetType") != "COST" or b.get("TimeUnit") != "MONTHLY":
            continue
        limit = b["BudgetLimit"]
        actual = b.get("CalculatedSpend", {}).get("ActualSpend", {})
        if limit.get("Unit") != "USD" or actual.get("Unit", "USD") != "USD":
            raise CostSourceError(f"AWS budget {b['BudgetName']!r} is not in USD: {limit}")
        out.append(
            BudgetStatus(
                b["BudgetName"],
                today.strftime("%Y-%m"),
                float(limit["Amount"]),
                float(actual.get("Amount", 0.0)),
                "aws budgets",
                thresholds,
            )
        )
    return out


def alert(
    statuses: Iterable[BudgetStatus],
    slack_webhook: str | None = None,
    post: Callable[[str, bytes], None] | None = None,
) -> list[str]:
    """Log (and optionally post to Slack) every budget past an alert threshold."""
    sent = []
    for s in statuses:
        if s.crossed is None:
            continue
        text = f"{'OVER BUDGET' if s.share >= 1 else f'{s.crossed:.0%} alert'}: {s.message()}"
        log.warning(text)
        sent.append(text)
        if slack_webhook:
            (post or _post)(slack_webhook, json.dumps({"text": text}).encode())
    return sent


def _post(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a configured webhook
        resp.read()
