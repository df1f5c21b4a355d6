"""Reads of the prediction log for the monitor: counts in SQL, rows only for the windows
the monitor scores."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from costaware.store.ledger import Ledger, prediction_labels, predictions

if TYPE_CHECKING:
    import pandas as pd


def _joined() -> Any:
    p, lab = predictions, prediction_labels
    return p.outerjoin(lab, sa.and_(lab.c.model == p.c.model, lab.c.request_id == p.c.request_id))


def window_counts(
    ledger: Ledger, model: str, start: dt.datetime, end: dt.datetime, version: str | None = None
) -> tuple[int, int]:
    """(logged predictions, how many of them have a label) served in [start, end)."""
    p = predictions
    where = [p.c.model == model, p.c.ts >= start, p.c.ts < end]
    if version is not None:
        where.append(p.c.version == version)
    stmt = sa.select(sa.func.count(), sa.func.count(prediction_labels.c.id)).select_from(_joined())
    with ledger.engine.connect() as conn:
        total, labelled = conn.execute(stmt.where(*where)).one()
    return int(total), int(labelled)


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
    import pandas as pd

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
    frame = pd.DataFrame(rows, columns=[c.name for c in cols]).iloc[::-1].reset_index(drop=True)
    if features:
        feats = pd.DataFrame.from_records(list(frame.pop("features")), index=frame.index)
        frame = pd.concat([frame, feats], axis=1)
    return frame


def first_served(ledger: Ledger, model: str, version: str) -> dt.datetime | None:
    p = predictions
    stmt = sa.select(sa.func.min(p.c.ts)).where(p.c.model == model, p.c.version == version)
    with ledger.engine.connect() as conn:
        found = conn.execute(stmt).scalar()
    return found  # type: ignore[no-any-return]
