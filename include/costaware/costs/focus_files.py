"""Where a FOCUS export's files are, and reading them as Arrow record batches: a file, a
folder, AWS Data Exports' and Azure's export layouts, local or on object storage (through
the storage layer); CSV (gzip too) by blocks and Parquet by row groups, with the checks that
refuse what cannot be read (a missing column, a date or a cost that does not parse) naming
the file and rows. Also the ``Tags`` column's reader, which parses each distinct value once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from costaware.costs.tags import CONFLICT, MERGED, TagNormalizer
from costaware.errors import CostSourceError
from costaware.store import storage
from costaware.store.storage import Loc

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
OPTIONAL = ("ChargeClass", "SubAccountId", "RegionId", "ProviderName", "BillingAccountId")
COSTS = ("BilledCost", "EffectiveCost")
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".snappy.parquet", ".gz.parquet")
AZURE_PERIOD = re.compile(r"^\d{8}-\d{8}$")  # <export>/<YYYYMMDD-YYYYMMDD>/<run id>/part_*.csv.gz
BATCH_ROWS = 1 << 19


def _is_data(name: str) -> bool:
    return name.endswith(DATA_SUFFIXES) and not name.startswith((".", "_"))


def _walk(loc: Loc, depth: int = 0) -> Iterator[Loc]:
    if depth > 6:
        return
    for p in sorted(loc.iterdir(), key=lambda q: q.name):
        if p.name.startswith((".", "_")):
            continue
        if p.is_dir():
            yield from _walk(p, depth + 1)
        elif _is_data(p.name):
            yield p


def export_files(path: str | Path | Loc, conn_id: str | None = None) -> tuple[list[Loc], list[Loc]]:
    """The data files of an export: a file; a folder of them; AWS Data Exports' layout
    (``<export>/data/BILLING_PERIOD=YYYY-MM/*.parquet``, metadata skipped); Azure's export
    folders (``<export>/<YYYYMMDD-YYYYMMDD>/<run>/part_*``), where every run re-exports the
    period to date, so only the newest run of each period is read (by the files' write
    time, not by name). Returns (files to read, files skipped as superseded runs)."""
    loc: Loc = storage.location(path, conn_id) if isinstance(path, str) else path
    if not storage.is_local(loc):
        try:
            loc.fs.invalidate_cache(loc.path)
        except Exception:  # noqa: BLE001 - a cache that cannot be dropped is only a cache
            pass
    if loc.is_file():
        return [loc], []
    if not loc.is_dir():
        raise CostSourceError(
            f"no FOCUS export at {storage.text(loc)} (expected a .csv, .csv.gz or .parquet "
            "file, or a folder of them: AWS Data Exports or Azure export layouts included)"
        )
    found = list(_walk(loc))
    runs: dict[str, dict[str, list[Loc]]] = {}
    plain = []
    for f in found:
        run, period = f.parent, f.parent.parent
        if AZURE_PERIOD.match(period.name):
            runs.setdefault(storage.text(period), {}).setdefault(storage.text(run), []).append(f)
        else:
            plain.append(f)
    keep: list[Loc] = list(plain)
    skipped: list[Loc] = []
    for by_run in runs.values():
        newest = max(by_run, key=lambda r: max(storage.mtime(f) for f in by_run[r]))
        for run, fs in by_run.items():
            (keep if run == newest else skipped).extend(fs)
    if not keep:
        raise CostSourceError(
            f"no FOCUS export at {storage.text(loc)}: the folder has no .csv, .csv.gz or "
            ".parquet file"
        )
    return keep, skipped


class FileExport:
    """An export in files (local or object storage): one part per data file."""

    def __init__(self, path: str | Path | Loc, conn_id: str | None = None) -> None:
        self.path = path
        self.conn_id = conn_id
        self._listed: tuple[list[Loc], list[Loc]] | None = None

    def _list(self) -> tuple[list[Loc], list[Loc]]:
        if self._listed is None:
            self._listed = export_files(self.path, self.conn_id)
        return self._listed

    def parts(
        self, wanted: Sequence[str]
    ) -> Iterator[tuple[str, Iterator[tuple[pa.RecordBatch, int]]]]:
        for loc in self._list()[0]:
            name = storage.text(loc)
            yield name, _batches(loc, name, wanted)

    def listed(self) -> tuple[list[str], list[str]]:
        keep, skipped = self._list()
        return [storage.text(f) for f in keep], [storage.text(f) for f in skipped]


# -- reading ------------------------------------------------------------------------------
def _read_header(loc: Loc) -> list[str]:
    import csv
    import gzip
    import io

    with loc.open("rb") as raw:
        stream: Any = gzip.open(raw) if loc.name.endswith(".gz") else raw
        line = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="").readline()
    return next(csv.reader([line]), [])


# Read as dictionaries from Parquet: long, repetitive strings decoded once per row group.
DICTIONARY = ("Tags", "ResourceId")
# What every scan reads; the other optional columns only when a dimension names them.
SCAN_COLUMNS = (*COSTS, "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass",
                "PricingCategory", "ServiceName", "ResourceId", "Tags")  # fmt: skip


def _batches(
    loc: Loc, name: str, wanted: Sequence[str] = (*REQUIRED, *OPTIONAL)
) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Record batches of the ``wanted`` columns, and the first data row's 1-based line number
    (CSV: header is line 1) or row number (Parquet)."""
    if name.endswith("parquet"):
        import pyarrow.parquet as pq

        with loc.open("rb") as fh:
            pf = pq.ParquetFile(fh)
            columns = pf.schema_arrow.names
            as_dict = [
                c
                for c in DICTIONARY
                if c in columns and pa.types.is_string(pf.schema_arrow.field(c).type)
            ]
            if as_dict:  # JSON tag text dictionary-encoded: each distinct value parsed once
                pf = pq.ParquetFile(fh, read_dictionary=as_dict)
            _check_columns(name, columns)
            row = 1
            for batch in pf.iter_batches(
                batch_size=BATCH_ROWS,
                columns=columns if "*" in wanted else [c for c in wanted if c in columns],
            ):
                yield batch, row
                row += batch.num_rows
        return
    import pyarrow.csv as pcsv

    columns = _read_header(loc)
    _check_columns(name, columns)
    present = columns if "*" in wanted else [c for c in wanted if c in columns]
    with loc.open("rb") as raw:
        stream: Any = raw
        if name.endswith(".gz"):
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip")
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(block_size=1 << 24),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(present, pa.string()),
                include_columns=present,
                strings_can_be_null=True,
                null_values=["", "NULL"],
                quoted_strings_can_be_null=True,
            ),
        )
        row = 2
        for batch in reader:
            yield batch, row
            row += batch.num_rows


def _check_columns(name: str, columns: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise CostSourceError(
            f"{name}: missing required FOCUS column(s) {missing}; a FOCUS 1.x CostAndUsage "
            f"export has at least {list(REQUIRED)}"
        )


def _plain(arr: Any) -> Any:
    """A (chunked) dictionary or large-string column as plain strings."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr


def _col(batch: pa.RecordBatch, name: str) -> pa.Array:
    if name in batch.schema.names:
        arr = batch.column(name)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if not pa.types.is_string(arr.type) and (
            pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type)
        ):
            arr = arr.cast(pa.string())
        return arr
    return pa.nulls(batch.num_rows, pa.string())


def _rows_shown(name: str, first: int, mask: pa.Array, values: pa.Array, limit: int = 5) -> str:
    idx = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
    shown = ", ".join(f"row {first + i}: {values[i].as_py()!r}" for i in idx[:limit])
    more = f" (+{len(idx) - limit} more)" if len(idx) > limit else ""
    return f"{shown}{more}"


def _timestamps(name: str, first: int, batch: pa.RecordBatch, col: str) -> pa.Array:
    arr = batch.column(col)
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is None:  # a Parquet export's naive timestamps are UTC in FOCUS
            arr = pc.assume_timezone(arr, "UTC")
        return arr.cast(pa.timestamp("us", tz="UTC"))
    import pandas as pd

    text = _col(batch, col)
    enc = pc.dictionary_encode(text)
    uniq = pd.to_datetime(
        pd.Series(enc.dictionary.to_pylist(), dtype=object),
        utc=True,
        errors="coerce",
        format="mixed",
    )
    parsed = pa.array(uniq, type=pa.timestamp("us", tz="UTC")).take(enc.indices)
    bad = pc.is_null(parsed)
    if pc.any(bad).as_py():
        raise CostSourceError(
            f"{name}: {col} must be an ISO 8601 date-time, got "
            + _rows_shown(name, first, bad, text)
        )
    return parsed


def _numbers(name: str, first: int, batch: pa.RecordBatch, col: str) -> pa.Array:
    """The column as float64; refuses text that is not a number, and nulls."""
    arr = batch.column(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        try:
            floats = arr.cast(pa.float64())
        except pa.ArrowInvalid:
            floats = None
        if floats is None:
            bad_mask = pa.array(
                [v is not None and not _is_number(v) for v in arr.to_pylist()], pa.bool_()
            )
            raise CostSourceError(
                f"{name}: {col} must be a number (nulls not allowed), got "
                + _rows_shown(name, first, bad_mask, arr)
            )
    else:
        floats = arr.cast(pa.float64())
    if floats.null_count:
        raise CostSourceError(
            f"{name}: {col} must be a number (nulls not allowed), got "
            + _rows_shown(name, first, pc.is_null(floats), arr)
        )
    return floats


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _exact_sum(batch: pa.RecordBatch, col: str, mask: pa.Array | None, floats: pa.Array) -> Decimal:
    """The column's own sum: text as exact decimals; doubles (Parquet) by Arrow's pairwise
    float sum of the column itself, independent of the grouping's hash sums."""
    arr = batch.column(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if mask is not None:
        arr, floats = arr.filter(mask), floats.filter(mask)
    if pa.types.is_floating(arr.type):
        return Decimal(repr(pc.sum(arr).as_py() or 0.0))
    try:
        dec = arr.cast(pa.decimal128(38, 12))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        dec = pc.cast(floats, pa.decimal128(38, 12), safe=False)
    return Decimal(pc.sum(dec).as_py() or 0)


class _Tags:
    """Parses each distinct ``Tags`` value once for the whole scan (real exports repeat a few
    thousand tag sets over millions of rows), and hands out per-row columns by ``take``."""

    def __init__(self, normalizer: TagNormalizer) -> None:
        self.normalizer = normalizer
        self.cache: dict[Any, tuple[dict[str, str], int]] = {}
        # Every distinct text seen so far, and per key its value / the flags, aligned with
        # it: a batch looks its dictionary up with one hash join (pc.index_in) and parses
        # only the texts it is the first to bring.
        self.seen: list[str] = []
        self.parsed: list[tuple[dict[str, str], int]] = []
        self.seen_arr = pa.array([], pa.string())
        self.by_key: dict[str, pa.Array] = {}
        self.flags_arr = pa.array([], pa.int8())

    def columns(self, arr: pa.Array, keys: list[str]) -> tuple[dict[str, pa.Array], pa.Array]:
        if pa.types.is_map(arr.type):
            return self._map_columns(arr, keys)
        if pa.types.is_list(arr.type):
            values = [self._parse(v) for v in arr.to_pylist()]
            tags = {k: pa.array([t.get(k) for t, _ in values], pa.string()) for k in keys}
            return tags, pa.array([f for _, f in values], pa.int8())
        if pa.types.is_dictionary(arr.type):
            dictionary, indices = arr.dictionary, arr.indices
        else:
            if not pa.types.is_string(arr.type):
                arr = arr.cast(pa.string())
            enc = pc.dictionary_encode(arr)
            dictionary, indices = enc.dictionary, enc.indices
        if dictionary.type != pa.string():
            dictionary = dictionary.cast(pa.string())
        pos = pc.index_in(dictionary, value_set=self.seen_arr)
        if pos.null_count > dictionary.null_count:  # texts no earlier batch had
            fresh = dictionary.filter(pc.and_(pc.is_null(pos), pc.is_valid(dictionary)))
            for text in fresh.to_pylist():
                self.seen.append(text)
                self.parsed.append(self._parse(text))
            self.seen_arr = pa.array(self.seen, pa.string())
            self.by_key = {}
            self.flags_arr = pa.array([f for _, f in self.parsed], pa.int8())
            pos = pc.index_in(dictionary, value_set=self.seen_arr)
        for k in keys:
            if k not in self.by_key:
                self.by_key[k] = pa.array([t.get(k) for t, _ in self.parsed], pa.string())
        rows = pos.take(indices)
        tags = {k: self.by_key[k].take(rows) for k in keys}
        flags = pc.fill_null(self.flags_arr.take(rows), 0)
        return tags, flags

    def _map_columns(self, arr: pa.Array, keys: list[str]) -> tuple[dict[str, pa.Array], pa.Array]:
        """A Parquet MAP<string, string> (AWS Data Exports): one vectorized lookup per
        distinct raw key of the batch instead of a Python pass over the rows."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        n = len(arr)
        flags = pa.array(np.zeros(n, dtype=np.int8))
        spelled: dict[str, list[str]] = {}
        for raw in pc.unique(arr.keys).to_pylist():
            if raw is None:
                continue
            key = self.normalizer.canonical(raw)
            self.normalizer.spellings.setdefault(key, set()).add(raw)
            spelled.setdefault(key, []).append(raw)
        out: dict[str, pa.Array] = {}
        for key, raws in spelled.items():
            raws.sort(key=lambda r: (r != key, r))  # the canonical spelling first
            looked = [
                pc.utf8_trim_whitespace(
                    pc.map_lookup(arr, pa.scalar(r, arr.type.key_type), "first")
                )
                for r in raws
            ]
            for r, values in zip(raws, looked, strict=True):
                if r != key:
                    hit = pc.fill_null(pc.is_valid(values), False)
                    flags = pc.if_else(hit, pc.bit_wise_or(flags, MERGED), flags)
            value = looked[0]
            for other in looked[1:]:
                clash = pc.fill_null(pc.and_(pc.is_valid(value), pc.not_equal(value, other)), False)
                flags = pc.if_else(clash, pc.bit_wise_or(flags, CONFLICT), flags)
                value = pc.coalesce(value, other)
            out[key] = value
        tags = {k: out.get(k, pa.nulls(n, pa.string())) for k in keys}
        return tags, flags.cast(pa.int8())

    def _parse(self, value: Any) -> tuple[dict[str, str], int]:
        key = value if not isinstance(value, list) else tuple(map(tuple, value))
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = self.normalizer.parse(value)
        return hit


def rows(
    path: str | Path | Loc,
    start: dt.date,
    end: dt.date,
    *,
    aliases: dict[str, str] | None = None,
    conn_id: str | None = None,
    all_columns: bool = False,
) -> Any:
    """Every charge starting in [start, end) as a pandas DataFrame (one row per charge, tags
    as canonical dicts; ``all_columns``: every column of the export, as text): for small
    exports, tests and the chargeback. Run :func:`scan` first for the checks (it refuses what
    cannot be read, and strict refuses anomalies)."""
    import pandas as pd

    normalizer = TagNormalizer.from_config(aliases)
    tags = _Tags(normalizer)
    lo = pd.Timestamp(start).tz_localize("UTC")
    hi = pd.Timestamp(end).tz_localize("UTC")
    frames = []
    export: Any = path if hasattr(path, "listed") else FileExport(path, conn_id)
    wanted = ("*",) if all_columns else (*REQUIRED, *OPTIONAL)
    for name, batches in export.parts(wanted):
        for batch, first in batches:
            names = batch.schema.names if all_columns else (*REQUIRED, *OPTIONAL)
            df = pa.table(
                {c: _col(batch, c) for c in names if c not in (*COSTS, "Tags")}
            ).to_pandas()
            for col in ("ChargePeriodStart", "ChargePeriodEnd"):
                df[col] = _timestamps(name, first, batch, col).to_pandas()
            for col in COSTS:
                df[col] = _numbers(name, first, batch, col).to_numpy(zero_copy_only=False)
            df["Tags"] = [tags._parse(v)[0] for v in batch.column("Tags").to_pylist()]
            frames.append(df[(df["ChargePeriodStart"] >= lo) & (df["ChargePeriodStart"] < hi)])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].where(out[col].notna(), None)
    return out
