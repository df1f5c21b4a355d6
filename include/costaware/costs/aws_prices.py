"""The ``aws`` price source: spot from EC2 ``describe_spot_price_history``, on-demand from the
AWS Pricing API (``get_products``). Both are live quotes, labelled ``estimated``.

Clients come from a factory ``(service, region) -> boto3 client`` so one source answers for
any region (spot history is regional; the Pricing API lives in us-east-1 only).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Callable
from typing import Any

from costaware.costs.base import Capacity, Price
from costaware.errors import CostSourceError

ClientFactory = Callable[[str, str], Any]
PRICING_REGION = "us-east-1"


def on_demand_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    # These five narrow the catalogue to the one shared-tenancy Linux on-demand product.
    wanted = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in wanted.items()]


def hourly_on_demand_usd(price_list: list[str]) -> list[float]:
    """USD per hour of every on-demand term in a ``get_products`` PriceList (JSON strings)."""
    out = []
    for item in price_list:
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                if dim.get("unit") in ("Hrs", "Hours", "Hrs.") and "USD" in dim.get(
                    "pricePerUnit", {}
                ):
                    out.append(float(dim["pricePerUnit"]["USD"]))
    return out


class AwsPriceSource:
    name = "aws"

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        product_description: str = "Linux/UNIX",
        spot_lookback_hours: float = 6.0,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.client_factory = client_factory
        self.product_description = product_description
        self.spot_lookback_hours = spot_lookback_hours
        self.clock = clock

    def _now(self) -> dt.datetime:
        return self.clock() if self.clock else dt.datetime.now(dt.UTC)

    def price(self, instance_type: str, region: str, capacity: Capacity) -> Price:
        if capacity == "spot":
            usd, as_of, how = self._spot(instance_type, region)
        else:
            usd, as_of, how = self._on_demand(instance_type, region)
        return Price(
            usd_per_hour=usd,
            instance_type=instance_type,
            region=region,
            capacity=capacity,
            source=f"aws {how}",
            quality="estimated",
            as_of=as_of,
        )

    def _spot(self, instance_type: str, region: str) -> tuple[float, str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        now = self._now()
        try:
            ec2 = self.client_factory("ec2", region)
            pages = ec2.get_paginator("describe_spot_price_history").paginate(
                InstanceTypes=[instance_type],
                ProductDescriptions=[self.product_description],
                StartTime=now - dt.timedelta(hours=self.spot_lookback_hours),
                EndTime=now,
            )
            history = [h for page in pages for h in page.get("SpotPriceHistory", [])]
        except (ClientError, BotoCoreError) as exc:
            raise CostSourceError(
                f"spot price history for {instance_type} in {region}: {exc}"
            ) from exc
        # The newest price in each availability zone; the median zone is what a fleet that
        # may land in any zone should expect to pay.
        latest: dict[str, dict[str, Any]] = {}
        for h in history:
            az = h["AvailabilityZone"]
            if az not in latest or h["Timestamp"] > latest[az]["Timestamp"]:
                latest[az] = h
        if not latest:
            raise CostSourceError(
                f"no spot price history for {instance_type!r} ({self.product_description}) in "
                f"{region} over the last {self.spot_lookback_hours:g} h; is the type offered "
                "as spot there?"
            )
        usd = statistics.median(float(h["SpotPrice"]) for h in latest.values())
        newest = max(h["Timestamp"] for h in latest.values())
        as_of = newest.isoformat() if hasattr(newest, "isoformat") else str(newest)
        return usd, as_of, f"spot price history (median of {len(latest)} AZ)"

    def _on_demand(self, instance_type: str, region: str) -> tuple[float, str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pricing = self.client_factory("pricing", PRICING_REGION)
            pages = pricing.get_paginator("get_products").paginate(
                ServiceCode="AmazonEC2",
                Filters=on_demand_filters(instance_type, region),
                FormatVersion="aws_v1",
            )
            price_list = [p for page in pages for p in page.get("PriceList", [])]
        except (ClientError, BotoCoreError) as exc:
            raise CostSourceError(f"AWS Pricing for {instance_type} in {region}: {exc}") from exc
        try:
            prices = sorted(set(hourly_on_demand_usd(price_list)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CostSourceError(
                f"AWS Pricing answered {len(price_list)} product(s) for {instance_type} in "
                f"{region} that cannot be read as prices: {type(exc).__name__}: {exc}"
            ) from exc
        if not prices:
            raise CostSourceError(
                f"AWS Pricing has no Linux shared on-demand hourly price for {instance_type!r} "
                f"in {region} ({len(price_list)} product(s) matched)"
            )
        if len(prices) > 1:
            raise CostSourceError(
                f"AWS Pricing returned {len(prices)} different on-demand prices for "
                f"{instance_type!r} in {region}: {prices}; the filters are not narrow enough"
            )
        return prices[0], self._now().date().isoformat(), "pricing api (on-demand)"
