"""Monthly budgets per model: how much of this month's budget is spent, alerts at 50% and 80%,
and whether one more retrain would pass the budget (the checkpoint then asks for approval).

Spend comes from any CostSource — retraining (tag ``purpose=retrain``) and serving
(``purpose=serve``) this month, both counted against the model's budget — or, on AWS, from the
Budgets API (``describe_budgets``: the budget's own ``CalculatedSpend``; see ``aws_budgets.py``
for reading it through an Airflow connection). Every alert names the biggest contributors
(model or resource, and $). Alerts are log lines, and one Slack message when an incoming
webhook is configured (Airflow connection ``costaware_slack``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from costaware.costs.base import CostSource, Spend
from costaware.errors import CostawareError, CostSourceError

log = logging.getLogger(__name__)
THRESHOLDS = (0.5, 0.8)
TOP = 3  # contributors named in an alert: enough to act on, short enough for one Slack line


@dataclass(frozen=True)
class Contributor:
    """One of the biggest parts of a budget's spend: what it is, and its known dollars."""

    what: str  # "model elec2", "serve ep-elec2-prod", "resource i-0abc (Amazon EC2)"
    usd: float
    unknown: int = 0  # charges of unknown amount in it


@dataclass(frozen=True)
class BudgetStatus:
    name: str  # the model, or the AWS budget's name
    month: str  # YYYY-MM
    budget_usd: float
    spent_usd: float  # the known part of the spend
    source: str
    thresholds: tuple[float, ...] = THRESHOLDS
    unknown: int = 0  # charges whose amount is unknown: the spend is at least ``spent_usd``
    by_purpose: dict[str, float] = field(default_factory=dict)  # retrain / serve, known $
    contributors: tuple[Contributor, ...] = ()  # the biggest first
    contributors_from: str = ""  # where the contributors were read, when not ``source``

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
        spent = f"${self.spent_usd:,.2f}" + (f" + {self.unknown} unknown" if self.unknown else "")
        at_least = "at least " if self.unknown else ""
        alerts = ", ".join(f"{t:.0%}" for t in self.thresholds)
        return (
            f"budget {self.name} {self.month}: {spent} of ${self.budget_usd:,.2f} "
            f"spent ({at_least}{self.share:.0%}; alerts at {alerts}; source: {self.source})"
        )

    def biggest(self) -> str:
        """``biggest: serve ep-1 $30.00, retrain run-7 $5.00`` (empty when none are known)."""
        if not self.contributors:
            return ""
        parts = [
            f"{c.what} ${c.usd:,.2f}" + (f" + {c.unknown} unknown" if c.unknown else "")
            for c in self.contributors
        ]
        where = f" (from {self.contributors_from})" if self.contributors_from else ""
        return f"biggest{where}: " + ", ".join(parts)

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
    """This month's retrain + serve spend of a model, from its cost source: the known dollars
    and the number of charges whose amount is unknown (never counted as $0)."""
    start, end = month_bounds(today)
    spent = Spend()
    by_purpose: dict[str, float] = {}
    parts: dict[str, Spend] = {}
    for purpose in ("retrain", "serve"):
        records = source.costs(tags, start, end, purpose=purpose)
        got = Spend.of(r.usd for r in records)
        spent += got
        by_purpose[purpose] = got.known_usd
        for r in records:
            # A ledger row names its run; a bill's daily row names only the spend's kind.
            what = f"{purpose} {r.run_id}" if r.run_id else f"{purpose} ({r.source})"
            parts[what] = parts.get(what, Spend()) + Spend.of([r.usd])
    return BudgetStatus(
        model,
        start.strftime("%Y-%m"),
        budget_usd,
        spent.known_usd,
        source.name,
        thresholds,
        unknown=spent.unknown,
        by_purpose=by_purpose,
        contributors=_top(parts),
    )


def _top(parts: dict[str, Spend], n: int = TOP) -> tuple[Contributor, ...]:
    """The ``n`` biggest by known dollars (ties by name, so the order is stable)."""
    ranked = sorted(parts.items(), key=lambda kv: (-kv[1].known_usd, kv[0]))
    return tuple(Contributor(what, s.known_usd, s.unknown) for what, s in ranked[:n])


