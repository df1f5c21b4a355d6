"""The ``focus`` cost source: FinOps FOCUS 1.x CostAndUsage exports (CSV or Parquet) from any
cloud. Tags come from the ``Tags`` JSON column; ``PricingCategory`` ``Dynamic`` is spot.

A file is checked before a single dollar is read from it, and a broken one fails with the
file, the rows and what is allowed: a missing column, an unparseable date or a negative usage
charge would otherwise turn into a wrong (often $0) cost without anyone noticing. Literal
``NULL`` strings, as some exporters write them, are nulls.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from costaware.costs.base import CostRecord
from costaware.errors import CostSourceError

REQUIRED = (
    "BilledCost",
    "EffectiveCost",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "PricingCategory",
    "ServiceName",
    "ResourceId",
    "Tags",
)
COSTS = ("BilledCost", "EffectiveCost")
# FOCUS lets only credits and adjustments (refunds, corrections) carry negative amounts.
NEGATIVE_OK = frozenset({"Credit", "Adjustment"})
CAPACITY = {"Dynamic": "spot", "Standard": "on_demand"}
NO_DATA_HINT = "no data for this tag (is it activated as a cost-allocation tag?)"


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(
            p
            for p in path.iterdir()
            if p.name.endswith((".csv", ".csv.gz", ".parquet")) and not p.name.startswith(".")
        )
        if found:
            return found
    raise CostSourceError(
        f"no FOCUS export at {path} (expected a .csv, .csv.gz or .parquet "
        "file, or a folder of them)"
    )


def _bad(file: Path, what: str, rows: pd.Series) -> CostSourceError:
    shown = ", ".join(f"row {i + 2}: {v!r}" for i, v in rows.head(5).items())
    more = f" (+{len(rows) - 5} more)" if len(rows) > 5 else ""
    return CostSourceError(f"{file}: {what}: {shown}{more}")


def read_focus(file: Path) -> pd.DataFrame:
    """One export as a checked DataFrame: UTC timestamps, float costs, dict tags."""
    if file.name.endswith(".parquet"):
        df = pd.read_parquet(file)
    else:
        df = pd.read_csv(file, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise CostSourceError(
            f"{file}: missing required FOCUS column(s) {missing}; a FOCUS 1.x CostAndUsage "
            f"export has at least {list(REQUIRED)}"
        )
    df = df.astype({c: object for c in df.columns}).where(df.notna(), None)
    df = df.replace({"NULL": None, "": None})
    for col in ("ChargePeriodStart", "ChargePeriodEnd"):
        parsed = pd.to_datetime(df[col], utc=True, errors="coerce", format="mixed")
        bad = df[col][parsed.isna()]
        if len(bad):
            raise _bad(file, f"{col} must be an ISO 8601 date-time, got", bad)
        df[col] = parsed
    order = df[df["ChargePeriodEnd"] < df["ChargePeriodStart"]]
    if len(order):
        raise _bad(file, "ChargePeriodEnd is before ChargePeriodStart", order["ChargePeriodEnd"])
    for col in COSTS:
        parsed = pd.to_numeric(df[col], errors="coerce")
        bad = df[col][parsed.isna()]
        if len(bad):
            raise _bad(file, f"{col} must be a number (nulls not allowed), got", bad)
        df[col] = parsed.astype(float)
        negative = df[(df[col] < 0) & ~df["ChargeCategory"].isin(NEGATIVE_OK)]
        if len(negative):
            raise _bad(
                file,
                f"negative {col} on a charge that is not a {sorted(NEGATIVE_OK)} "
                "(ChargeCategory shown)",
                negative["ChargeCategory"],
            )
    df["Tags"] = [_tags(file, i, v) for i, v in df["Tags"].items()]
    return df


def _tags(file: Path, i: Any, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    try:
        tags = json.loads(raw)
    except (TypeError, ValueError):
        raise CostSourceError(f"{file}: row {i + 2}: Tags is not JSON: {raw!r}") from None
    if not isinstance(tags, dict):
        raise CostSourceError(f"{file}: row {i + 2}: Tags must be a JSON object, got {raw!r}")
    return {str(k): str(v) for k, v in tags.items()}


class FocusCostSource:
    name = "focus"

    def __init__(
        self,
        path: str | Path,
        cost_column: str = "EffectiveCost",
        tag_keys: dict[str, str] | None = None,
        lag_hours: float = 48.0,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if cost_column not in COSTS:
            raise CostSourceError(f"cost_column {cost_column!r}; allowed: {list(COSTS)}")
        self.path = Path(path)
        self.cost_column = cost_column
        self.tag_keys = dict(tag_keys or {})
        self.lag_hours = lag_hours
        self.clock = clock

    def _now(self) -> pd.Timestamp:
        now = self.clock() if self.clock else dt.datetime.now(dt.UTC)
        ts = pd.Timestamp(now)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts

    def charges(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Every charge starting in [start, end), all files, with tags as a dict column."""
        frames = [read_focus(f) for f in _files(self.path)]
        df = pd.concat(frames, ignore_index=True)
        lo = pd.Timestamp(start).tz_localize("UTC")
        hi = pd.Timestamp(end).tz_localize("UTC")
        df = df[(df["ChargePeriodStart"] >= lo) & (df["ChargePeriodStart"] < hi)].copy()
        # A charge is final once its period ended more than the billing lag ago.
        cutoff = self._now() - pd.Timedelta(hours=self.lag_hours)
        df["reconciled"] = df["ChargePeriodEnd"] <= cutoff
        df["usd"] = df[self.cost_column]
        df["capacity"] = df["PricingCategory"].map(lambda c: CAPACITY.get(c) if c else None)
        df["usage_date"] = df["ChargePeriodStart"].dt.date
        return df

    def costs(
        self, tags: dict[str, str], start: dt.date, end: dt.date, purpose: str = "retrain"
    ) -> list[CostRecord]:
        df = self.charges(start, end)
        want = {self.tag_keys.get(k, k): v for k, v in tags.items()}
        purpose_key = self.tag_keys.get("purpose", "purpose")
        match = df[[all(t.get(k) == v for k, v in want.items()) for t in df["Tags"]]]
        if match.empty:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(want.items()))
            raise CostSourceError(
                f"no charge in {self.path} tagged {shown or '(none)'} between {start} and "
                f"{end}: {NO_DATA_HINT}"
            )
        match = match[[t.get(purpose_key) == purpose for t in match["Tags"]]]
        records = []
        for day, g in match.groupby("usage_date", sort=True):
            usd = float(g["usd"].sum())
            if abs(usd) < 1e-9:
                continue  # never a $0 record: no charge that day is not a free run
            caps = {c for c in g["capacity"] if c}
            records.append(
                CostRecord(
                    usage_date=day,  # type: ignore[arg-type]
                    usd=usd,
                    source=f"focus ({self.cost_column})",
                    reconciled=bool(g["reconciled"].all()),
                    purpose=purpose,
                    capacity=next(iter(caps)) if len(caps) == 1 else "mixed" if caps else None,
                    tags={**tags, "purpose": purpose},
                )
            )
        return records
