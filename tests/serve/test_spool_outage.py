"""No served prediction is lost when the ledger's PostgreSQL stops under load.

A private PostgreSQL cluster (initdb + pg_ctl in a temp folder, its own port: the shared
server at 127.0.0.1:5432 is never touched) is the ledger of a real `costaware serve` process.
Requests keep coming while the cluster is stopped for several seconds and started again;
then the server gets SIGTERM. Every id a 200 answer returned must be in the ledger, once.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from costaware.models.registry import Registry

from . import helpers as h

PG_PORT = 37050
PORT = 37012


def _as_postgres(*cmd: str) -> None:
    """PostgreSQL refuses to run as root: its tools run as the postgres user."""
    done = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd[0]} failed: {done.stdout}{done.stderr}"


@contextlib.contextmanager
def private_postgres(port: int = PG_PORT) -> Iterator[tuple[str, Path, Path]]:
    """A PostgreSQL cluster of this test's own; yields (URL, data folder, its folder). The
    folder is outside pytest's (which only root may enter)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("no /usr/lib/postgresql/*/bin/initdb: install the postgresql package")
    bin_dir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="costaware-pg-"))
    os.chmod(folder, 0o755)
    shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    pg_ctl = str(bin_dir / "pg_ctl")
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    start = (
        pg_ctl,
        "-D",
        str(data),
        "-o",
        opts,
        "-l",
        str(folder / "pg.log"),
        "-w",
        "-t",
        "300",
        "start",
    )
    _as_postgres(*start)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", data, folder
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_postgres_stopped_under_load_loses_no_record(tmp_path: Path) -> None:
    train = h.weeks(0, 3)
    model = h.train(train, tmp_path / "m", "v1", rounds=20)
    reg = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts")
    h.champion(reg, h.register(reg, model, "run-1", train, 70.0))
    payload = {"rows": h.rows(h.weeks(4, 4).iloc[:5])}
    with private_postgres() as (db_url, data, pg_folder):
        pg_ctl = str(Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]))
        env = {
            "COSTAWARE_HOME": str(tmp_path / "home"),
            "COSTAWARE_DB_URL": db_url,
            "COSTAWARE_MLFLOW_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "COSTAWARE_MODELS_DIR": str(h.models_dir(tmp_path / "models")),
        }
        ids: list[str] = []
        failures: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=10) as c:
                deadline = time.monotonic() + 60  # bounded even if the test breaks
                while not stop.is_set() and time.monotonic() < deadline:
                    r = c.post("/predict", json=payload)
                    if r.status_code == 200:
                        ids.extend(p["id"] for p in r.json()["predictions"])
                    else:
                        failures.append(r.status_code)
                    time.sleep(0.005)

        with h.serve_process(env, PORT, tmp_path / "serve.log") as proc:
            worker = threading.Thread(target=load)
            worker.start()
            time.sleep(3)
            _as_postgres(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
            served_before_outage = len(ids)
            time.sleep(6)
            with httpx.Client(base_url=f"http://127.0.0.1:{PORT}") as c:
                during = c.get("/healthz").json()
            start_opts = f"-p {PG_PORT} -k {pg_folder} -c listen_addresses=127.0.0.1"
            _as_postgres(
                pg_ctl, "-D", str(data), "-o", start_opts, "-l", str(pg_folder / "pg.log"),
                "-w", "start",
            )  # fmt: skip
            time.sleep(3)
            stop.set()
            worker.join()
            with httpx.Client(base_url=f"http://127.0.0.1:{PORT}") as c:
                metrics = c.get("/metrics").text
            proc.terminate()  # SIGTERM: the server flushes its log before it exits
            # uvicorn re-raises the signal once its shutdown (our lifespan's) has finished.
            assert proc.wait(timeout=60) in (0, -15)
        assert "Application shutdown complete." in (tmp_path / "serve.log").read_text()
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                logged = [r[0] for r in conn.execute(sa.text("SELECT request_id FROM predictions"))]
        finally:
            engine.dispose()
        print(
            f"served {len(ids)} rows ({served_before_outage} before the outage), "
            f"{during['log']['pending']} waiting while PostgreSQL was down, logged {len(logged)}"
        )
        assert not failures, f"requests not served: {failures[:10]}"
        assert len(ids) > served_before_outage > 0  # served on through the outage
        assert during["log"]["pending"] > 0 and during["log"]["ledger"] != "ok", during
        assert "costaware_serve_log_dropped_records 0.0" in metrics
        assert len(logged) == len(set(logged))  # none twice
        assert set(logged) == set(ids), (len(logged), len(ids))  # none lost
        assert not list((tmp_path / "home" / "spool" / "elec2").glob("*.jsonl"))
