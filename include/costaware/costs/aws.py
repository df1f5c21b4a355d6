"""The ``aws`` cost source: daily spend by cost-allocation tag from AWS Cost Explorer.

Cost Explorer is billed ($0.01 a request) and throttled, and its numbers move for about two
days after usage. So:

- the window is fetched one calendar month at a time and each month's answer is cached in
  the ledger DB (:mod:`costaware.costs.cache`): a month whose bill is final is never fetched
  again, the current month at most once per ``cache_ttl_hours``;
- requests per run are capped (``max_requests``) and throttling is retried with exponential
  backoff; any other failure, on any page, fails the whole answer (no partial sums);
- a day within ``lag_hours`` of now, or flagged ``Estimated`` by AWS, is returned with
  ``reconciled=False``; a day with no spend yields no record rather than a $0 record;
- when the tags match nothing at all in the window (every purpose, every purchase type) the
  source raises: an inactive cost-allocation tag looks exactly like "free" otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from costaware.costs.base import CostRecord
from costaware.costs.cache import ResponseCache
from costaware.errors import CostSourceError

log = logging.getLogger(__name__)

SERVICE = "ce.get_cost_and_usage"
# Error codes AWS uses for "slow down"; everything else is a real failure.
THROTTLE_CODES = frozenset(
    {
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    }
)
PURCHASE_TYPES = {"Spot Instances": "spot", "On Demand Instances": "on_demand"}
NO_DATA_HINT = "no data for this tag (is it activated as a cost-allocation tag?)"


@dataclass(frozen=True)
class CostExplorerReport:
    """What the last ``costs`` call cost and what it could not vouch for."""

    requests: int
    cache_hits: int
    pages: int
    unreconciled_days: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Tally:
    requests: int = 0
    cache_hits: int = 0
    pages: int = 0
    notes: list[str] = field(default_factory=list)


def month_chunks(start: dt.date, end: dt.date, today: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Calendar months covering [start, end), the last one cut at tomorrow: a closed month is
    the same request every day, so its cached answer keeps being used."""
    stop = min(end, today + dt.timedelta(days=1))
    chunks = []
    m = start.replace(day=1)
    while m < stop:
        nxt = (m + dt.timedelta(days=32)).replace(day=1)
        chunks.append((m, min(nxt, stop)))
        m = nxt
    return chunks


def tag_filter(tags: dict[str, str]) -> dict[str, Any] | None:
    exprs = [
        {"Tags": {"Key": k, "Values": [v], "MatchOptions": ["EQUALS"]}}
        for k, v in sorted(tags.items())
    ]
    if not exprs:
        return None
    # Cost Explorer rejects an "And" with a single operand.
    return exprs[0] if len(exprs) == 1 else {"And": exprs}


