"""The monitor's counts and samples of the prediction log, against counting the rows by hand.

Rows are logged with ``log_predictions`` and labelled with ``record_labels`` (the serving
app's own writes) at irregular times over three days, two versions; every count the
monitor reads from its hourly counts is compared with a count made here in Python over the
rows this test wrote. Both ledgers (SQLite, PostgreSQL).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from costaware.monitor import queries
from costaware.store import ledger as ledger_mod
from costaware.store.ledger import Ledger

T0 = dt.datetime(2026, 3, 1)
HOUR = dt.timedelta(hours=1)


def _log(ledger: Ledger, rows: list[tuple[str, dt.datetime, str]]) -> None:
    ledger_mod.log_predictions(
        ledger,
        [
            {
                "model": "m",
                "request_id": rid,
                "ts": ts,
                "features": {"x": 1.0},
                "score": 0.5,
                "version": v,
                "alias": "champion",
                "latency_ms": 1.0,
            }
            for rid, ts, v in rows
        ],
    )


def _by_hand(rows, labelled, start, end, version):  # type: ignore[no-untyped-def]
    inside = [(r, v) for r, ts, v in rows if start <= ts < end]
    mine = [r for r, v in inside if v == version]
    return len(mine), sum(r in labelled for r in mine), len(inside)


def _windows_by_hand(rows, labelled, end, width, n, version):  # type: ignore[no-untyped-def]
    return [
        _by_hand(rows, labelled, end - width * (k + 1), end - width * k, version) for k in range(n)
    ]


def _hour(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _rows(rng: np.random.Generator, n: int, prefix: str, start: dt.datetime, hours: float):
    offsets = np.sort(rng.random(n)) * hours * 3600
    return [
        (f"{prefix}{i}", start + dt.timedelta(seconds=float(o)), "1" if i % 4 else "2")
        for i, o in enumerate(offsets)
    ]


def test_counts_follow_the_log_and_recount_only_what_changed(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "RECOUNT_MARGIN", 0)  # recount exactly the changed hours
    ledger = Ledger(db_url)
    rng = np.random.default_rng(3)
    rows = _rows(rng, 900, "a", T0, 72)
    _log(ledger, rows)
    labelled = {r for r, _, _ in rows[:500] if rng.random() < 0.7}
    ledger_mod.record_labels(ledger, "m", {r: "1" for r in labelled}, T0)
    first = queries.refresh_counts(ledger, "m")
    assert first.full and first.hours == len(
        {(ts.replace(minute=0, second=0, microsecond=0), v) for _, ts, v in rows}
    )
    end, width = T0 + 72 * HOUR, dt.timedelta(hours=24)
    got = queries.windows_counts(ledger, "m", end, width, 3, "1")
    assert got == _windows_by_hand(rows, labelled, end, width, 3, "1")

    # New rows in the last hour, a late row (a spool replay) three days back, and labels
    # for rows of one earlier hour: only those hours are recounted.
    late = [("late", T0 + dt.timedelta(hours=5, minutes=7), "1")]
    new = _rows(rng, 40, "b", T0 + 71 * HOUR, 1)
    _log(ledger, new + late)
    rows += new + late
    hour30 = [r for r, ts, _ in rows if T0 + 30 * HOUR <= ts < T0 + 31 * HOUR]
    ledger_mod.record_labels(ledger, "m", {r: "0" for r in hour30}, T0 + 72 * HOUR)
    labelled |= set(hour30)
    second = queries.refresh_counts(ledger, "m")
    assert not second.full
    touched = {r for r in set(hour30) | {"late"} | {n[0] for n in new}}
    dirty = {_hour(ts) for r, ts, _ in rows if r in touched}
    changed = {(_hour(ts), v) for _, ts, v in rows if _hour(ts) in dirty}  # counts rewritten
    assert second.hours == len(changed)
    assert queries.windows_counts(ledger, "m", end, width, 3, "1") == _windows_by_hand(
        rows, labelled, end, width, 3, "1"
    )
    # Nothing new: nothing recounted.
    assert queries.refresh_counts(ledger, "m").hours == 0

    # A clock and a width that are not whole hours: the cut hours are counted from the log.
    odd_end, odd = T0 + dt.timedelta(hours=70, minutes=20), dt.timedelta(hours=5, minutes=30)
    assert queries.windows_counts(ledger, "m", odd_end, odd, 6, "2") == _windows_by_hand(
        rows, labelled, odd_end, odd, 6, "2"
    )
    # Any version (version=None): served and labelled over all versions.
    got_all = queries.windows_counts(ledger, "m", end, width, 3, None)
    by_hand_all = [
        (
            t,
            sum(
                r in labelled for r, ts, _ in rows if end - width * (k + 1) <= ts < end - width * k
            ),
            t,
        )
        for k, (_, _, t) in enumerate(_windows_by_hand(rows, labelled, end, width, 3, "1"))
    ]
    assert got_all == by_hand_all
    ledger.dispose()


def test_a_big_window_is_a_seeded_sample_of_its_rows(pg_url: str) -> None:
    from sqlalchemy import create_engine

    ledger_mod.drop_all(create_engine(pg_url))
    ledger = Ledger(pg_url)
    rng = np.random.default_rng(5)
    rows = [(r, ts, "1") for r, ts, _ in _rows(rng, 6000, "c", T0, 48)]
    _log(ledger, rows)
    labelled = {r for r, _, _ in rows if rng.random() < 0.5}
    ledger_mod.record_labels(ledger, "m", dict.fromkeys(labelled, "1"), T0)
    big = queries.Span(0, T0 + 24 * HOUR, T0 + 48 * HOUR, 0)
    served = sum(big.start <= ts < big.end for _, ts, _ in rows)
    big = queries.Span(0, big.start, big.end, served)
    small = queries.Span(1, T0 + 23 * HOUR, T0 + 24 * HOUR, 0)
    small = queries.Span(
        1, small.start, small.end, sum(small.start <= ts < small.end for _, ts, _ in rows)
    )
    assert served > 1000 and 0 < small.served <= 1000

    a = queries.sample_windows(ledger, "m", "1", [big, small], 1000, seed=7)
    b = queries.sample_windows(ledger, "m", "1", [big, small], 1000, seed=7)
    other = queries.sample_windows(ledger, "m", "1", [big, small], 1000, seed=8)
    got = a[a["age"] == 0]
    assert len(got) == 1000  # bounded: 1000 of the window's rows
    times = {r: ts for r, ts, _ in rows}
    window_ids = {r for r, ts, _ in rows if big.start <= ts < big.end}
    ids = set(queries.window_rows(ledger, "m", big.start, big.end)["request_id"])
    assert ids == window_ids
    assert got["ts"].between(big.start, big.end, inclusive="left").all()
    assert got["id"].is_unique
    assert a["ts"].tolist() == b["ts"].tolist()  # seeded: the same rows again
    assert a[a["age"] == 0]["id"].tolist() != other[other["age"] == 0]["id"].tolist()
    # The small window is read whole, exactly as window_rows reads it.
    whole = queries.window_rows(ledger, "m", small.start, small.end, version="1", features=False)
    assert a[a["age"] == 1]["request_id"].tolist() == whole["request_id"].tolist()
    assert {times[r] for r in whole["request_id"]} == set(a[a["age"] == 1]["ts"])
    # A labelled sample holds labelled rows of the window only.
    lab_span = queries.Span(0, big.start, big.end, sum(r in labelled for r in window_ids))
    lab = queries.sample_windows(ledger, "m", "1", [lab_span], 500, seed=7, labelled_only=True)
    assert len(lab) == 500 and lab["label"].notna().all()
    assert lab["ts"].between(big.start, big.end, inclusive="left").all()
    # Labels rate in the window's sample ≈ the window's (a random sample, not a biased one).
    share = got["label"].notna().mean()
    assert abs(share - lab_span.served / served) < 0.06
    ledger.dispose()
