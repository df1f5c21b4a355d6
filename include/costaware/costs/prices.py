"""The static price table: the fallback price source, always labelled as such.

On-demand figures are the public Linux list prices in us-east-1 / us-central1; spot figures
are typical recent spot prices. A live price source (AWS, GCP) replaces them.
"""

from __future__ import annotations

from costaware.costs.base import Capacity, Price
from costaware.errors import CostSourceError

AS_OF = "2026-11 list prices"

# instance type -> (on-demand $/h, typical spot $/h)
STATIC_PRICES: dict[str, tuple[float, float]] = {
    "m5.large": (0.096, 0.037),
    "m5.xlarge": (0.192, 0.074),
    "m5.2xlarge": (0.384, 0.148),
    "c5.2xlarge": (0.340, 0.131),
    "r5.xlarge": (0.252, 0.089),
    "g5.xlarge": (1.006, 0.402),
    "p3.2xlarge": (3.060, 0.918),
    "n2-standard-4": (0.194, 0.047),
    "n2-standard-8": (0.388, 0.094),
    "e2-standard-4": (0.134, 0.040),
    "a2-highgpu-1g": (3.673, 1.102),
}


class StaticPriceSource:
    name = "static"

    def __init__(self, table: dict[str, tuple[float, float]] | None = None) -> None:
        self.table = STATIC_PRICES if table is None else table

    def price(self, instance_type: str, region: str, capacity: Capacity) -> Price:
        try:
            on_demand, spot = self.table[instance_type]
        except KeyError:
            raise CostSourceError(
                f"no static price for instance type {instance_type!r}; "
                f"known: {sorted(self.table)}. Add it to the table or use a live price source."
            ) from None
        return Price(
            usd_per_hour=spot if capacity == "spot" else on_demand,
            instance_type=instance_type,
            region=region,
            capacity=capacity,
            source=f"static price table ({AS_OF})",
            quality="static",
            as_of=AS_OF,
        )
