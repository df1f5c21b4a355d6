"""Cost and price sources: a name → builder mapping, so a model's YAML picks one by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from costaware.costs.base import CostEstimate, CostRecord, CostSource, Price, PriceSource
from costaware.errors import UnknownBackendError
from costaware.store.ledger import Ledger


def _ledger_source(ledger: Ledger, options: dict[str, Any]) -> CostSource:
    from costaware.costs.ledger_source import LedgerCostSource

    return LedgerCostSource(ledger)


def _static_prices(ledger: Ledger, options: dict[str, Any]) -> PriceSource:
    from costaware.costs.prices import StaticPriceSource

    return StaticPriceSource(options.get("table"))


def _cloud(builder: str) -> Callable[[Ledger, dict[str, Any]], Any]:
    # costs/builders.py imports boto3 / google-cloud-* inside each builder, on first use.
    from costaware.costs import builders

    return getattr(builders, builder)  # type: ignore[no-any-return]


# Builders take the ledger (for caching and history) and the config's options. Cloud sources
# import their client libraries inside the builder so the core stays light.
COST_SOURCES: dict[str, Callable[[Ledger, dict[str, Any]], CostSource]] = {
    "ledger": _ledger_source,
    "aws": lambda ledger, options: _cloud("aws_cost_source")(ledger, options),
    "focus": lambda ledger, options: _cloud("focus_cost_source")(ledger, options),
    "gcp": lambda ledger, options: _cloud("gcp_cost_source")(ledger, options),
}
PRICE_SOURCES: dict[str, Callable[[Ledger, dict[str, Any]], PriceSource]] = {
    "static": _static_prices,
    "aws": lambda ledger, options: _cloud("aws_price_source")(ledger, options),
    "gcp": lambda ledger, options: _cloud("gcp_price_source")(ledger, options),
}


def _build(
    kind: str,
    registry: dict[str, Callable[[Ledger, dict[str, Any]], Any]],
    name: str,
    ledger: Ledger,
    options: dict[str, Any] | None,
) -> Any:
    try:
        builder = registry[name]
    except KeyError:
        raise UnknownBackendError(kind, name, registry) from None
    return builder(ledger, options or {})


def make_cost_source(
    name: str, ledger: Ledger, options: dict[str, Any] | None = None
) -> CostSource:
    return _build("cost source", COST_SOURCES, name, ledger, options)  # type: ignore[no-any-return]


def make_price_source(
    name: str, ledger: Ledger, options: dict[str, Any] | None = None
) -> PriceSource:
    return _build("price source", PRICE_SOURCES, name, ledger, options)  # type: ignore[no-any-return]


__all__ = [
    "COST_SOURCES",
    "PRICE_SOURCES",
    "CostEstimate",
    "CostRecord",
    "CostSource",
    "Price",
    "PriceSource",
    "make_cost_source",
    "make_price_source",
]
