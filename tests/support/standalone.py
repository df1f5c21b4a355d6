"""``airflow standalone`` (scheduler, DAG processor, triggerer, API server; each task in its
own process) on a test's private state folder and a free port, logged in through the REST API
as a user of the UI would be."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from costaware.app.airflow_env import airflow_env, ensure_airflow_db
from costaware.settings import Settings

from .airflow_api import AirflowApi
from .servers import free_port

READY_S = 240


@contextlib.contextmanager
def airflow_standalone(
    settings: Settings,
    env: dict[str, str] | None = None,
    healthy: tuple[str, ...] = ("scheduler",),
    drop: tuple[str, ...] = (),
    ready_s: float = READY_S,
) -> Iterator[AirflowApi]:
    """Starts it with ``settings``' Airflow environment plus ``env`` (without the variables
    named in ``drop`` or starting with them), waits until the components in ``healthy``
    report healthy, logs in as ``admin`` and yields the API client; stops every process it
    started (its process group) at the end. Its output is in ``<home>/standalone.log``."""
    ensure_airflow_db(settings)
    port = free_port()
    full = {
        **{k: v for k, v in os.environ.items() if not any(k.startswith(d) for d in drop)},
        **airflow_env(settings),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        # Task processes report to the API server's execution API (default port 8080).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
        **(env or {}),
    }
    full.pop("COSTAWARE_DB_URL", None)
    log_path = settings.home / "standalone.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("airflow")), "standalone"],
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = AirflowApi(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + ready_s
        while True:
            try:
                status, health = api.call("GET", "/api/v2/monitor/health")
                if status == 200 and all(health[c]["status"] == "healthy" for c in healthy):
                    break
            except (OSError, KeyError, TypeError):
                pass
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "airflow standalone did not become healthy"
            time.sleep(2)
        pw_file = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
        yield api.login("admin", json.loads(pw_file.read_text())["admin"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
