"""The real thing: Airflow's LocalExecutor runs each task in a supervised process; a task
SIGKILLed at a fault point is marked failed by the supervisor and retried by Airflow.

``dag.test(use_executor=True)`` (``airflow_driver.py``, in a process of its own) with an
execution API server started here. The model config is a copy of ``elec2.yaml`` with
``airflow.retry_delay_seconds: 1`` so a retry does not wait the production 30 s. Each run
starts from the snapshot the step-level reference started from (weeks 0..4 done, week 5
landed) and must end in the reference's final state; the clean run checks that the harness's
chain of steps is the DAG (same run id, same state).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import matrix, state
from .chain import MODEL, Runner

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

AIRFLOW_CASES = [
    "",  # a clean run: the harness's chain of steps and the DAG leave the same state
    "train_challenger.worker_running",  # killed while its training worker runs
    "promote_or_reject.aliases_moved",  # killed between the alias move and the audit row
]
FAULT = "SIGKILL under Airflow's LocalExecutor (Airflow retries)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _models_copy(root: Path) -> Path:
    folder = root / "models"
    folder.mkdir(parents=True, exist_ok=True)
    src = matrix.PROJECT_ROOT / "include" / "models" / f"{MODEL}.yaml"
    cfg = yaml.safe_load(src.read_text())
    cfg["airflow"] = {**(cfg.get("airflow") or {}), "retries": 2, "retry_delay_seconds": 1}
    (folder / f"{MODEL}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def airflow_run(
    sqlite_matrix: matrix.Matrix, airflow_home: Path, fault_root: Path
) -> Iterator[Callable[[list[str], Path], dict[str, Any]]]:
    """Runs the DAG once (``dag.test(use_executor=True)``) with the given points armed."""
    root = fault_root / "airflow"
    root.mkdir(exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "COSTAWARE_HOME": str(sqlite_matrix.backend.home),
        "COSTAWARE_PROJECT_ROOT": str(matrix.PROJECT_ROOT),
        "COSTAWARE_MODELS_DIR": str(_models_copy(root)),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "costaware-fault-harness",
        "GX_ANALYTICS_ENABLED": "false",
    }
    env.pop("COSTAWARE_DB_URL", None)
    db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert (
        db.startswith("sqlite:///") and Path(db.removeprefix("sqlite:///")).stat().st_size > 1 << 16
    ), (
        f"Airflow's metadata DB {db} is not migrated (airflow_home fixture: {airflow_home}; "
        f"marker: {(airflow_home / '.costaware-db-ready').exists()})"
    )
    log = (root / "api-server.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("airflow")),
            "api-server",
            "--apps",
            "execution",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=5):
                    break
            except OSError:
                pass
            assert server.poll() is None, (root / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the execution API server did not start"
            time.sleep(1)

        def run(faults: list[str], faults_dir: Path) -> dict[str, Any]:
            faults_dir.mkdir(parents=True, exist_ok=True)
            case_env = {
                **env,
                "COSTAWARE_FAULTS": ",".join(faults),
                "COSTAWARE_FAULTS_DIR": str(faults_dir),
            }
            arg = json.dumps({"logical_date": sqlite_matrix.clock.isoformat()})
            with (faults_dir / "driver.log").open("w") as out:
                done = subprocess.run(
                    [sys.executable, "-m", "tests.faults.airflow_driver", arg],
                    cwd=matrix.PROJECT_ROOT,
                    env=case_env,
                    stdout=subprocess.PIPE,
                    stderr=out,
                    text=True,
                    timeout=600,
                )
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            assert lines, (
                f"driver failed ({done.returncode}); log {faults_dir / 'driver.log'}:\n"
                + ((faults_dir / "driver.log").read_text()[-3000:])
            )
            return dict(json.loads(lines[-1][len("RESULT ") :]))

        yield run
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.mark.parametrize("point", AIRFLOW_CASES, ids=lambda p: p or "clean")
def test_airflow_retry_converges_to_clean_state(
    sqlite_matrix: matrix.Matrix,
    airflow_run: Callable[[list[str], Path], dict[str, Any]],
    point: str,
    fault_results: Path,
) -> None:
    m = sqlite_matrix
    t0 = time.monotonic()
    ref = m.reference("retrain")
    m.backend.restore(ref.before[0])  # weeks 0..4 done, week 5 landed
    faults_dir = m.backend.root / "airflow-cases" / (point or "clean")
    workers = matrix.WorkerWatch(m.backend.home)
    workers.start(None, "train_challenger", 1)
    try:
        out = airflow_run([point] if point else [], faults_dir)
    finally:
        workers.stop()
        workers.end_workers()
    run = Runner(m.backend.env(), "capture", m.clock, faults_dir / "capture")
    res = matrix.CaseResult(
        "sqlite",
        "retrain",
        point or "(no fault)",
        FAULT if point else "Airflow clean run (harness check)",
    )
    res.fired = not point or (faults_dir / f"costaware-fault-{point}").exists()
    res.tries = {t: v["try"] for t, v in out["tasks"].items()}
    res.findings = state.diff(ref.captures[-1], m.capture(run), m.tol)
    res.max_workers, res.orphan_workers = workers.max_alive, workers.orphans
    if res.max_workers > 1:
        res.findings.append(
            state.Finding("duplicated", "training workers alive at once", 1, res.max_workers)
        )
    if out["state"] != "success":
        res.error = f"DAG run ended {out['state']}: {out['tasks']}"
    if point:
        task = point.split(".")[0]
        if out["tasks"].get(task, {}).get("try", 0) < 2:
            res.error = res.error or f"{task} was not retried by Airflow: {out['tasks']}"
    res.seconds = time.monotonic() - t0
    matrix.record(fault_results, res)
    assert res.passed, res.report()
