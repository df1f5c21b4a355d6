"""What a cost source and a price source are, and the values they return."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Capacity = Literal["spot", "on_demand"]
Quality = Literal["reconciled", "estimated", "static"]


@dataclass(frozen=True)
class CostRecord:
    """One charge attributed to a model: a training run, or one day of a tag's spend."""

    usage_date: dt.date
    usd: float
    source: str
    reconciled: bool
    purpose: str = "retrain"
    capacity: str | None = None  # spot | on_demand | mixed | None when the bill does not say
    usage_hours: float | None = None
    run_id: str | None = None
    instance_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


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
        }


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
