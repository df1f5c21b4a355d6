"""The ``gcp`` sources: cost per label from the Cloud Billing export in BigQuery, and prices
from the Cloud Billing catalog.

Costs: one parameterised query over the standard or detailed export table. ``labels`` is an
``ARRAY<STRUCT<key, value>>`` so tags are matched with ``EXISTS (… UNNEST(labels) …)``; net
cost is ``cost`` plus the (negative) ``credits.amount``; spot means a "Spot"/"Preemptible" SKU.
As for AWS, days within ``lag_hours`` are unreconciled, $0 days yield no record, and a label
set that matches nothing at all is an error, not a free model.

Prices: ``CloudCatalogClient.list_skus`` for Compute Engine; a machine type's hourly price is
vCPUs × core SKU + GiB × RAM SKU (+ GPUs × GPU SKU), on-demand or Spot, where a unit price is
``units + nanos / 1e9``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from costaware.costs.base import Capacity, CostRecord, Price
from costaware.errors import CostSourceError

NO_DATA_HINT = "no data for this tag (is it activated as a cost-allocation tag?)"
TABLE_RE = re.compile(r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")


def billing_sql(table: str, n_tags: int) -> str:
    """The query; values travel as parameters, only the checked table name is inlined."""
    label_filters = "".join(
        f"\n  AND EXISTS (SELECT 1 FROM UNNEST(labels) AS l WHERE l.key = @k{i} "
        f"AND l.value = @v{i})"
        for i in range(n_tags)
    )
    return f"""SELECT
  DATE(usage_start_time) AS usage_date,
  (SELECT l.value FROM UNNEST(labels) AS l WHERE l.key = @purpose_key LIMIT 1) AS purpose,
  CASE
    WHEN REGEXP_CONTAINS(sku.description, r'(?i)\\b(spot|preemptible)\\b') THEN 'spot'
    WHEN service.description = 'Compute Engine' THEN 'on_demand'
  END AS capacity,
  SUM(cost) + SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS net_cost