class AwsCostExplorerSource:
    name = "aws"

    def __init__(
        self,
        client: Any,
        cache: ResponseCache | None = None,
        *,
        metric: str = "UnblendedCost",
        tag_keys: dict[str, str] | None = None,
        max_requests: int = 20,
        lag_hours: float = 48.0,
        max_retries: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.metric = metric
        self.tag_keys = dict(tag_keys or {})
        self.max_requests = max_requests
        self.lag_hours = lag_hours
        self.max_retries = max_retries
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.sleep = sleep
        self.clock = clock
        self.requests_made = 0  # over this object's life, i.e. one run
        self.last_report: CostExplorerReport | None = None

    def _now(self) -> dt.datetime:
        now = self.clock() if self.clock else dt.datetime.now(dt.UTC)
        return now.replace(tzinfo=None) if now.tzinfo else now

    def _key(self, tag: str) -> str:
        return self.tag_keys.get(tag, tag)

    # -- the verb --------------------------------------------------------------------
    def costs(
        self, tags: dict[str, str], start: dt.date, end: dt.date, purpose: str = "retrain"
    ) -> list[CostRecord]:
        now = self._now()
        cutoff = now - dt.timedelta(hours=self.lag_hours)
        aws_tags = {self._key(k): v for k, v in tags.items() if k != "purpose"}
        tally = _Tally()
        days: dict[str, dict[str, Any]] = {}
        any_data = False
        for lo, hi in month_chunks(start, end, now.date()):
            request = self._request(aws_tags, lo, hi)
            final = hi <= cutoff.date() - dt.timedelta(days=1)
            pages = self._fetch(request, final, now, tally)
            for page in pages:
                for day in page.get("ResultsByTime", []):
                    any_data |= self._fold(day, purpose, days)
        records, unreconciled = self._records(days, start, end, cutoff, tags, purpose)
        if not any_data:
            tally.notes.append(self._no_data(tags, start, end))
        self.last_report = CostExplorerReport(
            requests=tally.requests,
            cache_hits=tally.cache_hits,
            pages=tally.pages,
            unreconciled_days=tuple(unreconciled),
            notes=tuple(tally.notes),
        )
        if not any_data:
            raise CostSourceError(tally.notes[-1])
        return records

    # -- pieces ----------------------------------------------------------------------
    def _request(self, tags: dict[str, str], lo: dt.date, hi: dt.date) -> dict[str, Any]:
        # Purpose is a group, not a filter: one cached answer serves retrain and serve, and
        # a tag with serve spend but no retrain yet is "no history", not "inactive tag".
        request: dict[str, Any] = {
            "TimePeriod": {"Start": lo.isoformat(), "End": hi.isoformat()},
            "Granularity": "DAILY",
            "Metrics": [self.metric],
            "GroupBy": [
                {"Type": "TAG", "Key": self._key("purpose")},
                {"Type": "DIMENSION", "Key": "PURCHASE_TYPE"},
            ],
        }
        flt = tag_filter(tags)
        if flt is not None:
            request["Filter"] = flt
        return request

    def _fetch(
        self, request: dict[str, Any], final: bool, now: dt.datetime, tally: _Tally
    ) -> list[dict[str, Any]]:
        if self.cache is not None:
            cached = self.cache.get(SERVICE, request, now)
            if cached is not None:
                tally.cache_hits += 1
                return list(cached)
        pages: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs = dict(request)
            if token:
                kwargs["NextPageToken"] = token
            try:
                resp = self._call(kwargs, tally)
            except CostSourceError as exc:
                period = request["TimePeriod"]
                raise CostSourceError(
                    f"Cost Explorer failed on page {len(pages) + 1} for "
                    f"{period['Start']}..{period['End']}: {exc}. No partial result is used."
                ) from exc
            tally.pages += 1
            day_rows = resp.get("ResultsByTime", [])
            final = final and not any(d.get("Estimated") for d in day_rows)
            pages.append({"ResultsByTime": day_rows})
            token = resp.get("NextPageToken")
            if not token:
                break
        if self.cache is not None:
            self.cache.put(SERVICE, request, pages, final=final, now=now)
        return pages

    def _call(self, kwargs: dict[str, Any], tally: _Tally) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(self.max_retries + 1):
            if self.requests_made >= self.max_requests:
                raise CostSourceError(
                    f"Cost Explorer request cap reached: {self.requests_made} request(s) made "
                    f"this run, cap is {self.max_requests} (cost_source_options.max_requests)"
                )
            self.requests_made += 1
            tally.requests += 1
            try:
                return dict(self.client.get_cost_and_usage(**kwargs))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in THROTTLE_CODES:
                    raise CostSourceError(f"{code}: {exc}") from exc
                if attempt == self.max_retries:
                    raise CostSourceError(
                        f"still throttled ({code}) after {attempt + 1} attempts"
                    ) from exc
                delay = min(self.max_delay_s, self.base_delay_s * 2**attempt)
                log.warning("Cost Explorer throttled (%s); retrying in %.1f s", code, delay)
                self.sleep(delay)
            except BotoCoreError as exc:
                raise CostSourceError(f"cannot reach Cost Explorer: {exc}") from exc
        raise AssertionError("unreachable")

    def _fold(self, day: dict[str, Any], purpose: str, days: dict[str, dict[str, Any]]) -> bool:
        """Add one day of grouped results to ``days``; True when the day had any group."""
        date = day["TimePeriod"]["Start"]
        slot = days.setdefault(date, {"usd": 0.0, "caps": set(), "estimated": False, "n": 0})
        slot["estimated"] |= bool(day.get("Estimated"))
        groups = day.get("Groups") or []
        for g in groups:
            tag_key, purchase = (g.get("Keys") or ["", ""])[:2]
            # Tag group keys read "purpose$retrain"; "purpose$" is spend without the tag.
            if tag_key.partition("$")[2] != purpose:
                continue
            amount = float(g["Metrics"][self.metric]["Amount"])
            slot["usd"] += amount
            slot["n"] += 1
            if purchase in PURCHASE_TYPES:
                slot["caps"].add(PURCHASE_TYPES[purchase])
        return bool(groups)

    def _records(
        self,
        days: dict[str, dict[str, Any]],
        start: dt.date,
        end: dt.date,
        cutoff: dt.datetime,
        tags: dict[str, str],
        purpose: str,
    ) -> tuple[list[CostRecord], list[str]]:
        records, unreconciled = [], []
        for date in sorted(days):
            d = dt.date.fromisoformat(date)
            slot = days[date]
            if not (start <= d < end):
                continue
            recent = dt.datetime.combine(d + dt.timedelta(days=1), dt.time()) > cutoff
            reconciled = not (recent or slot["estimated"])
            if not reconciled:
                unreconciled.append(date)
            if slot["n"] == 0 or abs(slot["usd"]) < 1e-9:
                # No spend (or not billed yet): no record. A $0 record would read as "free".
                continue
            caps = slot["caps"]
            records.append(
                CostRecord(
                    usage_date=d,
                    usd=slot["usd"],
                    source=f"aws cost explorer ({self.metric})",
                    reconciled=reconciled,
                    purpose=purpose,
                    capacity=(next(iter(caps)) if len(caps) == 1 else "mixed" if caps else None),
                    tags={**tags, "purpose": purpose},
                )
            )
        return records, unreconciled

    def _no_data(self, tags: dict[str, str], start: dt.date, end: dt.date) -> str:
        shown = ", ".join(f"{self._key(k)}={v}" for k, v in sorted(tags.items()))
        return (
            f"Cost Explorer returned nothing for tags {shown or '(none)'} between "
            f"{start.isoformat()} and {end.isoformat()}: {NO_DATA_HINT}"
        )
