"""FOCUS exports of any size, read as they are: streamed by row groups (Parquet) or blocks
(CSV, gzip too) with pyarrow, grouped by any dimension, never the whole file in pandas.

One pass over the export does everything the showback, the chargeback and a model's cost
lookup need: the grouped sums (small: one row per group), the anomalies of the file (kind,
rows, $, examples), the tag-key merges, the biggest resources that lack the chosen key, and a
reconciliation of the grouped dollars against the file's own sums of ``EffectiveCost`` and
``BilledCost`` (summed a second way, as exact decimals of the column itself).

What cannot be read still refuses, with the file and rows: a missing required column, a date
that does not parse, a cost that is not a number. What is readable but suspect (a negative
``Usage`` charge not marked as a correction, a null ``PricingCategory`` on usage, tag text
that is not JSON, two spellings of one tag key with different values) is loaded and listed;
``strict=True`` refuses it instead, as costaware always did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from costaware.costs.focus_checks import CAPACITY, KINDS, Anomaly, _anomalies
from costaware.costs.focus_files import (
    COSTS,
    OPTIONAL,
    REQUIRED,
    SCAN_COLUMNS,
    FileExport,
    _col,
    _exact_sum,
    _numbers,
    _plain,
    _rows_shown,
    _Tags,
    _timestamps,
    export_files,
    rows,
)
from costaware.costs.tags import TagNormalizer
from costaware.errors import ConfigError, CostSourceError
from costaware.store.storage import Loc

__all__ = [
    "CAPACITY",
    "COLUMN_DIMS",
    "COSTS",
    "DERIVED_DIMS",
    "OPTIONAL",
    "REQUIRED",
    "TAG_DIMS",
    "Anomaly",
    "FileExport",
    "ScanResult",
    "export_files",
    "parse_by",
    "rows",
    "scan",
]

# Grouping dimensions that are FOCUS columns; the others are tags or derived from dates.
COLUMN_DIMS = {
    "service": "ServiceName",
    "account": "SubAccountId",
    "region": "RegionId",
    "resource_id": "ResourceId",
    "charge_category": "ChargeCategory",
    "provider": "ProviderName",
}
TAG_DIMS = ("model", "team", "env", "purpose")  # shorthand for tag:model ...
DERIVED_DIMS = ("usage_date", "month", "capacity", "reconciled")
CENT = Decimal("0.005")


def parse_by(by: str | Sequence[str]) -> list[str]:
    """``"team,env"`` / ``["tag:Cost Center"]`` -> checked dimension names."""
    items = [b.strip() for b in (by.split(",") if isinstance(by, str) else by)]
    dims = []
    for b in items:
        if b.startswith("tag:") and b[4:].strip():
            dims.append("tag:" + b[4:].strip())
        elif b in COLUMN_DIMS or b in TAG_DIMS or b in DERIVED_DIMS:
            dims.append(b)
        else:
            raise ConfigError(
                f"group by {b!r}; allowed: tag:KEY, {sorted(COLUMN_DIMS)}, "
                f"{list(TAG_DIMS)}, {list(DERIVED_DIMS)} (several: --by team,env)"
            )
    if not dims or len(set(dims)) != len(dims):
        raise ConfigError(f"group by {by!r}: name each dimension once")
    return dims


@dataclass
class Reconciliation:
    rows_read: int = 0
    rows_in_window: int = 0
    file_effective: Decimal = Decimal(0)  # the whole export, as written
    file_billed: Decimal = Decimal(0)
    window_effective: Decimal = Decimal(0)  # the export's own sum over the window
    window_billed: Decimal = Decimal(0)
    grouped_effective: float = 0.0  # what the grouped table adds up to
    grouped_billed: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            abs(Decimal(repr(self.grouped_effective)) - self.window_effective) < CENT
            and abs(Decimal(repr(self.grouped_billed)) - self.window_billed) < CENT
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: float(v) if isinstance(v, Decimal) else v for k, v in self.__dict__.items()} | {
            "ok": self.ok
        }


@dataclass
class ScanResult:
    dims: list[str]
    frame: Any  # pandas DataFrame: dims..., usd, billed_usd, charges
    anomalies: list[Anomaly]
    reconciliation: Reconciliation
    merges: dict[str, list[str]]
    top_untagged: Any  # pandas DataFrame: resource_id, service, usd
    files: list[str]
    skipped_files: list[str]
    cost_column: str

    def report(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "skipped_files": self.skipped_files,
            "reconciliation": self.reconciliation.as_dict(),
            "anomalies": [a.as_dict() for a in self.anomalies],
            "tag_key_merges": self.merges,
        }


# -- where the files are ------------------------------------------------------------------
def scan(
    path: str | Path | Loc,
    by: str | Sequence[str],
    start: dt.date,
    end: dt.date,
    *,
    cost_column: str = "EffectiveCost",
    aliases: dict[str, str] | None = None,
    tag_keys: dict[str, str] | None = None,
    strict: bool = False,
    cutoff: dt.datetime | None = None,
    top: int = 5,
    conn_id: str | None = None,
) -> ScanResult:
    """One streaming pass: charges starting in [start, end) grouped by ``by``. ``cutoff``:
    a charge that ended by then is final (``reconciled``); default: every charge is."""
    if cost_column not in COSTS:
        raise CostSourceError(f"cost_column {cost_column!r}; allowed: {list(COSTS)}")
    dims = parse_by(by)
    normalizer = TagNormalizer.from_config(aliases)
    mapped = {k: normalizer.canonical(v) for k, v in (tag_keys or {}).items()}
    tag_of = {
        d: mapped.get(d[4:], normalizer.canonical(d[4:]))
        if d.startswith("tag:")
        else mapped.get(d, d)
        for d in dims
        if d.startswith("tag:") or d in TAG_DIMS
    }
    export: Any = path if hasattr(path, "listed") else FileExport(path, conn_id)
    wanted = [*SCAN_COLUMNS, *(COLUMN_DIMS[d] for d in dims if d in COLUMN_DIMS)]
    wanted = list(dict.fromkeys(wanted))
    lo = pa.scalar(dt.datetime.combine(start, dt.time(), dt.UTC), pa.timestamp("us", tz="UTC"))
    hi = pa.scalar(dt.datetime.combine(end, dt.time(), dt.UTC), pa.timestamp("us", tz="UTC"))
    cut = None
    if cutoff is not None:
        aware = cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=dt.UTC)
        cut = pa.scalar(aware, pa.timestamp("us", tz="UTC"))
    tags = _Tags(normalizer)
    found = {k: Anomaly(k, *KINDS[k]) for k in KINDS}
    rec = Reconciliation()
    partial: list[pa.Table] = []
    untagged: list[pa.Table] = []
    grouped_keys = [f"d{i}" for i in range(len(dims))]
    for name, batches in export.parts(wanted):
        for batch, first in batches:
            n = batch.num_rows
            if not n:
                continue
            t0 = _timestamps(name, first, batch, "ChargePeriodStart")
            t1 = _timestamps(name, first, batch, "ChargePeriodEnd")
            backwards = pc.less(t1, t0)
            if pc.any(backwards).as_py():
                raise CostSourceError(
                    f"{name}: ChargePeriodEnd is before ChargePeriodStart: "
                    + _rows_shown(name, first, backwards, _col(batch, "ChargePeriodEnd"))
                )
            eff = _numbers(name, first, batch, "EffectiveCost")
            billed = _numbers(name, first, batch, "BilledCost")
            rec.rows_read += n
            tag_cols, flags = tags.columns(batch.column("Tags"), sorted(set(tag_of.values())))
            _anomalies(found, name, first, batch, eff, billed, flags, strict, cost_column)
            inside = pc.and_(pc.greater_equal(t0, lo), pc.less(t0, hi))
            # The file's own sums, as exact decimals of the column (a second way to add up
            # what the grouped table holds): inside the window, and outside it.
            n_in = pc.sum(inside.cast(pa.int64())).as_py() or 0
            if n_in < n:
                outside = pc.invert(inside)
                rec.file_effective += _exact_sum(batch, "EffectiveCost", outside, eff)
                rec.file_billed += _exact_sum(batch, "BilledCost", outside, billed)
            if not n_in:
                continue
            rec.rows_in_window += n_in
            win_eff = _exact_sum(batch, "EffectiveCost", None if n_in == n else inside, eff)
            win_billed = _exact_sum(batch, "BilledCost", None if n_in == n else inside, billed)
            rec.window_effective += win_eff
            rec.window_billed += win_billed
            rec.file_effective += win_eff
            rec.file_billed += win_billed
            cols: dict[str, pa.Array] = {}
            for key, d in zip(grouped_keys, dims, strict=True):
                cols[key] = _dim(d, batch, tag_cols, tag_of, t0, t1, cut)
            cols["usd"] = eff if cost_column == "EffectiveCost" else billed
            cols["eff"], cols["billed"] = eff, billed
            table = pa.table(cols).filter(inside)
            partial.append(
                table.group_by(grouped_keys, use_threads=False).aggregate(
                    [("usd", "sum"), ("eff", "sum"), ("billed", "sum"), ("usd", "count")]
                )
            )
            value_dims = [
                k for k, d in zip(grouped_keys, dims, strict=True) if d not in DERIVED_DIMS
            ]
            if value_dims:
                missing = pc.is_null(table[value_dims[0]])
                for k in value_dims[1:]:
                    missing = pc.or_(missing, pc.is_null(table[k]))
                res = (
                    pa.table(
                        {
                            "resource_id": batch.column("ResourceId"),
                            "service": _col(batch, "ServiceName"),
                            "usd": cols["usd"],
                        }
                    )
                    .filter(inside)
                    .filter(missing)
                )
                res = res.set_column(0, "resource_id", _plain(res["resource_id"]))
                if res.num_rows:
                    untagged.append(
                        res.group_by(["resource_id", "service"], use_threads=False)
                        .aggregate([("usd", "sum")])
                        .rename_columns(["resource_id", "service", "usd"])
                    )
            if len(partial) > 64:
                partial = [_combine(partial, grouped_keys)]
            if len(untagged) > 64:
                untagged = [_combine_untagged(untagged)]
    frame = _frame(partial, grouped_keys, dims)
    rec.grouped_effective = float(frame["effective_usd"].sum()) if len(frame) else 0.0
    rec.grouped_billed = float(frame["billed_usd"].sum()) if len(frame) else 0.0
    files, skipped = export.listed()
    if not rec.ok:  # a row lost between the file and the table would be a silent bill error
        raise CostSourceError(
            f"FOCUS export {files}: grouped totals do not reconcile with the file's own "
            f"sums: {rec.as_dict()}"
        )
    if untagged:
        top_df = _combine_untagged(untagged).to_pandas()
        top_df = top_df.sort_values("usd", ascending=False).head(top).reset_index(drop=True)
    else:
        import pandas as pd

        top_df = pd.DataFrame(columns=["resource_id", "service", "usd"])
    return ScanResult(
        dims=dims,
        frame=frame,
        anomalies=[a for a in found.values() if a.rows],
        reconciliation=rec,
        merges=normalizer.merges(),
        top_untagged=top_df,
        files=files,
        skipped_files=skipped,
        cost_column=cost_column,
    )


def _dim(
    d: str,
    batch: pa.RecordBatch,
    tag_cols: dict[str, pa.Array],
    tag_of: dict[str, str],
    t0: pa.Array,
    t1: pa.Array,
    cut: pa.Scalar | None,
) -> pa.Array:
    if d in tag_of:
        return tag_cols[tag_of[d]]
    if d in COLUMN_DIMS:
        return _col(batch, COLUMN_DIMS[d])
    if d == "usage_date":
        return t0.cast(pa.date32())
    if d == "month":
        return pc.strftime(t0, format="%Y-%m")
    if d == "capacity":
        pricing = _col(batch, "PricingCategory")
        out = pa.nulls(len(pricing), pa.string())
        for value, cap in CAPACITY.items():
            out = pc.if_else(pc.equal(pricing, value), cap, out)
        return out
    if d == "reconciled":
        if cut is None:
            return pa.array([True] * len(t1), pa.bool_())
        return pc.less_equal(t1, cut)
    raise ConfigError(f"group by {d!r}")  # parse_by let through a name _dim lacks


def _combine(parts: list[pa.Table], keys: list[str]) -> pa.Table:
    t = pa.concat_tables(parts)
    out = t.group_by(keys, use_threads=False).aggregate(
        [("usd_sum", "sum"), ("eff_sum", "sum"), ("billed_sum", "sum"), ("usd_count", "sum")]
    )
    return out.rename_columns([*keys, "usd_sum", "eff_sum", "billed_sum", "usd_count"])


def _combine_untagged(parts: list[pa.Table]) -> pa.Table:
    t = pa.concat_tables(parts)
    out = t.group_by(["resource_id", "service"], use_threads=False).aggregate([("usd", "sum")])
    return out.rename_columns(["resource_id", "service", "usd"])


def _frame(partial: list[pa.Table], keys: list[str], dims: list[str]) -> Any:
    import pandas as pd

    cols = [*dims, "usd", "effective_usd", "billed_usd", "charges"]
    if not partial:
        return pd.DataFrame(columns=cols)
    t = _combine(partial, keys)
    df = t.to_pandas()
    df.columns = cols
    df["charges"] = df["charges"].astype(int)
    for d in dims:
        if d != "usage_date" and d != "reconciled":
            df[d] = df[d].astype(object).where(df[d].notna(), None)
    return df.sort_values(dims, na_position="last", key=_sort_key).reset_index(drop=True)


def _sort_key(s: Any) -> Any:
    return s.astype(str)