def contributors_from_charges(charges: Any, n: int = TOP) -> tuple[Contributor, ...]:
    """The biggest models and resources in a showback charges table (``showback.load_charges``:
    one row per charge with ``usd``, ``model``, ``resource_id``, ``service``): the ``n``
    biggest models (untagged spend as ``model (untagged)``) then the ``n`` biggest resources.
    For an AWS budget, which covers the account rather than one model."""
    parts: dict[str, Spend] = {}
    for row in charges.itertuples(index=False):
        usd = None if row.usd != row.usd else float(row.usd)  # NaN: unknown amount
        model = row.model if isinstance(row.model, str) and row.model else "(untagged)"
        parts[f"model {model}"] = parts.get(f"model {model}", Spend()) + Spend.of([usd])
    resources: dict[str, Spend] = {}
    for row in charges.itertuples(index=False):
        if not (isinstance(row.resource_id, str) and row.resource_id):
            continue
        usd = None if row.usd != row.usd else float(row.usd)
        what = f"resource {row.resource_id} ({row.service})"
        resources[what] = resources.get(what, Spend()) + Spend.of([usd])
    return _top(parts, n) + _top(resources, n)


def with_contributors(
    statuses: Iterable[BudgetStatus], contributors: tuple[Contributor, ...], where: str
) -> list[BudgetStatus]:
    return [replace(s, contributors=contributors, contributors_from=where) for s in statuses]


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


SLACK_CONN_ID = "costaware_slack"  # the Airflow connection that holds the webhook
SLACK_DEFAULT_ENDPOINT = "hooks.slack.com/services"


def slack_webhook_url(
    password: str | None,
    host: str | None = None,
    schema: str | None = None,
    port: int | None = None,
) -> str | None:
    """The incoming-webhook URL from an Airflow connection's fields, read the way Airflow's
    Slack provider reads a ``slackwebhook`` connection: the whole URL in the password, or only
    its secret path (``T…/B…/…``) in the password with the endpoint in host (default
    ``hooks.slack.com/services``), schema (default ``https``) and port. The password is the
    field Airflow masks in task logs, which is why the secret goes there. None: no password,
    Slack is not configured."""
    token = (password or "").strip()
    if not token:
        return None
    if "://" in token:
        return token
    endpoint = (host or SLACK_DEFAULT_ENDPOINT).strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = f"{schema or 'https'}://{endpoint}"
    if port:
        scheme, rest = endpoint.split("://", 1)
        netloc, _, path = rest.partition("/")
        endpoint = f"{scheme}://{netloc.split(':')[0]}:{port}" + (f"/{path}" if path else "")
    return f"{endpoint}/{token.lstrip('/')}"


def slack_escape(text: str) -> str:
    """Slack's required escaping of message text: ``&``, ``<`` and ``>``. Without it a budget
    name from a cloud API could ping ``<!channel>`` or post a disguised ``<url|link>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert(
    statuses: Iterable[BudgetStatus],
    slack_webhook: str | None = None,
    post: Callable[[str, bytes], None] | None = None,
) -> list[str]:
    """Log every budget past an alert threshold and, with a webhook, post them to Slack as one
    message (one request per run: a retried task repeats one message, not a partial series)."""
    sent = []
    for s in statuses:
        if s.crossed is None:
            continue
        text = f"{'OVER BUDGET' if s.share >= 1 else f'{s.crossed:.0%} alert'}: {s.message()}"
        if s.contributors:
            text += f"; {s.biggest()}"
        log.warning(text)
        sent.append(text)
    if sent and slack_webhook:
        body = json.dumps({"text": "\n".join(slack_escape(t) for t in sent)}).encode()
        (post or _post)(slack_webhook, body)
    return sent


def _post(url: str, body: bytes) -> None:
    """POST to the webhook. Errors never carry the URL: its path is the secret."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a configured webhook
            resp.read()
    except urllib.error.HTTPError as exc:
        raise CostawareError(
            f"the Slack webhook (Airflow connection {SLACK_CONN_ID!r}) answered HTTP {exc.code} "
            f"{exc.reason}; check that the webhook is still active in Slack"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CostawareError(
            f"the Slack webhook (Airflow connection {SLACK_CONN_ID!r}) could not be reached: "
            f"{type(reason).__name__}; check the connection's host and the network"
        ) from None
