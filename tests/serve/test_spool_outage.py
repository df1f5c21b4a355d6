"""No served prediction is lost when the ledger's PostgreSQL stops under load.

A private PostgreSQL cluster (``tests/support/private_pg.py``: initdb + pg_ctl in a temp
folder, a port no other socket can take while it is down; the shared server at
127.0.0.1:5432 is never touched) is the ledger of a real `costaware serve` process.
Requests keep coming while the cluster is stopped for several seconds and started again;
then the server gets SIGTERM. Every id a 200 answer returned must be in the ledger, once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from costaware.models.registry import Registry

from ..support.private_pg import private_postgres
from ..support.servers import free_port
from . import helpers as h


@pytest.mark.slow
def test_postgres_stopped_under_load_loses_no_record(tmp_path: Path) -> None:
    train = h.weeks(0, 3)
    model = h.train(train, tmp_path / "m", "v1", rounds=20)
    reg = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts")
    h.champion(reg, h.register(reg, model, "run-1", train, 70.0))
    payload = {"rows": h.rows(h.weeks(4, 4).iloc[:5])}
    port = free_port()
    with private_postgres() as pg:
        db_url = pg.url()
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
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                deadline = time.monotonic() + 60  # bounded even if the test breaks
                while not stop.is_set() and time.monotonic() < deadline:
                    r = c.post("/predict", json=payload)
                    if r.status_code == 200:
                        ids.extend(p["id"] for p in r.json()["predictions"])
                    else:
                        failures.append(r.status_code)
                    time.sleep(0.005)

        with h.serve_process(env, port, tmp_path / "serve.log") as proc:
            worker = threading.Thread(target=load)
            worker.start()
            time.sleep(3)
            pg.stop("fast")
            served_before_outage = len(ids)
            time.sleep(6)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
                during = c.get("/healthz").json()
            pg.start()
            time.sleep(3)
            stop.set()
            worker.join()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
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
