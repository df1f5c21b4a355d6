"""Reads of the prediction log for the monitor, bounded however many rows are logged.

* **Counts** (served, labelled, request volume) come from ``prediction_counts``: one row per
  (model, hour, version), kept up to date by ``refresh_counts``, which recounts only the
  hours that got predictions or labels since the last run (the first run of a model counts
  the whole log once). A window is the sum of its hours; an hour cut by a window boundary
  (a clock or a window width that is not whole hours) is counted from the log itself.
* **Rows** for metrics, the label-free estimate and drift: a window of at most ``max_rows``
  predictions is read whole (exactly as before sampling existed); a bigger one is read as a
  seeded random sample of ``max_rows`` rows (``sample_windows``), drawn for that window
  alone, so a window recomputed by a later run gets the same sample.
* **The previous run** (``latest_monitor_run``): its stored window results and calibration,
  which ``monitor.windows`` reuses where nothing they depend on changed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from costaware.store.ledger import (
    Ledger,
    _lock_key,
    monitor_runs,
    prediction_count_marks,
    prediction_counts,
    prediction_labels,
    predictions,
)

if TYPE_CHECKING:
    import pandas as pd

HOUR = dt.timedelta(hours=1)
# Ids are handed out before their transaction commits, so a row can become visible after a
# run has counted past its id. Each refresh therefore recounts the hours of the last
# RECOUNT_MARGIN ids below the mark too (recounting is exact, so this costs time, not
# correctness): a row is missed only if 10 000 later ids commit while it is in flight.
RECOUNT_MARGIN = 10_000
# TABLESAMPLE draws whole pages; asking for 1.3× the rows keeps a short sample unlikely
# (a page holds ~20 logged rows: 10 000 rows ≈ 500 pages, whose count varies by ~±4.5 %).
OVERSAMPLE = 1.3
# A big window of at most this many times the sample is read whole through the time index
# and cut: cheaper than TABLESAMPLE, which reads its rate of the *whole table's* pages (a
# window of an hour at 10 M logged rows would need most of them).
WHOLE_READ_FACTOR = 20
EPOCH = dt.datetime(1970, 1, 1)


def _joined() -> Any:
    p, lab = predictions, prediction_labels
    return p.outerjoin(lab, sa.and_(lab.c.model == p.c.model, lab.c.request_id == p.c.request_id))


def _hour_of(conn: sa.Connection, column: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return sa.func.date_trunc("hour", column)
    # SQLite stores DateTime as text in SQLAlchemy's format; keep it, so reads parse it back.
    return sa.func.strftime("%Y-%m-%d %H:00:00.000000", column)


def _as_datetime(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class Refresh:
    """What ``refresh_counts`` did: the hours it recounted and the marks it moved to."""

    hours: int  # (hour, version) counts rewritten (all of them on a model's first refresh)
    full: bool
    predictions_id: int
    labels_id: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "hours_recounted": self.hours,
            "full_recount": self.full,
            "predictions_id": self.predictions_id,
            "labels_id": self.labels_id,
        }


def refresh_counts(ledger: Ledger, model: str) -> Refresh:
    """Bring ``prediction_counts`` of ``model`` up to date with the log: recount every hour
    that holds a prediction, or the prediction of a label, whose id is above the last marks
    (minus RECOUNT_MARGIN). One transaction; two monitors of one model take turns."""
    p, lab, marks = predictions, prediction_labels, prediction_count_marks
    with ledger.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(f"counts:{model}")}
            )
        mark = conn.execute(sa.select(marks).where(marks.c.model == model)).first()
        p_max = conn.execute(sa.select(sa.func.max(p.c.id)).where(p.c.model == model)).scalar()
        l_max = conn.execute(sa.select(sa.func.max(lab.c.id)).where(lab.c.model == model)).scalar()
        p_max, l_max = int(p_max or 0), int(l_max or 0)
        if mark is None:
            conn.execute(prediction_counts.delete().where(prediction_counts.c.model == model))
            hours = _recount(conn, model, None, None)
        else:
            hour = _hour_of(conn, p.c.ts)
            dirty = {
                _as_datetime(h)
                for (h,) in conn.execute(
                    sa.select(hour)
                    .where(p.c.model == model, p.c.id > mark.predictions_id - RECOUNT_MARGIN)
                    .distinct()
                )
            }
            dirty |= {
                _as_datetime(h)
                for (h,) in conn.execute(
                    sa.select(hour)
                    .select_from(
                        lab.join(
                            p, sa.and_(p.c.model == lab.c.model, p.c.request_id == lab.c.request_id)
                        )
                    )
                    .where(lab.c.model == model, lab.c.id > mark.labels_id - RECOUNT_MARGIN)
                    .distinct()
                )
            }
            hours = 0
            for start, end in _runs(sorted(dirty)):
                hours += _recount(conn, model, start, end)
        values = {
            "predictions_id": p_max,
            "labels_id": l_max,
            "updated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        }
        if mark is None:
            conn.execute(marks.insert().values(model=model, **values))
        else:
            conn.execute(marks.update().where(marks.c.model == model).values(**values))
    return Refresh(hours, mark is None, p_max, l_max)


def _runs(hours: list[dt.datetime]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Contiguous ranges [start, end) covering the given hour starts."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for h in hours:
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + HOUR)
        else:
            out.append((h, h + HOUR))
    return out


def _recount(
    conn: sa.Connection, model: str, start: dt.datetime | None, end: dt.datetime | None
) -> int:
    """Replace the counts of [start, end) (everything when None) with a fresh count."""
    p, lab, c = predictions, prediction_labels, prediction_counts
    hour = _hour_of(conn, p.c.ts).label("hour")
    where = [p.c.model == model]
    if start is not None and end is not None:
        where += [p.c.ts >= start, p.c.ts < end]
        conn.execute(c.delete().where(c.c.model == model, c.c.hour >= start, c.c.hour < end))
    counted = (
        sa.select(
            sa.literal(model, sa.String).label("model"),
            hour,
            p.c.version,
            sa.func.count().label("served"),
            sa.func.count(lab.c.id).label("labelled"),
        )
        .select_from(_joined())
        .where(*where)
        .group_by(hour, p.c.version)
    )
    result = conn.execute(
        c.insert().from_select(["model", "hour", "version", "served", "labelled"], counted)
    )
    return max(int(result.rowcount or 0), 0)


def window_counts(
    ledger: Ledger, model: str, start: dt.datetime, end: dt.datetime, version: str | None = None
) -> tuple[int, int]:
    """(logged predictions, how many of them have a label) served in [start, end), counted
    from the log itself (used for pieces of an hour, and by tests as the reference)."""
    p = predictions
    where = [p.c.model == model, p.c.ts >= start, p.c.ts < end]
    if version is not None:
        where.append(p.c.version == version)
    stmt = sa.select(sa.func.count(), sa.func.count(prediction_labels.c.id)).select_from(_joined())
    with ledger.engine.connect() as conn:
        total, labelled = conn.execute(stmt.where(*where)).one()
    return int(total), int(labelled)


def windows_counts(
    ledger: Ledger,
    model: str,
    end: dt.datetime,
    width: dt.timedelta,
    windows: int,
    version: str | None,
) -> list[tuple[int, int, int]]:
    """``bounds_counts`` of the windows k = 0 (newest) .. windows − 1,
    [end − (k+1)·width, end − k·width)."""
    bounds = [(end - width * (k + 1), end - width * k) for k in range(windows)]
    return bounds_counts(ledger, model, bounds, version)


def bounds_counts(
    ledger: Ledger,
    model: str,
    bounds: Sequence[tuple[dt.datetime, dt.datetime]],
    version: str | None,
) -> list[tuple[int, int, int]]:
    """Per window [start, end) of ``bounds`` (contiguous, newest first, as
    ``windows.window_bounds`` gives them): (served by ``version``, of which labelled, served
    by any version). From the hourly counts (call ``refresh_counts`` first); hours cut by a
    window's bound are counted from the log."""
    c = prediction_counts
    if not bounds:
        return []
    start, end = bounds[-1][0], bounds[0][1]
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.c.hour, c.c.version, c.c.served, c.c.labelled).where(
                c.c.model == model, c.c.hour >= first_hour, c.c.hour < end
            )
        ).all()
    out = [[0, 0, 0] for _ in bounds]
    starts = [b[0] for b in reversed(bounds)]  # ascending

    def index(t: dt.datetime) -> int:  # the window holding instant t (start <= t < end)
        return len(bounds) - bisect.bisect_right(starts, t)

    edges = {b[0] for b in bounds} | {end}
    pieces: set[tuple[dt.datetime, dt.datetime]] = set()
    for hour, v, served, labelled in rows:
        h = _as_datetime(hour)
        lo, hi = max(h, start), min(h + HOUR, end)
        if lo >= hi:
            continue
        k_lo, k_hi = index(lo), index(hi - dt.timedelta(microseconds=1))
        if (lo, hi) == (h, h + HOUR) and k_lo == k_hi:
            out[k_lo][2] += served
            if version is None or v == version:
                out[k_lo][0] += served
                out[k_lo][1] += labelled
            continue
        # Cut by a window's bound or the range's ends: count its pieces from the log.
        cuts = sorted({lo, hi} | {e for e in edges if lo < e < hi})
        pieces.update(zip(cuts, cuts[1:], strict=False))
    for lo, hi in sorted(pieces):
        k = index(lo)
        served_v, labelled_v = window_counts(ledger, model, lo, hi, version)
        out[k][0] += served_v
        out[k][1] += labelled_v
        out[k][2] += window_counts(ledger, model, lo, hi)[0] if version is not None else served_v
    return [(a, b, v) for a, b, v in out]


