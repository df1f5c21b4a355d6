"""Time per monitor run over millions of logged predictions (PostgreSQL), and how it grows.

    .venv/bin/python bench/monitor_scale.py [--rows 1000000 10000000] [--baseline-max 1000000]

For each size, a fresh database on the PostgreSQL at 127.0.0.1:5432 is filled with that many
logged predictions of one champion (SQL ``generate_series``: 28 days, Elec2's 5 features as
JSON, a score, labels on 70 % of them; then ``VACUUM ANALYZE``, as autovacuum would) and
``monitor.run.run_monitor`` runs for real — registry (a real MLflow store with an Elec2
champion and its drift reference), counts, samples, metrics with intervals, CBPE, drift,
verdict, ledger row — with elec2's monitor defaults (24 h windows, 28 of them):

* **first run**: the model's hourly counts do not exist yet, so they are built from the
  whole log (once per model);
* **steady runs** (3, median): one more hour of predictions is logged and one earlier day's
  predictions get their labels (``generate_series`` again), then the monitor runs at the
  next hour, as the hourly schedule does: the open window and the window that got labels
  are computed, the other closed windows are reused from the previous run;
* **no reuse**: the last steady run's clock again with ``reuse=False`` (every window
  computed, the calibration kept), and whether its windows equal the steady run's exactly;
* **next period**: the first run after the next window boundary (a day later): the CBPE
  calibration is refitted, so every window with an estimate is computed again (once a day);
* **old path** (sizes up to ``--baseline-max``): the reads the monitor made before this
  change, in the same process — every score and label of the 28 windows plus the newest
  window's features (``window_rows``); its metric and CBPE computation on those rows is not
  timed, so the ratio understates the old cost.

The database is dropped afterwards (10 M rows are ~3.5 GB on disk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
END = dt.datetime(2026, 1, 29)
DAYS = 28

PREDICT = """
INSERT INTO predictions (model, request_id, ts, features, score, version, alias, latency_ms)
SELECT 'elec2', :prefix || g, :start + (g * interval '1 second' * :step),
       json_build_object('period', random(), 'nswdemand', random(), 'vicprice', random() * 0.01,
                         'vicdemand', random(), 'transfer', random()),
       random(), :version, 'champion', 1.0
