"""What a cost source and a price source are, and the values they return."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Capacity = Literal["spot", "on_demand"]
Quality = Literal["reconciled", "estimated", "static"]


@dataclass(frozen=True)
class CostRecord:
    """One charge attributed to a model: a training attempt, or one day of a tag's spend.

    ``usd`` is None when the amount is unknown (an attempt whose process died before it was
    priced): unknown is not zero, so sums carry it as a count (:class:`Spend`), never as $0."""

    usage_date: dt.date
    usd: float | None
    source: str
    reconciled: bool
    purpose: str = "retrain"
    capacity: str | None = None  # spot | on_demand | mixed | None when the bill does not say
    usage_hours: float | None = None
    run_id: str | None = None
    instance_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    attempt: str | None = None  # which training attempt of ``run_id`` (ledger rows)
    status: str = "final"  # final | running | lost (ledger rows); bills are final


@dataclass(frozen=True)
class Spend:
    """A sum of amounts some of which may be unknown: the known dollars, and how many are not
    known. ``text()`` never shows an unknown part as $0."""

    known_usd: float = 0.0
    unknown: int = 0
    count: int = 0

    @classmethod
    def of(cls, amounts: Iterable[float | None]) -> Spend:
        known, unknown, count = 0.0, 0, 0
        for a in amounts:
            count += 1
            if a is None:
                unknown += 1
            else:
                known += float(a)
        return cls(known, unknown, count)

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.known_usd + other.known_usd, self.unknown + other.unknown, self.count + other.count
        )

    @property
    def complete(self) -> bool:
        return self.unknown == 0

    def text(self, fmt: str = "{:,.4f}") -> str:
        """``$0.0300``; ``$0.0300 + 2 unknown``; ``unknown (2 charges)`` when nothing is known."""
        if self.unknown and self.unknown == self.count:
            return f"unknown ({self.unknown} charge{'s' if self.unknown > 1 else ''})"
        money = "$" + fmt.format(self.known_usd)
        return f"{money} + {self.unknown} unknown" if self.unknown else money

    def as_dict(self) -> dict[str, object]:
        return {
            "known_usd": round(self.known_usd, 6),
            "unknown": self.unknown,
            "count": self.count,
            "text": self.text(),
        }


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    instance_type: str
    region: str
    capacity: Capacity
    source: str
    quality: Quality  # "static" for the built-in table, "estimated" for a live quote
    as_of: str = ""


@dataclass(frozen=True)
class CostEstimate:
    """What one retrain of a model is expected to cost, and how sure we are."""

    usd: float
    low: float
    high: float
    quality: Quality
    source: str
    basis: str  # in words: what history or price the number comes from
    history_runs: int = 0
    price: Price | None = None
    # Past attempts whose cost is unknown (left out of the per-run totals, counted here).
    unknown_attempts: int = 0
    # True when the configured cost or price source refused and a fallback priced the
    # retrain; ``fallback_reason`` then holds the source's own words.
    fallback: bool = False
    fallback_reason: str | None = None
    fallback_used: str | None = None  # what priced it instead, e.g. "ledger prior"

    def as_dict(self) -> dict[str, object]:
        return {
            "usd": round(self.usd, 6),
            "low": round(self.low, 6),
            "high": round(self.high, 6),
            "quality": self.quality,
            "source": self.source,
            "basis": self.basis,
            "history_runs": self.history_runs,
            "price_usd_per_hour": None if self.price is None else self.price.usd_per_hour,
            "price_source": None if self.price is None else self.price.source,
            "unknown_attempts": self.unknown_attempts,
            "fallback": self.fallback,
            "fallback_reason": self.fallback_reason,
            "fallback_used": self.fallback_used,
        }

    def fallback_text(self) -> str | None:
        """``FALLBACK: ledger prior — aws: <its words>``, or None for a first-choice estimate."""
        if not self.fallback:
            return None
        return f"FALLBACK: {self.fallback_used} — {self.fallback_reason}"


@runtime_checkable
class CostSource(Protocol):
    """Past costs attributed to a model by its cost-allocation tags."""

    name: str

    def costs(
        self, tags: dict[str, str], start: dt.date, end: dt.date, purpose: str = "retrain"
    ) -> list[CostRecord]:
        """Charges with all ``tags``, usage dates in [start, end)."""
        ...


@runtime_checkable
class PriceSource(Protocol):
    """The current price of compute."""

    name: str

    def price(self, instance_type: str, region: str, capacity: Capacity) -> Price: ...
