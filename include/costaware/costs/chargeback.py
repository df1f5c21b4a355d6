"""Monthly chargeback per team, written as FOCUS: what each team is charged for a month, in
the columns every FinOps tool already reads (checked with the FinOps Foundation's
focus-validator in the tests).

One row per team and per set of charge attributes that FOCUS does not let a sum mix: billing
account and period, sub-account, invoice, provider / publisher / issuer, service, region, SKU
price, charge category / class / frequency, pricing category and units. Costs and quantities
are summed; unit prices are kept (one SKU price per row, so they stay true); the charge
period becomes the span of the month the rows cover; the resource columns are null (the row
is a team's roll-up of many resources). ``Tags`` holds the team (``{"team": ...}``);
charges without the team tag are kept under ``{}`` and described as unallocated — never
spread over the teams. Every dollar of the month's export is in exactly one row: the
EffectiveCost and BilledCost totals equal the export's for the month.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from costaware.errors import ConfigError
from costaware.store import storage
from costaware.store.storage import Loc

SUMMED = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity",
          "PricingQuantity")  # fmt: skip
# Attributes a row keeps as they are (grouped by): FOCUS columns that cannot be summed.
KEPT = (
    "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart",
    "BillingPeriodEnd", "ChargeCategory", "ChargeClass", "ChargeFrequency", "InvoiceId",
    "InvoiceIssuerName", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "RegionId", "RegionName", "SkuId", "SkuPriceId", "ListUnitPrice",
    "ContractedUnitPrice", "PricingCategory", "PricingUnit", "ConsumedUnit", "SubAccountId",
    "SubAccountName", "CommitmentDiscountId", "CommitmentDiscountType",
)  # fmt: skip
RESOURCE = ("ResourceId", "ResourceName", "ResourceType")
MISSING = "\x00"  # a null group key (pandas drops NaN groups otherwise)


def month_window(month: dt.date) -> tuple[dt.date, dt.date]:
    first = month.replace(day=1)
    return first, (first + dt.timedelta(days=32)).replace(day=1)


def chargeback(source: Any, month: dt.date, team_key: str = "team") -> pd.DataFrame:
    """The month's chargeback rows (FOCUS columns) from a FOCUS cost source."""
    if not hasattr(source, "charges_all_columns"):
        raise ConfigError("chargeback reads a FOCUS export: use the focus cost source")
    start, end = month_window(month)
    df = source.charges_all_columns(start, end)
    if df.empty:
        raise ConfigError(f"no charge in {getattr(source, 'path', source)} in {month:%Y-%m}")
    key = team_key.strip().casefold()
    df["_team"] = [t.get(key) for t in df["Tags"]]
    kept = [c for c in KEPT if c in df.columns]
    for c in SUMMED:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c])
    groups = df.assign(**{c: df[c].astype(object).where(df[c].notna(), MISSING) for c in kept})
    groups["_team"] = groups["_team"].where(groups["_team"].notna(), MISSING)
    agg: dict[str, Any] = {c: "sum" for c in SUMMED if c in df.columns}
    agg |= {"ChargePeriodStart": "min", "ChargePeriodEnd": "max"}
    out = groups.groupby(["_team", *kept], sort=True, dropna=False).agg(agg).reset_index()
    out = out.replace({MISSING: None})
    # A quantity summed over rows where it was null everywhere stays null, not 0.
    for c in ("ConsumedQuantity", "PricingQuantity"):
        if c in df.columns:
            had = groups.groupby(["_team", *kept], sort=True, dropna=False)[c].count()
            out.loc[had.to_numpy() == 0, c] = None
    for c in RESOURCE:
        out[c] = None
    team = out["_team"]
    out["Tags"] = [json.dumps({key: t}) if t else "{}" for t in team]
    out["ChargeDescription"] = [
        f"chargeback {month:%Y-%m} to {key}={t}"
        if t
        else f"{month:%Y-%m} unallocated (no {key} tag)"
        for t in team
    ]
    out = out.drop(columns="_team")
    for c in ("ChargePeriodStart", "ChargePeriodEnd"):
        out[c] = pd.to_datetime(out[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def write_chargeback(table: pd.DataFrame, out_dir: str | Loc, month: dt.date) -> str:
    """``chargeback_<YYYY-MM>.csv`` (FOCUS columns, nulls empty) in a folder or a prefix."""
    out = storage.ensure_dir(storage.location(out_dir) if isinstance(out_dir, str) else out_dir)
    path = out / f"chargeback_{month:%Y-%m}.csv"
    storage.write_text(path, table.to_csv(index=False, float_format="%.10g"))
    return storage.text(path)