FROM generate_series(0, :n - 1) AS g
"""
# Labels drawn from the score (the model is calibrated: P(label 1) = score), at :share.
LABEL = """
INSERT INTO prediction_labels (model, request_id, label, received_at)
SELECT 'elec2', request_id, (random() < score)::int::text, :received
FROM predictions WHERE model = 'elec2' AND ts >= :start AND ts < :end AND random() < :share
ON CONFLICT DO NOTHING
"""


def _exec(ledger, sql: str, **params) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    with ledger.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def _vacuum(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("VACUUM ANALYZE predictions"))
        conn.execute(sa.text("VACUUM ANALYZE prediction_labels"))
    engine.dispose()


def _context(url: str, home: Path, version_holder: dict, clock: dt.datetime):  # type: ignore[no-untyped-def]
    from costaware.settings import Settings
    from costaware.steps.context import StepContext

    settings = Settings.from_env(
        {
            "COSTAWARE_HOME": str(home),
            "COSTAWARE_DB_URL": url,
            "COSTAWARE_PROJECT_ROOT": str(ROOT),
            "COSTAWARE_MODELS_DIR": str(ROOT / "include" / "models"),
        }
    )
    return StepContext.for_model(
        "elec2", run_id=f"bench-{uuid.uuid4().hex[:6]}", settings=settings, clock=clock
    )


def _champion(ctx, tmp: Path) -> str:  # type: ignore[no-untyped-def]
    from costaware.models.registry import CHAMPION
    from tests.serve import helpers as h

    path = h.train(h.weeks(0, 3), tmp / "m", "v1")
    version = h.register(ctx.registry, path, "bench-1", h.weeks(0, 3), 70.0)
    if ctx.registry.alias("elec2", CHAMPION) is None:
        ctx.registry.move_champion("elec2", None, version)
    return version


def main() -> None:
    import sqlalchemy as sa

    from costaware.monitor import queries
    from costaware.monitor.run import SAMPLE_ROWS, run_monitor
    from costaware.store.ledger import Ledger

    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--baseline-max", type=int, default=1_000_000)
    p.add_argument("--steady-runs", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile the last steady run")
    args = p.parse_args()
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    start = END - dt.timedelta(days=DAYS)
    print(f"SAMPLE_ROWS = {SAMPLE_ROWS}; windows: 24 h × 28; labels on 70 %")
    print(f"load average before: {os.getloadavg()}")
    print(
        "rows         fill s  first run s  steady run s (each)        old path reads s  "
        "old / steady  no reuse s  next period s"
    )
    for n in args.rows:
        name = f"costaware_bench_monitor_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                ledger = Ledger(url)
                ctx = _context(url, Path(tmp) / "home", {}, END)
                version = _champion(ctx, Path(tmp))
                t = time.perf_counter()
                step = DAYS * 86400 / n
                _exec(ledger, PREDICT, prefix="r", start=start, step=step, n=n, version=version)
                _exec(ledger, LABEL, start=start, end=END, share=0.7, received=END)
                _vacuum(url)
                fill = time.perf_counter() - t
                old = float("nan")
                if n <= args.baseline_max:
                    t = time.perf_counter()
                    queries.window_rows(
                        ledger, "elec2", start, END, version=version, features=False
                    )
                    queries.window_rows(
                        ledger, "elec2", END - dt.timedelta(days=1), END, max_rows=200_000
                    )
                    old = time.perf_counter() - t
                t = time.perf_counter()
                out = run_monitor(ctx)
                first = time.perf_counter() - t
                steady: list[float] = []
                recomputed: list[list[int]] = []
                hour = dt.timedelta(hours=1)
                per_hour = n // (DAYS * 24)
                for i in range(args.steady_runs):
                    clock = END + hour * (i + 1)
                    # one more hour served; the labels of one earlier day arrive
                    _exec(
                        ledger,
                        PREDICT,
                        prefix=f"s{i}-",
                        start=clock - hour,
                        step=3600 / per_hour,
                        n=per_hour,
                        version=version,
                    )
                    day = END - dt.timedelta(days=2 + i)
                    _exec(ledger, LABEL, start=day, end=day + hour, share=1.0, received=clock)
                    ctx = _context(url, Path(tmp) / "home", {}, clock)
                    t = time.perf_counter()
                    if args.profile and i == args.steady_runs - 1:
                        import cProfile
                        import pstats

                        with cProfile.Profile() as prof:
                            out = run_monitor(ctx)
                        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
                    else:
                        out = run_monitor(ctx)
                    steady.append(time.perf_counter() - t)
                    recomputed.append(out["windows_recomputed"])
                ctx = _context(url, Path(tmp) / "home", {}, clock)
                t = time.perf_counter()
                full = run_monitor(ctx, reuse=False)
                no_reuse = time.perf_counter() - t
                same = full["windows"] == out["windows"]
                ctx = _context(url, Path(tmp) / "home", {}, END + dt.timedelta(days=1))
                t = time.perf_counter()
                nxt = run_monitor(ctx)
                next_period = time.perf_counter() - t
                med = statistics.median(steady)
                each = ", ".join(f"{s:.2f}" for s in steady)
                print(
                    f"{n:>10,}  {fill:7.1f}  {first:11.2f}  {med:6.2f} ({each})"
                    f"{'':<{max(0, 18 - len(each))}}{old:16.2f}  {old / med:10.1f}×"
                    f"  {no_reuse:10.2f}  {next_period:13.2f}",
                    flush=True,
                )
                cal = {k: v for k, v in (nxt["calibration"] or {}).items() if k != "fit"}
                print(
                    f"            steady runs recomputed windows {recomputed} (the rest reused); "
                    f"no-reuse run's windows identical: {same}; next period recomputed "
                    f"{len(nxt['windows_recomputed'])} windows, calibration {cal}",
                    flush=True,
                )
                newest = out["windows"][0]
                print(
                    f"            last run: {out['verdict']}; counts {out['counts']}; newest "
                    f"window served {newest['served']}, estimate on "
                    f"{newest.get('estimate', {}).get('sample')}; window 1 metric "
                    f"{out['windows'][1].get('points')} sample {out['windows'][1].get('sample')}; "
                    f"drift sample {out['drift'].get('sample')}",
                    flush=True,
                )
                ledger.dispose()
                ctx.ledger.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
