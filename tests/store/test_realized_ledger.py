"""The ledger's realized_gains table (migration 0004) on SQLite and PostgreSQL: one row per
(promotion run, later batch), a retry rewrites it, and unknown money stays unknown."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from costaware.store.ledger import Ledger, realized_rows, record_realized


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "model": "elec2",
        "run_id": "run-9",
        "batch_id": "w10",
        "champion_version": "4",
        "replaced_version": "1",
        "metric": "roc_auc",
        "champion_points": 81.5,
        "replaced_points": 52.25,
        "gain_points": 29.25,
        "gain_se": 2.5,
        "rows": 336,
        "expected_gain": 40.0,
        "horizon_batches": 8,
        "usd": None,  # the retrain's cost not known yet
        "data_time": dt.datetime(1996, 7, 22, 23, 30),
    }
    return {**row, **over}


def test_one_row_per_promotion_and_batch_and_unknown_cost_stays_null(db_url: str) -> None:
    ledger = Ledger(db_url)
    record_realized(ledger, **_row())
    record_realized(ledger, **_row(usd=0.0151))  # a retry, now with the cost known
    record_realized(ledger, **_row(batch_id="w11", gain_points=-1.5, gain_se=None))
    record_realized(ledger, **_row(model="weather", batch_id="m030"))
    rows = realized_rows(ledger, "elec2")
    assert [(r["batch_id"], r["gain_points"], r["gain_se"], r["usd"]) for r in rows] == [
        ("w10", 29.25, 2.5, 0.0151),
        ("w11", -1.5, None, None),
    ]
    with ledger.engine.connect() as conn:
        unknown = conn.execute(
            sa.text("SELECT count(*) FROM realized_gains WHERE usd IS NULL")
        ).scalar()
    assert unknown == 2  # w11 and weather's row: NULL, never 0
    ledger.dispose()
