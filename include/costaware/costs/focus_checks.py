"""What loading a FOCUS export found: each kind of anomaly (outside FOCUS or suspect, which
``strict`` refuses) or note (legal, worth seeing), counted per batch with Arrow masks:
rows, exact dollars and three examples with file and row."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from costaware.costs.focus_files import _col, _exact_sum, _rows_shown
from costaware.costs.tags import BAD_JSON, CONFLICT, MERGED, NO_BRACES
from costaware.errors import CostSourceError

CAPACITY = {"Dynamic": "spot", "Standard": "on_demand", "Committed": "committed", "Other": "other"}
CATEGORIES = frozenset({"Usage", "Purchase", "Tax", "Credit", "Adjustment"})
NEGATIVE_OK = frozenset({"Credit", "Adjustment"})  # FOCUS: only these may be negative


@dataclass
class Anomaly:
    kind: str
    severity: str  # "anomaly": outside FOCUS or suspect (strict refuses); "note": legal, shown
    what: str
    rows: int = 0
    effective_usd: Decimal = Decimal(0)
    billed_usd: Decimal = Decimal(0)
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "what": self.what,
            "rows": self.rows,
            "effective_usd": float(self.effective_usd),
            "billed_usd": float(self.billed_usd),
            "examples": list(self.examples),
        }


# kind -> (severity, what it means); the order is the report's.
KINDS = {
    "negative_usage": (
        "anomaly",
        "negative Usage charge not marked ChargeClass=Correction (an unmarked refund or "
        "correction); kept in the sums",
    ),
    "negative_charge": ("anomaly", "negative Purchase/Tax charge not marked as a correction"),
    "unknown_charge_category": ("anomaly", "ChargeCategory outside FOCUS's values"),
    "null_pricing_category": (
        "anomaly",
        "Usage/Purchase charge with null PricingCategory: capacity unknown",
    ),
    "unknown_pricing_category": ("anomaly", "PricingCategory outside FOCUS's values"),
    "tag_key_conflict": (
        "anomaly",
        "two spellings of one tag key with different values in one charge (the canonical "
        "spelling, else the first sorted, wins)",
    ),
    "tags_not_json": ("anomaly", "Tags is not a JSON object: charge counted as untagged"),
    "usage_correction": ("note", "negative Usage marked ChargeClass=Correction (legal FOCUS)"),
    "committed_pricing": ("note", "PricingCategory=Committed (reservations, savings plans)"),
    "other_pricing": ("note", "PricingCategory=Other"),
    "tag_key_variants": ("note", "tag keys folded (case, spaces) or aliased into one key"),
    "tags_without_braces": ("note", "Tags written without braces (Azure), read as JSON"),
}


def _anomalies(
    found: dict[str, Anomaly],
    name: str,
    first: int,
    batch: pa.RecordBatch,
    eff: pa.Array,
    billed: pa.Array,
    flags: pa.Array,
    strict: bool,
    cost_column: str,
) -> None:
    category = _col(batch, "ChargeCategory")
    klass = _col(batch, "ChargeClass")
    pricing = _col(batch, "PricingCategory")
    negative = pc.or_(pc.less(eff, 0), pc.less(billed, 0))
    correction = pc.fill_null(pc.equal(klass, "Correction"), False)
    usage = pc.fill_null(pc.equal(category, "Usage"), False)
    ok_negative = pc.fill_null(pc.is_in(category, pa.array(sorted(NEGATIVE_OK))), False)
    known_category = pc.fill_null(pc.is_in(category, pa.array(sorted(CATEGORIES))), False)
    usage_or_purchase = pc.fill_null(pc.is_in(category, pa.array(["Usage", "Purchase"])), False)
    masks = {
        "negative_usage": pc.and_(pc.and_(negative, usage), pc.invert(correction)),
        "usage_correction": pc.and_(pc.and_(negative, usage), correction),
        "negative_charge": pc.and_(
            pc.and_(negative, known_category),
            pc.invert(pc.or_(pc.or_(usage, ok_negative), correction)),
        ),
        "unknown_charge_category": pc.invert(known_category),
        "null_pricing_category": pc.and_(
            pc.and_(usage_or_purchase, pc.is_null(pricing)), pc.invert(correction)
        ),
        "unknown_pricing_category": pc.and_(
            pc.is_valid(pricing),
            pc.invert(pc.fill_null(pc.is_in(pricing, pa.array(sorted(CAPACITY))), False)),
        ),
        "committed_pricing": pc.fill_null(pc.equal(pricing, "Committed"), False),
        "other_pricing": pc.fill_null(pc.equal(pricing, "Other"), False),
        "tag_key_variants": pc.not_equal(pc.bit_wise_and(flags, MERGED), 0),
        "tag_key_conflict": pc.not_equal(pc.bit_wise_and(flags, CONFLICT), 0),
        "tags_without_braces": pc.not_equal(pc.bit_wise_and(flags, NO_BRACES), 0),
        "tags_not_json": pc.not_equal(pc.bit_wise_and(flags, BAD_JSON), 0),
    }
    resource = batch.column("ResourceId")
    for kind, mask in masks.items():
        mask = pc.fill_null(mask, False)
        count = pc.sum(mask.cast(pa.int64())).as_py() or 0
        if not count:
            continue
        a = found[kind]
        if strict and a.severity == "anomaly":
            raise CostSourceError(_strict_message(kind, name, first, batch, mask, cost_column))
        a.rows += count
        a.effective_usd += _exact_sum(batch, "EffectiveCost", mask, eff)
        a.billed_usd += _exact_sum(batch, "BilledCost", mask, billed)
        for i in pc.indices_nonzero(mask).to_pylist()[: 3 - len(a.examples)]:
            a.examples.append(
                f"{name} row {first + i}: {category[i].as_py()}"
                f"/{klass[i].as_py() or '-'}/{pricing[i].as_py() or '-'} "
                f"EffectiveCost {eff[i].as_py():.4f} ResourceId {resource[i].as_py()}"
            )


def _strict_message(
    kind: str, name: str, first: int, batch: pa.RecordBatch, mask: pa.Array, cost_column: str
) -> str:
    rows = _rows_shown(name, first, mask, _col(batch, "ChargeCategory"))
    if kind in ("negative_usage", "negative_charge"):
        return (
            f"{name}: negative {cost_column} on a charge that is not a {sorted(NEGATIVE_OK)} "
            f"(ChargeCategory shown): {rows} (strict: load it with strict off to have it "
            "listed as an anomaly instead)"
        )
    if kind == "tags_not_json":
        rows = _rows_shown(name, first, mask, _col(batch, "Tags"))
        return f"{name}: Tags is not JSON: {rows} (strict)"
    return f"{name}: {KINDS[kind][1]} (strict refuses it): {rows}"