def window_rows(
    ledger: Ledger,
    model: str,
    start: dt.datetime,
    end: dt.datetime,
    version: str | None = None,
    labelled_only: bool = False,
    features: bool = True,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Logged rows served in [start, end): request_id, ts, score, version, label (None while
    unknown) and, with ``features``, one column per feature. With ``max_rows``, the newest
    ``max_rows`` rows (in time order)."""
    p, lab = predictions, prediction_labels
    cols = [p.c.request_id, p.c.ts, p.c.score, p.c.version, lab.c.label]
    if features:
        cols.append(p.c.features)
    where = [p.c.model == model, p.c.ts >= start, p.c.ts < end]
    if version is not None:
        where.append(p.c.version == version)
    if labelled_only:
        where.append(lab.c.id.is_not(None))
    stmt = sa.select(*cols).select_from(_joined()).where(*where).order_by(p.c.ts.desc(), p.c.id)
    if max_rows is not None:
        stmt = stmt.limit(max_rows)
    with ledger.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return _frame(rows, cols, features).iloc[::-1].reset_index(drop=True)


def _frame(rows: Sequence[Any], cols: list[Any], features: bool) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=[c.name for c in cols])
    if features and frame.empty:
        return frame.drop(columns="features")
    if features:
        feats = pd.DataFrame.from_records(list(frame.pop("features")), index=frame.index)
        frame = pd.concat([frame, feats], axis=1)
    return frame


@dataclass(frozen=True)
class Span:
    """One window to read: its index, bounds and how many rows ``version`` served in it."""

    age: int
    start: dt.datetime
    end: dt.datetime
    served: int


def window_seed(seed: int, start: dt.datetime) -> list[int]:
    """The generator seed of a window's sample: the configured seed and the window's start
    (microseconds since the Unix epoch), so a window's sample does not move with its age."""
    return [seed % 2**63, ((start - EPOCH) // dt.timedelta(microseconds=1)) % 2**63]


def sample_windows(
    ledger: Ledger,
    model: str,
    version: str | None,
    spans: list[Span],
    max_rows: int,
    seed: int,
    features: bool = False,
    labelled_only: bool = False,
) -> pd.DataFrame:
    """The rows of each span, whole when it holds at most ``max_rows`` (``Span.served``: its
    rows, or its labelled rows with ``labelled_only``), else a seeded random sample of
    ``max_rows`` of them; one frame with an ``age`` column, each span in time order.

    A span's sample depends on that span alone (its bounds, its rows, ``seed``), never on
    the other spans read with it, so a window recomputed in a later run draws the same
    sample. A span of at most WHOLE_READ_FACTOR × ``max_rows`` rows, or any span outside
    PostgreSQL (SQLite, the embedded ledger), is read whole and cut to ``max_rows`` rows by a
    generator seeded with (seed, the span's start). A bigger span on PostgreSQL is drawn with
    ``TABLESAMPLE SYSTEM (pct) REPEATABLE (seed)`` — of ``predictions``, or of
    ``prediction_labels`` with ``labelled_only`` — at the first rate of a fixed ladder (steps
    of √2) at or above 1.3× what the span needs; spans that share a rate share one query (a
    page's draw depends only on the rate and the seed), and the draw is cut the same way. A
    page holds consecutive rows (served, or labelled, seconds apart), so such a sample is of
    small clusters rather than of single rows."""
    import pandas as pd

    parts = []
    small = [s for s in spans if 0 < s.served <= max_rows]
    big = [s for s in spans if s.served > max_rows]
    for s in small:
        parts.append(_span_rows(ledger, model, s, version, features, labelled_only))
    if big:
        read = _read_big(ledger, model, version, big, max_rows, seed, features, labelled_only)
        for s in big:
            f = read[s.age].sort_values(["ts", "id"], kind="mergesort").reset_index(drop=True)
            if len(f) > max_rows:
                rng = np.random.default_rng(window_seed(seed, s.start))
                keep = np.sort(rng.choice(len(f), size=max_rows, replace=False))
                f = f.iloc[keep].reset_index(drop=True)
            parts.append(f.assign(age=s.age))
    if not parts:
        cols = ["request_id", "ts", "score", "version", "label", "age"]
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)


def _span_rows(
    ledger: Ledger,
    model: str,
    s: Span,
    version: str | None,
    features: bool,
    labelled_only: bool,
) -> pd.DataFrame:
    """Every row of one span, with its age."""
    f = window_rows(
        ledger,
        model,
        s.start,
        s.end,
        version=version,
        features=features,
        labelled_only=labelled_only,
    )
    return f.assign(age=s.age)


def _rate_step(served: int, max_rows: int) -> int:
    """The ladder step j (rate 100 · 2^(−j/2) %) of the lowest rate at or above the one a span
    of ``served`` rows needs for 1.3 × ``max_rows`` of them."""
    need = min(1.0, OVERSAMPLE * max_rows / served)
    return max(0, math.floor(-2 * math.log2(need) + 1e-9))


def _read_big(
    ledger: Ledger,
    model: str,
    version: str | None,
    spans: list[Span],
    max_rows: int,
    seed: int,
    features: bool,
    labelled_only: bool,
) -> dict[int, pd.DataFrame]:
    def whole(s: Span) -> pd.DataFrame:
        rows = _span_rows(ledger, model, s, version, features, labelled_only)
        return rows.drop(columns="age").assign(id=lambda f: range(len(f)))

    pg = ledger.engine.dialect.name == "postgresql"
    out = {s.age: whole(s) for s in spans if not pg or s.served <= WHOLE_READ_FACTOR * max_rows}
    steps = {s.age: _rate_step(s.served, max_rows) for s in spans if s.age not in out}
    while steps:
        j = max(steps.values())  # the lowest rate still wanted; its spans read together
        group = [s for s in spans if steps.get(s.age) == j]
        pct = 100.0 * 2 ** (-j / 2)
        got = _tablesample(ledger, model, version, group, pct, seed, features, labelled_only)
        for s, f in zip(group, got, strict=True):
            # A short draw (few, full pages) is drawn again at twice the rate.
            if j == 0 or len(f) >= min(max_rows, s.served):
                out[s.age] = f
                del steps[s.age]
            else:
                steps[s.age] = max(0, j - 2)
    return out


def _tablesample(
    ledger: Ledger,
    model: str,
    version: str | None,
    spans: list[Span],
    pct: float,
    seed: int,
    features: bool,
    labelled_only: bool,
) -> list[pd.DataFrame]:
    # Each sampled row finds its partner by the unique (model, request_id) index — a lateral
    # subquery, not a join the planner may turn into a scan of the other whole table.
    pr = predictions
    if labelled_only:
        ls = sa.tablesample(
            prediction_labels, sa.func.system(pct), name="ls", seed=sa.literal(seed)
        )
        fields = [pr.c.id, pr.c.ts, pr.c.score, pr.c.version] + (
            [pr.c.features] if features else []
        )
        p: Any = (
            sa.select(*fields)
            .where(pr.c.model == ls.c.model, pr.c.request_id == ls.c.request_id)
            .lateral("p")
        )
        cols = [p.c.id, p.c.ts, p.c.score, p.c.version, ls.c.label]
        source: Any = ls.join(p, sa.true())
    else:
        p = sa.tablesample(pr, sa.func.system(pct), name="ps", seed=sa.literal(seed))
        lab = prediction_labels
        label = (
            sa.select(lab.c.label)
            .where(lab.c.model == p.c.model, lab.c.request_id == p.c.request_id)
            .scalar_subquery()
            .label("label")
        )
        cols = [p.c.id, p.c.ts, p.c.score, p.c.version, label]
        source = p
    if features:
        cols.append(p.c.features)
    where = [sa.or_(*[sa.and_(p.c.ts >= s.start, p.c.ts < s.end) for s in spans])]
    where.append((ls.c.model if labelled_only else p.c.model) == model)
    if version is not None:
        where.append(p.c.version == version)
    stmt = sa.select(*cols).select_from(source).where(*where)
    with ledger.engine.connect() as conn:
        # The driver's tuples as they are (psycopg2 already gives datetimes, floats, text and
        # parsed JSON): SQLAlchemy's per-row processing doubled the time of this read.
        frame = _frame(conn.execute(stmt).cursor.fetchall(), cols, features)
    return [frame[(frame["ts"] >= s.start) & (frame["ts"] < s.end)] for s in spans]


def first_served(ledger: Ledger, model: str, version: str) -> dt.datetime | None:
    p = predictions
    stmt = sa.select(sa.func.min(p.c.ts)).where(p.c.model == model, p.c.version == version)
    with ledger.engine.connect() as conn:
        found = conn.execute(stmt).scalar()
    return found  # type: ignore[no-any-return]


def latest_monitor_run(ledger: Ledger, model: str) -> dict[str, Any] | None:
    """The newest ``monitor_runs`` row of ``model`` (its details hold every window's result
    and the CBPE calibration the next run may reuse), or None."""
    m = monitor_runs
    stmt = sa.select(m).where(m.c.model == model).order_by(m.c.id.desc()).limit(1)
    with ledger.engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


def calibration_fit(ledger: Ledger, row_id: int) -> tuple[str, dict[str, Any] | None] | None:
    """The Airflow run id of monitor run ``row_id`` and the CBPE calibration it fitted
    (``dump_calibration``'s record; None if it fitted none), or None when that row is gone."""
    m = monitor_runs
    with ledger.engine.connect() as conn:
        row = conn.execute(sa.select(m.c.run_id, m.c.details).where(m.c.id == row_id)).first()
    if row is None:
        return None
    record = (row.details or {}).get("calibration") or {}
    return row.run_id, record.get("fit")