FROM `{table}`
WHERE usage_start_time >= @start AND usage_start_time < @end{label_filters}
GROUP BY usage_date, purpose, capacity
ORDER BY usage_date"""


class GcpBillingExportSource:
    name = "gcp"

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        tag_keys: dict[str, str] | None = None,
        lag_hours: float = 48.0,
        location: str | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.tag_keys = dict(tag_keys or {})
        self.lag_hours = lag_hours
        self.location = location
        self.clock = clock

    def _now(self) -> dt.datetime:
        now = self.clock() if self.clock else dt.datetime.now(dt.UTC)
        return now.replace(tzinfo=None) if now.tzinfo else now

    def costs(
        self, tags: dict[str, str], start: dt.date, end: dt.date, purpose: str = "retrain"
    ) -> list[CostRecord]:
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        if not TABLE_RE.match(self.table):
            raise CostSourceError(
                f"billing export table {self.table!r}; allowed: project.dataset.table"
            )
        labels = sorted((self.tag_keys.get(k, k), v) for k, v in tags.items() if k != "purpose")
        params: list[Any] = [
            bigquery.ScalarQueryParameter(
                "purpose_key", "STRING", self.tag_keys.get("purpose", "purpose")
            ),
            bigquery.ScalarQueryParameter(
                "start", "TIMESTAMP", dt.datetime.combine(start, dt.time(), dt.UTC)
            ),
            bigquery.ScalarQueryParameter(
                "end", "TIMESTAMP", dt.datetime.combine(end, dt.time(), dt.UTC)
            ),
        ]
        for i, (k, v) in enumerate(labels):
            params += [
                bigquery.ScalarQueryParameter(f"k{i}", "STRING", k),
                bigquery.ScalarQueryParameter(f"v{i}", "STRING", v),
            ]
        sql = billing_sql(self.table, len(labels))
        try:
            rows = list(
                self.client.query_and_wait(
                    sql,
                    job_config=bigquery.QueryJobConfig(query_parameters=params),
                    location=self.location,
                )
            )
        except gexc.GoogleAPIError as exc:
            raise CostSourceError(f"BigQuery billing export query failed: {exc}") from exc
        if not rows:
            shown = ", ".join(f"{k}={v}" for k, v in labels)
            raise CostSourceError(
                f"the billing export {self.table} has no cost labelled {shown or '(none)'} "
                f"between {start} and {end}: {NO_DATA_HINT}"
            )
        cutoff = self._now() - dt.timedelta(hours=self.lag_hours)
        days: dict[dt.date, tuple[float, set[str]]] = {}
        for r in rows:
            if r["purpose"] != purpose:
                continue
            usd, caps = days.get(r["usage_date"], (0.0, set()))
            if r["capacity"]:
                caps.add(r["capacity"])
            days[r["usage_date"]] = (usd + float(r["net_cost"]), caps)
        records = []
        for day in sorted(days):
            usd, caps = days[day]
            if abs(usd) < 1e-9:
                continue  # a $0 day is no evidence of a free run
            records.append(
                CostRecord(
                    usage_date=day,
                    usd=usd,
                    source="gcp billing export (cost + credits)",
                    reconciled=dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) <= cutoff,
                    purpose=purpose,
                    capacity=next(iter(caps)) if len(caps) == 1 else "mixed" if caps else None,
                    tags={**tags, "purpose": purpose},
                )
            )
        return records


# -- prices -----------------------------------------------------------------------------
COMPUTE_ENGINE = "services/6F81-5844-456A"
# machine type -> (vCPUs, memory GiB, GPU model or None, GPUs)
MACHINE_SHAPES: dict[str, tuple[float, float, str | None, int]] = {
    "n2-standard-4": (4, 16, None, 0),
    "n2-standard-8": (8, 32, None, 0),
    "n2-standard-16": (16, 64, None, 0),
    "e2-standard-4": (4, 16, None, 0),
    "e2-standard-8": (8, 32, None, 0),
    "n1-standard-8": (8, 30, None, 0),
    "a2-highgpu-1g": (12, 85, "A100", 1),
    "g2-standard-4": (4, 16, "L4", 1),
}


def unit_price(money: Any) -> float:
    """A google.type.Money as a float: ``units`` whole dollars plus ``nanos`` 1e-9 dollars."""
    return float(money.units) + money.nanos / 1e9


class GcpCatalogPriceSource:
    name = "gcp"

    def __init__(self, client: Any, machine_shapes: dict[str, Any] | None = None) -> None:
        self.client = client
        self.machine_shapes = {
            **MACHINE_SHAPES,
            **{k: tuple(v) for k, v in (machine_shapes or {}).items()},
        }

    def price(self, instance_type: str, region: str, capacity: Capacity) -> Price:
        try:
            vcpus, mem, gpu, n_gpu = self.machine_shapes[instance_type]
        except KeyError:
            raise CostSourceError(
                f"no machine shape for {instance_type!r}; known: {sorted(self.machine_shapes)}"
                " (add it under price_source_options.machine_shapes)"
            ) from None
        family = instance_type.split("-")[0].upper()
        spot = capacity == "spot"
        wanted = {
            "core": rf"\b{family} (Predefined )?Instance Core\b",
            "ram": rf"\b{family} (Predefined )?Instance Ram\b",
        }
        if gpu:
            wanted["gpu"] = rf"^Nvidia (Tesla )?{gpu} GPU\b"
        import requests
        from google.api_core import exceptions as gexc

        found: dict[str, tuple[float, str]] = {}
        try:
            skus = list(self.client.list_skus(parent=COMPUTE_ENGINE))
        except (gexc.GoogleAPIError, requests.RequestException, OSError) as exc:
            raise CostSourceError(
                f"Cloud Billing catalog for {instance_type!r} in {region}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for sku in skus:
            cat = sku.category
            if cat.resource_family != "Compute" or region not in sku.service_regions:
                continue
            if cat.usage_type != ("Preemptible" if spot else "OnDemand"):
                continue
            desc = sku.description
            if re.search(r"(?i)custom|sole tenancy|commitment|extended", desc):
                continue
            for part, pattern in wanted.items():
                if part not in found and re.search(pattern, desc):
                    rates = sku.pricing_info[0].pricing_expression.tiered_rates
                    found[part] = (unit_price(rates[-1].unit_price), sku.sku_id)
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise CostSourceError(
                f"the Cloud Billing catalog has no {'Spot' if spot else 'on-demand'} "
                f"{family} {missing} SKU in {region} for {instance_type!r}"
            )
        usd = vcpus * found["core"][0] + mem * found["ram"][0]
        if gpu:
            usd += n_gpu * found["gpu"][0]
        return Price(
            usd_per_hour=usd,
            instance_type=instance_type,
            region=region,
            capacity=capacity,
            source=f"gcp catalog ({', '.join(s for _, s in found.values())})",
            quality="estimated",
            as_of=dt.date.today().isoformat(),
        )
