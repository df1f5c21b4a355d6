"""What an idle SageMaker resource costs per hour, through the project's PriceSource.

SageMaker bills ``ml.*`` instance types at its own prices, above EC2's for the same hardware.
The price source is asked for the ``ml.*`` type first (a static table or a live source that
knows it); when it does not know it, the EC2 type underneath (``ml.m5.large`` → ``m5.large``)
gives a **lower bound**, labelled as one. When neither is known the price is unknown (None),
shown as unknown and never as $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costaware.costs.base import Capacity, PriceSource
from costaware.errors import CostSourceError


@dataclass(frozen=True)
class HourlyPrice:
    usd_per_hour: float | None  # for all ``count`` instances; None: unknown
    instance_type: str | None
    count: int
    note: str  # where the price came from, or why it is unknown
    lower_bound: bool = False  # True: the EC2 price of the hardware, SageMaker's is higher


class SageMakerPricer:
    def __init__(self, prices: PriceSource, region: str) -> None:
        self.prices = prices
        self.region = region

    def _one(self, instance_type: str, capacity: Capacity) -> tuple[float | None, str, bool]:
        try:
            p = self.prices.price(instance_type, self.region, capacity)
            return p.usd_per_hour, f"{p.source}, ${p.usd_per_hour:g}/h", False
        except CostSourceError as exc:
            first = str(exc)
        if instance_type.startswith("ml."):
            ec2 = instance_type.removeprefix("ml.")
            try:
                p = self.prices.price(ec2, self.region, capacity)
            except CostSourceError as exc:
                return None, f"unknown: {first}; and for {ec2}: {exc}", False
            return (
                p.usd_per_hour,
                f"at least: the EC2 price of {ec2} ({p.source}, ${p.usd_per_hour:g}/h); "
                f"SageMaker's {instance_type} costs more and {self.prices.name!r} has no price "
                "for it",
                True,
            )
        return None, f"unknown: {first}", False

    def instances(self, instance_type: str, count: int, capacity: Capacity) -> HourlyPrice:
        usd, note, lower = self._one(instance_type, capacity)
        total = None if usd is None else usd * count
        return HourlyPrice(total, instance_type, count, f"{count} x {note}", lower)

    def endpoint(self, desc: dict[str, Any], config: dict[str, Any]) -> HourlyPrice:
        """Every variant of an endpoint: its config's instance type × its current count.
        A serverless variant is billed per call and costs nothing while idle, unless it has
        provisioned concurrency (then the endpoint's price is unknown)."""
        counts = {
            v["VariantName"]: v.get("CurrentInstanceCount")
            for v in desc.get("ProductionVariants", [])
        }
        total: float | None = 0.0
        notes, types, n, lower = [], [], 0, False
        for v in config.get("ProductionVariants", []):
            name = v["VariantName"]
            if "InstanceType" not in v:
                if (v.get("ServerlessConfig") or {}).get("ProvisionedConcurrency"):
                    # Provisioned concurrency is billed while idle, at prices not priced here.
                    notes.append(f"{name}: serverless with provisioned concurrency, unknown")
                    total = None
                else:
                    notes.append(f"{name}: serverless, no charge while idle")
                continue
            current = counts.get(name)  # 0 is a real count (scaled to zero), not "unset"
            count = int(current if current is not None else v.get("InitialInstanceCount", 1))
            usd, note, low = self._one(v["InstanceType"], "on_demand")
            notes.append(f"{name}: {count} x {note}")
            types.append(v["InstanceType"])
            n += count
            lower |= low
            total = None if usd is None or total is None else total + usd * count
        return HourlyPrice(total, "+".join(sorted(set(types))) or None, n, "; ".join(notes), lower)
