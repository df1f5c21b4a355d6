"""What will the next retrain cost? Past attempts by tag × today's price of their capacity.

``estimate_retrain_cost`` works on any cost and price source. ``retrain_cost_now`` is what the
checkpoint asks: the model's configured sources, and — when one of them refuses (no data for
the tag, a failing price API) — either a fallback that says so (the ledger prior, the static
price table: ``fallback: true`` with the source's own words) or, with
``cost_policy.on_source_error: fail``, a ``CostSourceError`` that fails the task.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from costaware.config import ModelConfig
from costaware.costs.base import (
    Capacity,
    CostEstimate,
    CostRecord,
    CostSource,
    Price,
    PriceSource,
    Spend,
)
from costaware.errors import CostSourceError
from costaware.store.ledger import Ledger

T = TypeVar("T")
CAPACITIES: tuple[Capacity, ...] = ("spot", "on_demand")
# Failures of a cloud client library (network, auth, throttling, a malformed answer) are a
# source refusing to answer, exactly like its own CostSourceError.
CLIENT_LIBRARIES = frozenset({"botocore", "boto3", "google", "requests", "urllib3"})


def model_tags(cfg: ModelConfig) -> dict[str, str]:
    return {"model": cfg.tags.model, "team": cfg.tags.team, "env": cfg.tags.env}


def estimate_retrain_cost(
    cfg: ModelConfig,
    cost_source: CostSource,
    price_source: PriceSource,
    today: dt.date,
    lookback_days: int = 90,
) -> CostEstimate:
    """Median cost of the model's recent retrains; the static prior when there is none.

    A run costs the sum of its attempts. An attempt whose hours and capacity are known is
    re-priced at today's price of *its* capacity (spot hours at the spot price, on-demand
    fallback hours at the on-demand price); otherwise its billed dollars are kept (a bill's
    day, a row that mixed capacities). A run with an attempt of unknown cost is left out of
    the median — its total is not known — and counted in ``unknown_attempts``."""
    t = cfg.training
    capacity: Capacity = "spot" if t.spot.enabled else "on_demand"
    quotes: dict[str, Price] = {}

    def price(cap: Capacity) -> Price:
        if cap not in quotes:
            quotes[cap] = price_source.price(t.instance_type, t.region, cap)
        return quotes[cap]

    configured = price(capacity)
    start = today - dt.timedelta(days=lookback_days)
    records = cost_source.costs(
        model_tags(cfg), start, today + dt.timedelta(days=1), purpose="retrain"
    )

    runs: dict[Any, list[tuple[CostRecord, float | None]]] = {}
    for i, r in enumerate(records):
        key = r.run_id if r.run_id is not None else ("record", i)
        runs.setdefault(key, []).append((r, _attempt_usd(r, price)))
    complete = {k: v for k, v in runs.items() if all(usd is not None for _, usd in v)}
    unknown_attempts = sum(usd is None for v in runs.values() for _, usd in v)
    unknown_note = (
        f"; {len(runs) - len(complete)} run(s) left out: {unknown_attempts} attempt(s) of "
        "unknown cost"
        if unknown_attempts
        else ""
    )

    if not complete:
        hours = (t.expected_runtime_minutes + t.billing_overhead_minutes) / 60.0
        usd = hours * configured.usd_per_hour
        return CostEstimate(
            usd=usd,
            low=usd,
            # Worst case: every spot attempt is lost and the run ends on on-demand.
            high=hours * price("on_demand").usd_per_hour * (1 + 0.5 * t.spot.max_interruptions),
            quality="static" if configured.quality == "static" else "estimated",
            source=f"{cost_source.name} (no history) + {configured.source}",
            basis=(
                f"no retrain of {cfg.name} with a known cost in the last {lookback_days} days: "
                f"{hours * 60:.0f} min expected × ${configured.usd_per_hour:.4f}/h {capacity}"
                + unknown_note
            ),
            history_runs=0,
            price=configured,
            unknown_attempts=unknown_attempts,
        )

    per_run = [sum(usd for _, usd in v if usd is not None) for v in complete.values()]
    used = [r for v in complete.values() for r, _ in v]
    repriced = sorted(
        {str(r.capacity) for r in used if r.usage_hours is not None and r.capacity in CAPACITIES}
    )
    rates = ", ".join(f"${quotes[c].usd_per_hour:.4f}/h {c}" for c in repriced) or "as billed"
    return CostEstimate(
        usd=statistics.median(per_run),
        low=min(per_run),
        high=max(per_run),
        quality="reconciled" if all(r.reconciled for r in used) else "estimated",
        source=f"{cost_source.name} + {configured.source}",
        basis=(
            f"median of {len(per_run)} retrain(s) since {start.isoformat()}, "
            f"{len(used)} attempt(s) at today's price of their capacity ({rates})" + unknown_note
        ),
        history_runs=len(per_run),
        price=configured,
        unknown_attempts=unknown_attempts,
    )


def _attempt_usd(r: CostRecord, price: Callable[[Capacity], Price]) -> float | None:
    if r.usage_hours is not None and r.capacity in CAPACITIES:
        cap: Capacity = "spot" if r.capacity == "spot" else "on_demand"
        return r.usage_hours * price(cap).usd_per_hour
    return r.usd  # None: unknown, and it stays unknown


# -- the checkpoint's question, with the fallback policy -------------------------------------
@dataclass(frozen=True)
class RetrainCost:
    """The estimate and this month's retrain spend, from the same (possibly fallback) source."""

    estimate: CostEstimate
    month: Spend
    month_source: str


