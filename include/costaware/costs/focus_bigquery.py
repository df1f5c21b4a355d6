"""GCP's FOCUS view in BigQuery as a FOCUS export: the same streaming scan as files.

Google publishes FOCUS as a BigQuery view over the Cloud Billing detailed export. One
parameterised query selects the columns the scan needs for the window (the view name is
checked, values travel as parameters), and the result streams page by page into
:func:`costaware.costs.focus_stream.scan` as Arrow record batches
(``RowIterator.to_arrow_iterable``), so grouping, anomalies and the reconciliation are those
of a file. The "file's own sums" are the view's rows in the window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from typing import Any

from costaware.errors import CostSourceError

VIEW_RE = re.compile(r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")


class BigQueryFocusView:
    def __init__(
        self,
        client: Any,
        view: str,
        start: dt.date,
        end: dt.date,
        location: str | None = None,
    ) -> None:
        self.client = client
        self.view = view
        self.start = start
        self.end = end
        self.location = location

    @property
    def name(self) -> str:
        return f"bigquery:{self.view}"

    def sql(self, columns: Sequence[str]) -> str:
        if not VIEW_RE.match(self.view):
            raise CostSourceError(
                f"BigQuery FOCUS view {self.view!r}; allowed: project.dataset.view"
            )
        cols = "*" if list(columns) == ["*"] else ", ".join(f"`{c}`" for c in columns)
        return (
            f"SELECT {cols}\nFROM `{self.view}`\n"
            "WHERE ChargePeriodStart >= @start AND ChargePeriodStart < @end"
        )

    def parts(self, wanted: Sequence[str]) -> Iterator[tuple[str, Iterator[tuple[Any, int]]]]:
        yield self.name, self._batches(wanted)

    def _batches(self, wanted: Sequence[str]) -> Iterator[tuple[Any, int]]:
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        from costaware.costs.focus_stream import OPTIONAL, REQUIRED

        # The view has every FOCUS column; only the ones the scan reads are selected (all of
        # them for the chargeback, which asks for "*").
        columns = ["*"] if "*" in wanted else [c for c in wanted if c in (*REQUIRED, *OPTIONAL)]
        params = [
            bigquery.ScalarQueryParameter(
                "start", "TIMESTAMP", dt.datetime.combine(self.start, dt.time(), dt.UTC)
            ),
            bigquery.ScalarQueryParameter(
                "end", "TIMESTAMP", dt.datetime.combine(self.end, dt.time(), dt.UTC)
            ),
        ]
        try:
            rows = self.client.query_and_wait(
                self.sql(columns),
                job_config=bigquery.QueryJobConfig(query_parameters=params),
                location=self.location,
            )
            first = 1
            for batch in rows.to_arrow_iterable():
                yield batch, first
                first += batch.num_rows
        except gexc.GoogleAPIError as exc:
            raise CostSourceError(f"BigQuery FOCUS view {self.view} query failed: {exc}") from exc

    def listed(self) -> tuple[list[str], list[str]]:
        return [self.name], []
