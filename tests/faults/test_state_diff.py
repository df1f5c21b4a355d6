"""The equivalence check of the fault harness, on hand-made states: what it must call a loss,
a duplicate, debris or extra spend — and the wall-time tolerance it must not exceed; and its
count of training workers alive at once."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from .state import Finding, Tolerance, diff, failures

TOL = Tolerance(usd=0.002, seconds=20.0)  # 20 s of a $0.384/h instance ≈ $0.0021


def _cost(attempt: str, usd: float | None, status: str = "final", runtime: float = 361.0) -> dict:
    return {
        "model": "m",
        "run_id": "r1",
        "purpose": "retrain",
        "attempt": attempt,
        "usd": usd,
        "status": status,
        "note": "",
        "capacity": "spot",
        "instance_type": "m5.2xlarge",
        "runtime_s": runtime,
        "interruptions": 0,
        "price_source": "static",
        "usage_date": "1996-06-18T00:00:00",
        "tags": {"model": "m"},
    }


def _state() -> dict[str, Any]:
    version = {
        "status": "READY",
        "tags": {"costaware.run_key": "m/b5/r1"},
        "params": {"eta": "0.1"},
        "predictions_sha256": "aa",
        "predictions": [0.25, 0.75],
    }
    return {
        "registry": {
            "exists": True,
            "aliases": {"champion": "2", "previous_champion": "1"},
            "versions": {"1": {**version, "tags": {"costaware.run_key": "m/b4/r0"}}, "2": version},
            "runs": [
                {"run_key": "m/b4/r0", "has_version": True},
                {"run_key": "m/b5/r1", "has_version": True},
            ],
        },
        "ledger": {
            "tables": {
                "batches": [{"model": "m", "batch_id": "b5", "status": "accepted", "rows": 336}],
                "audit": [
                    {
                        "model": "m",
                        "run_id": "r1",
                        "action": "promote",
                        "usd": 0.0149,
                        "status": "done",
                    }
                ],
                "costs": [_cost("job/0", 0.0149)],
            },
            "keys": {
                "batches": ["model", "batch_id"],
                "audit": ["model", "run_id", "action"],
                "costs": ["model", "run_id", "purpose", "attempt"],
            },
        },
        "files": {
            "files": {"data/m/batches/b5.parquet": "sha-b5", "reports/m/b5/index.html": "present"},
            "tmp": [],
            "artifact_files": 10,
        },
    }


def _kinds(found: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.kind, f.where) for f in found)


def test_identical_states_and_wall_time_within_tolerance_are_equal() -> None:
    b = _state()
    b["ledger"]["tables"]["costs"][0].update(usd=0.0149 + 0.0015, runtime_s=361.0 + 14)
    b["ledger"]["tables"]["audit"][0]["usd"] = 0.0149 + 0.0015
    assert diff(_state(), b, TOL) == []


def test_dollars_beyond_the_tolerance_are_a_loss() -> None:
    b = _state()
    b["ledger"]["tables"]["audit"][0]["usd"] = 0.0149 + 0.003
    assert _kinds(diff(_state(), b, TOL)) == [("lost", "ledger.audit[m/r1/promote].usd")]


def test_a_second_version_and_an_orphaned_mlflow_run_are_duplicates() -> None:
    b = _state()
    b["registry"]["versions"]["3"] = copy.deepcopy(b["registry"]["versions"]["2"])
    b["registry"]["runs"].append({"run_key": "m/b5/r1", "has_version": False})
    assert _kinds(diff(_state(), b, TOL)) == [
        ("duplicated", "MLflow runs with no model version (orphans)"),
        ("duplicated", "registry version 3"),
    ]


def test_moved_alias_and_different_predictions_are_losses() -> None:
    b = _state()
    b["registry"]["aliases"]["champion"] = "1"
    b["registry"]["versions"]["2"].update(predictions_sha256="bb", predictions=[0.25, 0.5])
    found = diff(_state(), b, TOL)
    assert _kinds(found) == [
        ("lost", "registry aliases"),
        ("lost", "registry version 2 predictions (max |Δ|)"),
    ]
    assert found[1].faulted == 0.25


def test_an_attempt_the_kill_cost_is_extra_spend_and_explains_the_larger_total() -> None:
    """Attempt 0 died with its task (priced up to the kill); attempt 1 is the clean run's
    attempt, renumbered; the audit row's total includes both."""
    b = _state()
    b["ledger"]["tables"]["costs"] = [_cost("job/0", 0.0101, runtime=240.0), _cost("job/1", 0.0149)]
    b["ledger"]["tables"]["audit"][0]["usd"] = 0.0149 + 0.0101
    found = diff(_state(), b, TOL)
    assert _kinds(found) == [("extra_spend", "ledger.costs[r1/retrain/job/0]")]
    assert failures(found) == []


