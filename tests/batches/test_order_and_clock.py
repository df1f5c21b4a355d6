"""Order by event time, never by file name; every timestamp as naive UTC.

The old code (35cc885) sorted landing files, accepted batches and stored probe series by
name, so ``week-10`` came before ``week-9``: the queue took the wrong week first, the
training window and held-out window were cut in the wrong place, and regret curves were
pooled in the wrong order. ``time_bounds`` kept the batch's own timezone, and an aware
timestamp could not be compared with the ledger's naive ones.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd

from costaware.batches import data
from costaware.settings import Settings
from costaware.store.ledger import Ledger
from costaware.store.probes import ProbeStore, in_order

MODEL = "elec2"


def _batch_file(folder: Path, name: str, first: str, rows: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "event_id": [f"{name}-{i}" for i in range(rows)],
            "event_time": pd.date_range(first, periods=rows, freq="30min"),
            "period": [0.5] * rows,
        }
    )
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_landing_queue_takes_week_9_before_week_10(settings: Settings) -> None:
    """Old: ``sorted(paths)`` → week-10 first (the name "week-10" < "week-9")."""
    landing = settings.landing(MODEL)
    _batch_file(landing, "week-10", "2024-03-11")
    _batch_file(landing, "week-9", "2024-03-04")
    assert [p.name for p in data.pending_batches(settings, MODEL)] == [
        "week-9.parquet",
        "week-10.parquet",
    ]
    ref = data.find_batch(settings, MODEL, None)
    assert ref is not None and ref.batch_id == "week-9"


def test_landing_queue_ties_are_broken_by_arrival(settings: Settings) -> None:
    """Two files with the same first event: the one that arrived first goes first, whatever
    their names. Old: by name ("a-late" first)."""
    landing = settings.landing(MODEL)
    early = _batch_file(landing, "z-early", "2024-03-04")
    late = _batch_file(landing, "a-late", "2024-03-04")
    os.utime(early, (1_700_000_000, 1_700_000_000))
    os.utime(late, (1_700_000_100, 1_700_000_100))
    assert [p.stem for p in data.pending_batches(settings, MODEL)] == ["z-early", "a-late"]


def _accept(settings: Settings, ledger: Ledger, name: str, start: dt.datetime | None) -> None:
    _batch_file(settings.accepted(MODEL), name, "2024-01-01")
    ledger.record_batch(
        model=MODEL,
        batch_id=name,
        path=str(settings.accepted(MODEL) / f"{name}.parquet"),
        rows=4,
        sha256="0" * 64,
        status="accepted",
        message="",
        start_ts=start,
        end_ts=start,
        run_id=f"run-{name}",
    )


def test_accepted_batches_in_event_time_order(settings: Settings) -> None:
    """The ledger's accepted batches by their first event, ties by arrival (the order they
    were recorded); a quarantined batch is not among them.

    Old: ``accepted_batch_ids`` listed the folder sorted by name: week-10, week-8, week-9 and
    a-tie before z-tie."""
    ledger = Ledger(settings.db_url)
    _accept(settings, ledger, "week-10", dt.datetime(2024, 3, 11))
    _accept(settings, ledger, "week-9", dt.datetime(2024, 3, 4))
    _accept(settings, ledger, "z-tie", dt.datetime(2024, 3, 18))
    _accept(settings, ledger, "a-tie", dt.datetime(2024, 3, 18))
    _accept(settings, ledger, "week-8", dt.datetime(2024, 2, 26))
    _accept(settings, ledger, "week-7", dt.datetime(2024, 2, 19))
    ledger.record_batch(model=MODEL, batch_id="week-7", status="quarantined")
    assert data.accepted_batch_ids(settings, ledger, MODEL) == [
        "week-8",
        "week-9",
        "week-10",
        "z-tie",
        "a-tie",
    ]
    ledger.dispose()


def test_probe_series_follow_event_time_order(tmp_path: Path) -> None:
    """Regret curves come back oldest first in event-time order; keys no longer among the
    labelled batches first, as the oldest. Old: ``sorted(data)`` by name."""
    order = ["week-8", "week-9", "week-10"]
    assert in_order({"week-10": 0, "week-9": 0, "week-8": 0}, order) == order
    assert in_order(["week-10", "gone", "week-9"], order) == ["gone", "week-9", "week-10"]
    store = ProbeStore(tmp_path / "probes")
    store.save("week-9", [2.0], order=order)
    store.save("week-10", [3.0], order=order)
    assert store.save("week-8", [1.0], order=order) == [[1.0], [2.0], [3.0]]


def test_time_bounds_are_naive_utc() -> None:
    """Berlin summer time is UTC+2 in May 1996, +05:30 is India; naive is taken as UTC.
    Old: the bounds kept the batch's timezone (aware), and ``clock - start`` raised
    ``TypeError: can't subtract offset-naive and offset-aware datetimes``."""
    naive = pd.date_range("1996-05-07 00:00", periods=336, freq="30min")
    berlin = pd.DataFrame({"event_time": naive.tz_localize("Europe/Berlin")})
    assert data.time_bounds(berlin) == (
        dt.datetime(1996, 5, 6, 22, 0),
        dt.datetime(1996, 5, 13, 21, 30),
    )
    india = pd.DataFrame({"event_time": [f"{t.isoformat()}+05:30" for t in naive]})
    assert data.time_bounds(india) == (
        dt.datetime(1996, 5, 6, 18, 30),
        dt.datetime(1996, 5, 13, 18, 0),
    )
    plain = pd.DataFrame({"event_time": naive})
    start, end = data.time_bounds(plain)
    assert (start, end) == (dt.datetime(1996, 5, 7), dt.datetime(1996, 5, 13, 23, 30))
    assert start is not None and start.tzinfo is None