class _Refused(CostSourceError):
    """A configured source could not answer; ``role`` says which one (cost or price)."""

    def __init__(self, role: str, name: str, exc: BaseException) -> None:
        words = str(exc) if isinstance(exc, CostSourceError) else f"{type(exc).__name__}: {exc}"
        self.role, self.name, self.words = role, name, words
        super().__init__(f"{name}{' prices' if role == 'price' else ''}: {words}")


def _is_refusal(exc: BaseException) -> bool:
    return (
        isinstance(exc, (CostSourceError, OSError))
        or type(exc).__module__.split(".")[0] in CLIENT_LIBRARIES
    )


class _Guarded:
    """A configured source, built on first use, whose every failure to answer — building it
    included — is raised as ``_Refused``. A ``ConfigError`` (a bad option) is not a refusal."""

    def __init__(self, role: str, name: str, build: Callable[[], Any]) -> None:
        self.role, self.name, self._build = role, name, build
        self._inner: Any = None

    def _ask(self, call: Callable[[Any], T]) -> T:
        try:
            if self._inner is None:
                self._inner = self._build()
            return call(self._inner)
        except Exception as exc:
            if _is_refusal(exc):
                raise _Refused(self.role, self.name, exc) from exc
            raise

    def costs(
        self, tags: dict[str, str], start: dt.date, end: dt.date, purpose: str = "retrain"
    ) -> list[CostRecord]:
        return self._ask(lambda s: s.costs(tags, start, end, purpose))

    def price(self, instance_type: str, region: str, capacity: Capacity) -> Price:
        return self._ask(lambda s: s.price(instance_type, region, capacity))


def _configured(role: str, name: str, fallback: str, build: Callable[[], Any]) -> Any:
    """The configured source; guarded (its refusals caught) unless it is the fallback itself,
    whose errors are raised as they are."""
    return build() if name == fallback else _Guarded(role, name, build)


def retrain_cost_now(
    cfg: ModelConfig, ledger: Ledger, today: dt.date, lookback_days: int = 90
) -> RetrainCost:
    """The expected cost of a retrain now and this month's retrain spend so far.

    When the configured cost source refuses, the ledger prior (the project's own recorded
    attempts) answers; when the price source refuses, the static price table does. Either
    way the estimate is flagged ``fallback`` with the refusal in the source's own words and
    is never ``reconciled``. With ``cost_policy.on_source_error: fail`` the refusal is raised
    instead (a ``CostSourceError``: retryable). The ledger and the static table are the
    fallbacks, so when they are the configured sources their errors are raised as they are."""
    from costaware.costs import make_cost_source, make_price_source
    from costaware.costs.ledger_source import LedgerCostSource
    from costaware.costs.prices import StaticPriceSource

    pol = cfg.cost_policy
    tags = model_tags(cfg)
    month_start, month_end = today.replace(day=1), today + dt.timedelta(days=1)
    configured_costs: CostSource = _configured(
        "cost",
        pol.cost_source,
        "ledger",
        lambda: make_cost_source(pol.cost_source, ledger, pol.cost_source_options),
    )
    configured_prices: PriceSource = _configured(
        "price",
        pol.price_source,
        "static",
        lambda: make_price_source(pol.price_source, ledger, pol.price_source_options),
    )
    refused: dict[str, _Refused] = {}
    while True:
        costs = LedgerCostSource(ledger) if "cost" in refused else configured_costs
        prices = StaticPriceSource() if "price" in refused else configured_prices
        try:
            est = estimate_retrain_cost(cfg, costs, prices, today, lookback_days)
            month = costs.costs(tags, month_start, month_end, purpose="retrain")
            break
        except _Refused as exc:
            if pol.on_source_error == "fail":
                raise CostSourceError(
                    f"{cfg.name}: the {exc.role} source {exc.name!r} could not answer: "
                    f"{exc.words}. cost_policy.on_source_error is 'fail', so no estimate and "
                    "no decision are made (the task is retried). Fix the source, or set "
                    "on_source_error: fallback to price from the ledger prior and the static "
                    "price table, flagged as a fallback."
                ) from exc
            refused[exc.role] = exc  # the fallbacks are not guarded: this loop ends
        except CostSourceError as exc:
            if not refused:
                raise
            raise CostSourceError(
                f"{cfg.name}: {'; '.join(str(r) for r in refused.values())}; and the fallback "
                f"cannot answer either: {exc}"
            ) from exc
    spend = Spend.of(r.usd for r in month)
    if not refused:
        return RetrainCost(est, spend, costs.name)
    used = " + ".join(
        name
        for role, name in (("cost", "ledger prior"), ("price", "static price table"))
        if role in refused
    )
    est = dataclasses.replace(
        est,
        quality="estimated" if est.quality == "reconciled" else est.quality,
        fallback=True,
        fallback_reason="; ".join(str(r) for r in refused.values()),
        fallback_used=used,
    )
    return RetrainCost(est, spend, f"{costs.name} (fallback)")
