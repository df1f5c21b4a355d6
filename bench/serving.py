"""`costaware serve` under load: requests per second and latency with the prediction log on
and off, in one run, and the same with the ledger's PostgreSQL stopped mid-run.

    .venv/bin/python bench/serving.py [--seconds 10] [--concurrency 8] [--outage 10]

Each case is a fresh server process (`costaware serve elec2`, the real app) on a private
PostgreSQL cluster (initdb/pg_ctl in a temp folder, port 27060; the shared server is never
touched) and a SQLite MLflow registry. "log off" is the same app with its prediction log
replaced by one that keeps nothing — the baseline the log's cost is measured against, never a
mode the product offers. A load generator process-side keeps ``--concurrency`` single-row
requests in flight for ``--seconds``; latency is measured by the client. After each run the
server gets SIGTERM and the ledger is counted against the ids the 200 answers returned.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PORT = 37021
# Below the kernel's ephemeral range (32768-60999): while PostgreSQL is stopped mid-run no
# socket bound to port 0 can take its port, so it always starts again.
PG_PORT = 27060

SERVER = """
import sys, uvicorn
from costaware.serve.app import build_service, create_app
service = build_service("elec2")
if sys.argv[1] == "off":
    class NoLog:  # the baseline: nothing is kept
        depth = dropped = shipped = 0
        last_error = ""
        def start(self): pass
        def close(self, deadline_s=0): pass
        def add(self, records): pass
        def is_pending(self, rid): return False
    service.log = NoLog()
uvicorn.run(create_app(service), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            access_log=False)
"""


def _load(seconds: float, concurrency: int, payload: dict) -> tuple[list[float], list[str], int]:
    import httpx

    lat: list[float] = []
    ids: list[str] = []
    errors = [0]
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as c:
            while time.monotonic() < end:
                t = time.perf_counter()
                r = c.post("/predict", json=payload)
                dt_ms = (time.perf_counter() - t) * 1000
                with lock:
                    if r.status_code == 200:
                        lat.append(dt_ms)
                        ids.append(r.json()["predictions"][0]["id"])
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, ids, errors[0]


def _logged(engine: object) -> int:
    import sqlalchemy as sa

    with engine.connect() as conn:  # type: ignore[attr-defined]
        if not sa.inspect(conn).has_table("predictions"):
            return 0
        return int(conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar() or 0)


def _case(
    name: str,
    log: str,
    args: argparse.Namespace,
    env: dict,
    pg: tuple,
    payload: dict,
    outage_s: float = 0,
) -> dict:
    import sqlalchemy as sa

    from tests.serve.test_spool_outage import _as_postgres
    from tests.support.servers import wait_for_port

    db_url, data, folder = pg
    pg_ctl = str(Path(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]))
    engine = sa.create_engine(db_url, pool_pre_ping=True)  # survives the outage case
    before = _logged(engine)
    out = (Path(env["COSTAWARE_HOME"]) / f"serve-{name}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, log, str(PORT)],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(PORT, 120, proc)
    _, warm_ids, _ = _load(1.0, args.concurrency, payload)  # warm-up: not timed, but logged
    outage = None
    if outage_s:

        def stop_and_start() -> None:
            time.sleep(max(args.seconds / 2 - outage_s / 2, 0))
            _as_postgres(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
            time.sleep(outage_s)
            opts = f"-p {PG_PORT} -k {folder} -c listen_addresses=127.0.0.1"
            log_file = str(folder / "pg.log")
            _as_postgres(pg_ctl, "-D", str(data), "-o", opts, "-l", log_file, "-w", "start")

        outage = threading.Thread(target=stop_and_start)
        outage.start()
    lat, ids, errors = _load(args.seconds, args.concurrency, payload)
    if outage is not None:
        outage.join()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    out.close()
    logged = _logged(engine) - before
    engine.dispose()
    a = np.array(lat)
    return {
        "case": name,
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / args.seconds,
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "logged": logged,
        "ids": len(ids) + len(warm_ids),
        "log": log,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--outage", type=float, default=10)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    from costaware.models.registry import Registry
    from tests.serve import helpers as h
    from tests.serve.test_spool_outage import private_postgres

    with tempfile.TemporaryDirectory() as tmp, private_postgres(PG_PORT) as pg:
        home = Path(tmp, "home")
        home.mkdir()
        train = h.weeks(0, 3)
        reg = Registry(f"sqlite:///{tmp}/mlflow.db", Path(tmp, "mlartifacts"))
        h.champion(reg, h.register(reg, h.train(train, Path(tmp), "v1"), "run-1", train, 70.0))
        env = {
            "COSTAWARE_HOME": str(home),
            "COSTAWARE_DB_URL": pg[0],
            "COSTAWARE_MLFLOW_URI": f"sqlite:///{tmp}/mlflow.db",
            "COSTAWARE_MODELS_DIR": str(h.models_dir(Path(tmp, "models"))),
            "OMP_NUM_THREADS": "1",
        }
        payload = h.rows(h.weeks(4, 4).iloc[:1])[0]
        rows = []
        for r in range(args.rounds):  # off/on interleaved: the machine's load drifts
            rows.append(_case(f"log off (round {r + 1})", "off", args, env, pg, payload))
            rows.append(_case(f"log on (round {r + 1})", "on", args, env, pg, payload))
        if args.outage:
            name = f"log on, PostgreSQL stopped {args.outage:.0f} s"
            rows.append(_case(name, "on", args, env, pg, payload, outage_s=args.outage))
    print(
        f"\n{args.concurrency} clients, {args.seconds:.0f} s each, single-row /predict, "
        f"{os.cpu_count()} cores (load generator on the same machine)"
    )
    print("case                               req/s   p50 ms   p99 ms  errors  answered  logged")
    for r in rows:
        if r is None:
            continue
        logged = "-" if r["log"] == "off" else f"{r['logged']}"
        # answered: ids returned by 200 answers, warm-up included (it is logged too).
        print(
            f"{r['case']:<33} {r['rps']:7.1f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:7d}"
            f"  {r['ids']:8d}  {logged:>6}"
        )
    offs = [r for r in rows if r["log"] == "off"]
    ons = [r for r in rows if r["log"] == "on" and "stopped" not in r["case"]]
    for q in ("p50", "p99"):
        diffs = [b[q] - a[q] for a, b in zip(offs, ons, strict=True)]
        median = float(np.median(diffs))
        print(f"logging adds {median:+.2f} ms at {q} (median of the rounds; goal: p99 < 1 ms)")


if __name__ == "__main__":
    main()
