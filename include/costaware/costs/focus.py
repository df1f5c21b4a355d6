"""The ``focus`` cost source: FinOps FOCUS 1.x CostAndUsage exports (CSV, gzip CSV or
Parquet) from any cloud, as they are delivered: a file, a folder, an AWS Data Exports prefix
on S3, an Azure cost-export folder. Tags come from the ``Tags`` JSON column, keys trimmed,
case-folded and aliased (``tag_aliases``); ``PricingCategory`` ``Dynamic`` is spot.

Every read is one streaming pass of :mod:`costaware.costs.focus_stream` (pyarrow, by row
groups), whatever the size. It refuses what cannot be read (a missing column, an unparseable
date or cost) with the file and rows; it loads what is readable but suspect (a negative
``Usage`` charge, a null ``PricingCategory``, tag text that is not JSON) and lists it in
``last_report`` (kind, rows, $, examples), with the grouped totals reconciled to the cent
against the file's own sums. ``strict=True`` refuses such files instead, as before.
Literal ``NULL`` strings, as some exporters write them, are nulls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from costaware.costs import focus_stream
from costaware.costs.base import CostRecord
from costaware.costs.focus_stream import COSTS, ScanResult
from costaware.costs.tags import parse_aliases
from costaware.errors import CostSourceError

NO_DATA_HINT = "no data for this tag (is it activated as a cost-allocation tag?)"


class FocusCostSource:
    name = "focus"

    def __init__(
        self,
        path: str | Path = "",
        cost_column: str = "EffectiveCost",
        tag_keys: dict[str, str] | None = None,
        lag_hours: float = 48.0,
        clock: Callable[[], dt.datetime] | None = None,
        strict: bool = False,
        tag_aliases: dict[str, str] | None = None,
        conn_id: str | None = None,
        bigquery: Any = None,
        bigquery_view: str | None = None,
        location: str | None = None,
    ) -> None:
        if (bigquery is None) != (bigquery_view is None):
            raise CostSourceError("a BigQuery FOCUS view needs both a client and the view name")
        if cost_column not in COSTS:
            raise CostSourceError(f"cost_column {cost_column!r}; allowed: {list(COSTS)}")
        # A local path stays a Path; an s3:// or gs:// URL is opened through the storage
        # layer (Airflow's ObjectStoragePath with ``conn_id``).
        self.path: str | Path = path if "://" in str(path) else Path(path)
        if bigquery is not None:
            self.path = f"bigquery:{bigquery_view}"
        self.cost_column = cost_column
        self.tag_keys = dict(tag_keys or {})
        self.lag_hours = lag_hours
        self.clock = clock
        self.strict = strict
        self.tag_aliases = parse_aliases(tag_aliases, "cost_source_options.tag_aliases")
        self.conn_id = conn_id
        self.bigquery = bigquery
        self.bigquery_view = bigquery_view
        self.location = location
        self.last_report: dict[str, Any] | None = None

    def _export(self, start: dt.date, end: dt.date) -> Any:
        """Where the charges are: files (a path or URL), or GCP's FOCUS view in BigQuery."""
        if self.bigquery is None:
            return self.path
        from costaware.costs.focus_bigquery import BigQueryFocusView

        assert self.bigquery_view is not None
        return BigQueryFocusView(self.bigquery, self.bigquery_view, start, end, self.location)

    def _now(self) -> dt.datetime:
        now = self.clock() if self.clock else dt.datetime.now(dt.UTC)
        return now if now.tzinfo else now.replace(tzinfo=dt.UTC)

    def scan(self, by: str | list[str], start: dt.date, end: dt.date, top: int = 5) -> ScanResult:
        """Charges starting in [start, end) grouped by ``by`` (see focus_stream.parse_by), in
        one streaming pass; the file's anomalies and reconciliation land in ``last_report``."""
        result = focus_stream.scan(
            self._export(start, end),
            by,
            start,
            end,
            cost_column=self.cost_column,
            aliases=self.tag_aliases,
            tag_keys=self.tag_keys,
            strict=self.strict,
            cutoff=self._now() - dt.timedelta(hours=self.lag_hours),
            top=top,
            conn_id=self.conn_id,
        )
        self.last_report = result.report()
        return result

    def charges(self, start: dt.date, end: dt.date) -> Any:
        """Every charge starting in [start, end), one row each, tags as a dict column: for
        small exports (showback and costs use :meth:`scan`, which streams)."""
        self.scan(["usage_date"], start, end)  # the checks (and strict) before any dollar
        df = focus_stream.rows(
            self._export(start, end), start, end, aliases=self.tag_aliases, conn_id=self.conn_id
        )
        if df.empty:
            return df
        cutoff = self._now() - dt.timedelta(hours=self.lag_hours)
        df["reconciled"] = df["ChargePeriodEnd"] <= cutoff
        df["usd"] = df[self.cost_column]
        df["capacity"] = df["PricingCategory"].map(
            lambda c: focus_stream.CAPACITY.get(c) if c else None
        )
        df["usage_date"] = df["ChargePeriodStart"].dt.date
        return df

    def charges_all_columns(self, start: dt.date, end: dt.date) -> Any:
        """Every column of every charge starting in [start, end) (the chargeback's input),
        after the same checks as every read."""
        self.scan(["usage_date"], start, end)
        return focus_stream.rows(
            self._export(start, end),
            start,
            end,
            aliases=self.tag_aliases,
            conn_id=self.conn_id,
            all_columns=True,
        )

    def costs(
        self, tags: dict[str, str], start: dt.date, end: dt.date, purpose: str = "retrain"
    ) -> list[CostRecord]:
        keys = sorted(k for k in tags if k != "purpose")
        dims = [k if k in focus_stream.TAG_DIMS else f"tag:{k}" for k in keys]
        result = self.scan([*dims, "purpose", "usage_date", "capacity", "reconciled"], start, end)
        df = result.frame
        for d, k in zip(dims, keys, strict=True):
            df = df[df[d] == str(tags[k]).strip()]
        if df.empty:
            shown = ", ".join(f"{self.tag_keys.get(k, k)}={tags[k]}" for k in keys)
            raise CostSourceError(
                f"no charge in {self.path} tagged {shown or '(none)'} between {start} and "
                f"{end}: {NO_DATA_HINT}"
            )
        df = df[df["purpose"] == purpose]
        records = []
        for day, g in df.groupby("usage_date", sort=True):
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
