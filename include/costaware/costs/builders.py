"""Builders for the cloud cost and price sources, named in ``costs/__init__.py``.

Each one turns a model config's ``cost_source_options`` / ``price_source_options`` into a
source. Client libraries are imported here, inside the builder, so ``import costaware`` stays
light and a laptop without boto3 or the Google libraries can still use the ledger source.
Unknown options fail loudly: a typo in a budget-relevant option must not be ignored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from costaware.costs.base import CostSource, PriceSource
from costaware.errors import ConfigError
from costaware.store.ledger import Ledger


def _check(kind: str, options: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown {kind} option(s) {unknown}; allowed: {sorted(allowed)}")
    return dict(options)


def _boto3_factory(options: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.Session(profile_name=options.get("profile"))
    # botocore's own retries are off: the sources retry throttling themselves, so every
    # billed request is counted against the per-run cap.
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})

    def make(service: str, region: str) -> Any:
        return session.client(
            service, region_name=region, endpoint_url=options.get("endpoint_url"), config=config
        )

    return make


AWS_COST_OPTIONS = {
    "profile",
    "endpoint_url",
    "metric",
    "tag_keys",
    "max_requests",
    "lag_hours",
    "max_retries",
    "base_delay_s",
    "max_delay_s",
    "cache",
    "cache_ttl_hours",
}


def aws_cost_source(ledger: Ledger, options: dict[str, Any]) -> CostSource:
    from costaware.costs.aws import AwsCostExplorerSource
    from costaware.costs.cache import ResponseCache

    opts = _check("aws cost source", options, AWS_COST_OPTIONS)
    client = _boto3_factory(opts)("ce", "us-east-1")
    for key in ("profile", "endpoint_url"):
        opts.pop(key, None)
    ttl = dt.timedelta(hours=float(opts.pop("cache_ttl_hours", 12)))
    cache = ResponseCache(ledger, ttl=ttl) if opts.pop("cache", True) else None
    return AwsCostExplorerSource(client, cache, **opts)


def aws_price_source(ledger: Ledger, options: dict[str, Any]) -> PriceSource:
    from costaware.costs.aws_prices import AwsPriceSource

    opts = _check(
        "aws price source",
        options,
        {"profile", "endpoint_url", "product_description", "spot_lookback_hours"},
    )
    factory = _boto3_factory(opts)
    for key in ("profile", "endpoint_url"):
        opts.pop(key, None)
    return AwsPriceSource(factory, **opts)


def focus_cost_source(ledger: Ledger, options: dict[str, Any]) -> CostSource:
    from costaware.costs.focus import FocusCostSource

    opts = _check("focus cost source", options, {"path", "cost_column", "tag_keys"})
    if "path" not in opts:
        raise ConfigError("the focus cost source needs cost_source_options.path (file or folder)")
    return FocusCostSource(**opts)


GCP_COST_OPTIONS = {"project", "table", "api_endpoint", "tag_keys", "lag_hours", "location"}


def gcp_cost_source(ledger: Ledger, options: dict[str, Any]) -> CostSource:
    from google.cloud import bigquery

    from costaware.costs.gcp import GcpBillingExportSource

    opts = _check("gcp cost source", options, GCP_COST_OPTIONS)
    if "table" not in opts:
        raise ConfigError(
            "the gcp cost source needs cost_source_options.table, the billing export table "
            "as project.dataset.gcp_billing_export_v1_XXXXXX"
        )
    endpoint = opts.pop("api_endpoint", None)
    client = bigquery.Client(
        project=opts.pop("project", None),
        client_options={"api_endpoint": endpoint} if endpoint else None,
    )
    return GcpBillingExportSource(client, **opts)


def gcp_price_source(ledger: Ledger, options: dict[str, Any]) -> PriceSource:
    from google.cloud import billing_v1

    from costaware.costs.gcp import GcpCatalogPriceSource

    opts = _check("gcp price source", options, {"api_endpoint", "machine_shapes"})
    endpoint = opts.pop("api_endpoint", None)
    client = billing_v1.CloudCatalogClient(
        transport="rest", client_options={"api_endpoint": endpoint} if endpoint else None
    )
    return GcpCatalogPriceSource(client, **opts)
