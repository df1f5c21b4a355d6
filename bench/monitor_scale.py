"""How the monitor's reads of the prediction log grow with logged rows (PostgreSQL).

    .venv/bin/python bench/monitor_scale.py [--rows 100000 1000000]

For each size, a fresh database on the PostgreSQL at 127.0.0.1:5432 is filled with that many
logged predictions of one version (SQL ``generate_series``: 28 days, 5 features as JSON, a
score, labels on 70 % of them) and the reads one monitor run makes are timed: the champion's
history (scores and labels of 28 daily windows, cut in Python) and the newest window with
features (the drift input). Registry and drift scoring are not in the timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
END = dt.datetime(2026, 1, 29)

FILL = """
INSERT INTO predictions (model, request_id, ts, features, score, version, alias, latency_ms)
SELECT 'elec2', 'r' || g, :start + (g * interval '1 second' * :step),
       json_build_object('period', random(), 'nswdemand', random(), 'vicprice', random(),
                         'vicdemand', random(), 'transfer', random()),
       random(), '1', 'champion', 1.0
FROM generate_series(0, :n - 1) AS g;
INSERT INTO prediction_labels (model, request_id, label, received_at)
SELECT 'elec2', 'r' || g, (random() < 0.5)::int::text, :start
FROM generate_series(0, :n - 1) AS g WHERE random() < 0.7;
ANALYZE predictions; ANALYZE prediction_labels;
"""


def main() -> None:
    import sqlalchemy as sa

    from costaware.monitor import queries
    from costaware.store.ledger import Ledger

    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    args = p.parse_args()
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    start = END - dt.timedelta(days=28)
    print("rows        fill s   history read s   newest window (features) s   rows read")
    for n in args.rows:
        name = f"costaware_bench_monitor_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
        try:
            ledger = Ledger(url)
            t = time.perf_counter()
            with ledger.engine.begin() as conn:
                for stmt in FILL.split(";"):
                    if stmt.strip():
                        step = 28 * 86400 / n
                        conn.execute(sa.text(stmt), {"start": start, "n": n, "step": step})
            fill = time.perf_counter() - t
            t = time.perf_counter()
            hist = queries.window_rows(ledger, "elec2", start, END, version="1", features=False)
            read = time.perf_counter() - t
            t = time.perf_counter()
            newest = queries.window_rows(ledger, "elec2", END - dt.timedelta(days=1), END)
            newest_s = time.perf_counter() - t
            got = len(hist) + len(newest)
            print(f"{n:>10,}  {fill:7.1f}  {read:15.2f}  {newest_s:27.2f}   {got:,}")
            ledger.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