def test_unknown_spend_is_not_the_clean_runs_dollars() -> None:
    """The clean run priced its one attempt; a faulted run that lost the price (unknown) has
    lost the dollars, even though unknown is honestly not zero."""
    b = _state()
    b["ledger"]["tables"]["costs"] = [_cost("job/0", None, status="lost")]
    found = diff(_state(), b, TOL)
    assert ("lost", "ledger.costs[r1/job/0]") in _kinds(found)


def test_an_attempt_still_running_and_tmp_files_are_debris() -> None:
    b = _state()
    b["ledger"]["tables"]["costs"].append(_cost("job/1", None, status="running"))
    b["files"]["tmp"] = ["data/m/batches/b5.parquet.tmp"]
    b["files"]["files"]["landing/m/b5.parquet"] = "sha-b5"
    assert _kinds(diff(_state(), b, TOL)) == [
        ("leftover", "file landing/m/b5.parquet"),
        ("leftover", "ledger.costs[r1/retrain/job/1] still running"),
        ("leftover", "temporary file data/m/batches/b5.parquet.tmp"),
    ]


def test_missing_and_changed_files_and_rows_are_losses() -> None:
    b = _state()
    del b["files"]["files"]["reports/m/b5/index.html"]
    b["files"]["files"]["data/m/batches/b5.parquet"] = "sha-other"
    b["ledger"]["tables"]["batches"] = []
    assert _kinds(diff(_state(), b, TOL)) == [
        ("lost", "file data/m/batches/b5.parquet (bytes differ)"),
        ("lost", "file reports/m/b5/index.html"),
        ("lost", "ledger.batches[m/b5]"),
    ]


def test_the_worker_watch_counts_only_workers_alive_at_one_moment(tmp_path: Path) -> None:
    """Two live workers coexist; a worker the scan listed but that died before the liveness
    passes (the orphan the retry just killed) does not count beside the new one."""
    from .matrix import WORKER_MODULE, _alive_at_once, training_workers

    home = tmp_path / "home"
    job = str(home / "jobs" / "j" / "job.json")
    # The command line of a training worker, on a process that only sleeps.
    code = "import time; time.sleep(60)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, "-m", WORKER_MODULE, job]) for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 10
        while len(found := training_workers(str(home))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(found) == 2
        both = _alive_at_once(found)
        assert [int(w.split()[1]) for w in both] == sorted(p.pid for p in procs)
        assert all(f"(parent {os.getpid()}," in w and w.endswith(", j)") for w in both), both
        procs[0].kill()
        procs[0].wait()
        # The stale listing still names the dead one: one worker alive, the other.
        assert [w.split()[1] for w in _alive_at_once(found)] == [str(procs[1].pid)]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_workers_own_subprocess_is_not_a_second_worker(tmp_path: Path) -> None:
    """Between fork and exec a worker's subprocess shows the worker's command line (CI saw
    one: the worker importing croniter runs ``file -b python``). One worker, not two."""
    from .matrix import WORKER_MODULE, training_workers

    job = str(tmp_path / "home" / "jobs" / "j" / "job.json")
    # A "worker" that forks a child which never execs, so /proc shows it with the same line.
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nelse:\n    time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "-m", WORKER_MODULE, job])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = psutil.Process(proc.pid).children()
            if children and WORKER_MODULE in children[0].cmdline():
                break
            time.sleep(0.02)
        assert len(children) == 1, "the sleeping worker should have forked one child"
        assert [pid for pid, _created, _job in training_workers(str(tmp_path))] == [proc.pid]
    finally:
        for child in psutil.Process(proc.pid).children():
            child.kill()
        proc.kill()
        proc.wait()
