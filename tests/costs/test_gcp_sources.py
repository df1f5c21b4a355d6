"""The gcp sources with the real google-cloud-bigquery and google-cloud-billing clients, over
HTTP to the local fake (tests/costs/costs_fakes.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from costs_helpers import NOW
from google.auth.credentials import AnonymousCredentials

from costaware.costs.gcp import NO_DATA_HINT, GcpBillingExportSource, GcpCatalogPriceSource
from costaware.errors import CostSourceError

TABLE = "acme-billing.billing.gcp_billing_export_v1_0A1B2C_3D4E5F_6A7B8C"
LABELS = {"model": "churn", "team": "growth", "env": "prod"}


def _item(
    day: int,
    hour: int,
    sku: str,
    cost: float,
    purpose: str | None,
    credits: tuple[float, ...] = (),
    labels: dict[str, str] | None = None,
    service: str = "Compute Engine",
    month: int = 11,
) -> dict[str, Any]:
    labels = dict(LABELS if labels is None else labels)
    if purpose:
        labels["purpose"] = purpose
    return {
        "usage_start_time": dt.datetime(2026, month, day, hour, tzinfo=dt.UTC),
        "service": service,
        "sku": sku,
        "cost": cost,
        "credits": list(credits),
        "labels": [{"key": k, "value": v} for k, v in labels.items()],
    }


CORE = "N2 Instance Core running in Americas"
SPOT_CORE = "Spot Preemptible N2 Instance Core running in Americas"
EXPORT = [
    # An October retrain on spot, with a sustained-use credit on the on-demand part.
    _item(12, 2, SPOT_CORE, 0.30, "retrain", month=10),
    _item(12, 3, CORE, 0.50, "retrain", credits=(-0.10,), month=10),
    _item(2, 2, SPOT_CORE, 0.42, "retrain"),
    _item(2, 2, "Spot Preemptible N2 Instance Ram running in Americas", 0.18, "retrain"),
    _item(2, 0, CORE, 2.40, "serve"),
    _item(9, 1, SPOT_CORE, 0.35, "retrain"),
    _item(19, 1, SPOT_CORE, 0.33, "retrain"),  # within 48 h of NOW
    _item(9, 1, "Standard Storage US Multi-region", 0.05, None, service="Cloud Storage"),
    _item(
        9, 1, SPOT_CORE, 9.99, "retrain", labels={"model": "other", "team": "growth", "env": "prod"}
    ),
]


def fake_bigquery(sql: str, params: dict[str, Any]) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """What BigQuery would answer for our query over EXPORT (its semantics, in Python)."""

    def ts(v: str) -> dt.datetime:
        return dt.datetime.fromisoformat(v.replace(" ", "T").replace("Z", "+00:00"))

    start, end = ts(params["start"]), ts(params["end"])
    want = {params[f"k{i}"]: params[f"v{i}"] for i in range(10) if f"k{i}" in params}
    groups: dict[tuple[Any, ...], float] = {}
    for it in EXPORT:
        labels = {lab["key"]: lab["value"] for lab in it["labels"]}
        if not (start <= it["usage_start_time"] < end):
            continue
        if any(labels.get(k) != v for k, v in want.items()):
            continue
        desc = it["sku"].lower()
        cap = (
            "spot"
            if "spot" in desc or "preemptible" in desc
            else "on_demand"
            if it["service"] == "Compute Engine"
            else None
        )
        key = (it["usage_start_time"].date().isoformat(), labels.get(params["purpose_key"]), cap)
        groups[key] = groups.get(key, 0.0) + it["cost"] + sum(it["credits"])
    fields = [
        {"name": "usage_date", "type": "DATE"},
        {"name": "purpose", "type": "STRING"},
        {"name": "capacity", "type": "STRING"},
        {"name": "net_cost", "type": "FLOAT"},
    ]
    return fields, [[*k, v] for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))]


def bq_client(url: str) -> Any:
    from google.cloud import bigquery

    return bigquery.Client(
        project="acme-ml", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )


def make_cost_source(gcloud: Any, **kw: Any) -> GcpBillingExportSource:
    gcloud.bq_answer = fake_bigquery
    return GcpBillingExportSource(bq_client(gcloud.url), TABLE, clock=lambda: NOW, **kw)


def test_costs_by_label_net_of_credits(gcloud: Any) -> None:
    src = make_cost_source(gcloud)
    recs = src.costs(LABELS, dt.date(2026, 10, 1), dt.date(2026, 11, 21))
    assert [
        (r.usage_date.isoformat(), round(r.usd, 6), r.capacity, r.reconciled) for r in recs
    ] == [
        ("2026-10-12", 0.70, "mixed", True),  # 0.30 spot + 0.50 on-demand - 0.10 credit
        ("2026-11-02", 0.60, "spot", True),
        ("2026-11-09", 0.35, "spot", True),
        ("2026-11-19", 0.33, "spot", False),
    ]
    query = [r for r in gcloud.requests if r["path"].endswith("/queries")][0]
    assert query["path"] == "/bigquery/v2/projects/acme-ml/queries"
    sql = query["body"]["query"]
    assert f"FROM `{TABLE}`" in sql
    assert "EXISTS (SELECT 1 FROM UNNEST(labels) AS l WHERE l.key = @k0 AND l.value = @v0)" in sql
    assert "SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0))" in sql
    assert "'churn'" not in sql  # values travel as parameters, never inlined
    params = {p["name"]: p["parameterValue"]["value"] for p in query["body"]["queryParameters"]}
    assert params["k0"] == "env" and params["v1"] == "churn" and params["v2"] == "growth"
    assert params["start"].startswith("2026-10-01") and params["end"].startswith("2026-11-21")
    # More rows than one page: the client fetched the rest with getQueryResults.
    assert any("/queries/job_" in r["path"] for r in gcloud.requests)


def test_serving_costs_and_no_history(gcloud: Any) -> None:
    src = make_cost_source(gcloud)
    serve = src.costs(LABELS, dt.date(2026, 11, 1), dt.date(2026, 11, 21), purpose="serve")
    assert [(r.usage_date.day, r.usd) for r in serve] == [(2, 2.40)]
    assert src.costs(LABELS, dt.date(2026, 11, 1), dt.date(2026, 11, 21), purpose="eval") == []


def test_unknown_label_is_no_data_not_free(gcloud: Any) -> None:
    src = make_cost_source(gcloud)
    with pytest.raises(CostSourceError, match="model=nosuch") as err:
        src.costs({**LABELS, "model": "nosuch"}, dt.date(2026, 10, 1), dt.date(2026, 11, 21))
    assert NO_DATA_HINT in str(err.value)


def test_query_error_and_bad_table(gcloud: Any) -> None:
    src = make_cost_source(gcloud)
    gcloud.fail["bq_query"] = 400
    with pytest.raises(CostSourceError, match="BigQuery billing export query failed"):
        src.costs(LABELS, dt.date(2026, 10, 1), dt.date(2026, 11, 21))
    bad = GcpBillingExportSource(bq_client(gcloud.url), "x`; DROP TABLE y; --")
    with pytest.raises(CostSourceError, match="allowed: project.dataset.table"):
        bad.costs(LABELS, dt.date(2026, 10, 1), dt.date(2026, 11, 21))


# -- catalog prices ---------------------------------------------------------------------
def _sku(
    sku_id: str,
    desc: str,
    usage: str,
    units: str,
    nanos: int,
    unit: str = "h",
    group: str = "N2Standard",
    regions: tuple[str, ...] = ("us-central1",),
) -> dict[str, Any]:
    return {
        "name": f"services/6F81-5844-456A/skus/{sku_id}",
        "skuId": sku_id,
        "description": desc,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": "Compute",
            "resourceGroup": group,
            "usageType": usage,
        },
        "serviceRegions": list(regions),
        "pricingInfo": [
            {
                "effectiveTime": "2026-11-20T08:00:00Z",
                "pricingExpression": {
                    "usageUnit": unit,
                    "usageUnitDescription": "hour",
                    "baseUnit": "s",
                    "baseUnitConversionFactor": 3600,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {"currencyCode": "USD", "units": units, "nanos": nanos},
                        }
                    ],
                },
                "currencyConversionRate": 1,
            }
        ],
        "serviceProviderName": "Google",
    }


CATALOG = [
    _sku("C1", "N2 Instance Core running in Americas", "OnDemand", "0", 31611000),
    _sku("R1", "N2 Instance Ram running in Americas", "OnDemand", "0", 4237000, "GiBy.h"),
    _sku(
        "C1E",
        "N2 Instance Core running in Frankfurt",
        "OnDemand",
        "0",
        38000000,
        regions=("europe-west3",),
    ),
    _sku(
        "S1", "Spot Preemptible N2 Instance Core running in Americas", "Preemptible", "0", 7650000
    ),
    _sku(
        "S2",
        "Spot Preemptible N2 Instance Ram running in Americas",
        "Preemptible",
        "0",
        1025000,
        "GiBy.h",
    ),
    _sku("CC", "N2 Custom Instance Core running in Americas", "OnDemand", "0", 33000000),
    _sku("A1", "A2 Instance Core running in Americas", "Preemptible", "0", 9540000, group="CPU"),
    _sku(
        "A2",
        "A2 Instance Ram running in Americas",
        "Preemptible",
        "0",
        1280000,
        "GiBy.h",
        group="RAM",
    ),
    _sku(
        "G1",
        "Nvidia Tesla A100 GPU attached to Spot Preemptible VMs running in Americas",
        "Preemptible",
        "1",
        101000000,
        group="GPU",
    ),
]


def catalog_client(url: str) -> Any:
    from google.cloud import billing_v1

    return billing_v1.CloudCatalogClient(
        transport="rest",
        client_options={"api_endpoint": url},
        credentials=AnonymousCredentials(),
    )


def test_catalog_prices_on_demand_spot_and_gpu(gcloud: Any) -> None:
    gcloud.skus["6F81-5844-456A"] = CATALOG
    src = GcpCatalogPriceSource(catalog_client(gcloud.url))
    od = src.price("n2-standard-4", "us-central1", "on_demand")
    assert od.usd_per_hour == pytest.approx(4 * 0.031611 + 16 * 0.004237)  # $0.194/h list
    assert od.quality == "estimated" and "C1" in od.source and "R1" in od.source
    spot = src.price("n2-standard-4", "us-central1", "spot")
    assert spot.usd_per_hour == pytest.approx(4 * 0.00765 + 16 * 0.001025)
    gpu = src.price("a2-highgpu-1g", "us-central1", "spot")
    assert gpu.usd_per_hour == pytest.approx(12 * 0.00954 + 85 * 0.00128 + 1.101)
    sku_calls = [r for r in gcloud.requests if r["path"] == "/v1/services/6F81-5844-456A/skus"]
    assert len(sku_calls) >= 5 and any(r["query"].get("pageToken") for r in sku_calls)


def test_catalog_missing_sku_or_shape_is_an_error(gcloud: Any) -> None:
    gcloud.skus["6F81-5844-456A"] = CATALOG
    src = GcpCatalogPriceSource(catalog_client(gcloud.url))
    with pytest.raises(CostSourceError, match=r"no on-demand N2 \['core', 'ram'\] SKU in asia"):
        src.price("n2-standard-4", "asia-east1", "on_demand")
    with pytest.raises(CostSourceError, match="no machine shape for 'z9-mega'"):
        src.price("z9-mega", "us-central1", "spot")
