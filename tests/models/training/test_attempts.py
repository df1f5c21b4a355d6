"""Spend per attempt: a failed job and a task killed mid-training are still paid for.

The old code (35cc885, ``training/local.py`` and ``champion.train_challenger``) priced a job
only when ``submit`` returned: a worker that failed raised ``TrainingError`` and nothing was
recorded (the instance time it used cost $0), and a task killed while its worker trained left
no cost row; its retry started a second worker beside the orphan and wrote one row for the
run with only the retry's (smaller) cost.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costaware.errors import TrainingError
from costaware.models.scoring import load_model_file, score
from costaware.models.training.base import Attempt, run_to_end
from costaware.models.training.local import PIDFILE, WORKER_MODULE, LocalBackend

from ... import factories
from ...steps.helpers import killed_at, process_running
from .jobs import FEATURES, make_backend
from .jobs import make_job as _job

# m5.xlarge in the static price table: $0.192/h on demand, $0.074/h spot.
SPOT_PER_H, ON_DEMAND_PER_H = 0.074, 0.192
OVERHEAD_MIN = 5


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.concat([part for _, part in factories.batches("elec2")[:2]])
    path = tmp_path_factory.mktemp("train") / "train.parquet"
    frame.to_parquet(path)
    return path


class Reports:
    """``on_attempt`` writing every report to a file at once (it survives a SIGKILL); the
    last report of each attempt number is what a ledger keyed by attempt would hold."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, attempt: Attempt) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(dataclasses.asdict(attempt)) + "\n")

    def all(self) -> list[Attempt]:
        return [Attempt(**json.loads(line)) for line in self.path.read_text().splitlines()]

    def final(self) -> list[Attempt]:
        by_number = {a.number: a for a in self.all()}
        return [by_number[n] for n in sorted(by_number)]


def test_failed_job_reports_its_attempt_priced(tmp_path: Path, train_file: Path) -> None:
    """The worker fails (a feature column holds text). Old: TrainingError and no cost at all."""
    bad = pd.read_parquet(train_file).assign(vicprice="n/a")
    bad_file = tmp_path / "bad.parquet"
    bad.to_parquet(bad_file)
    reports = Reports(tmp_path / "reports.jsonl")

    t0 = time.monotonic()
    with pytest.raises(TrainingError, match="failed with exit code 1"):
        run_to_end(_backend(0.0), _job(tmp_path, bad_file, "bad"), on_attempt=reports)
    wall = time.monotonic() - t0

    seen = reports.all()
    assert [(a.number, a.status) for a in seen] == [(0, "running"), (0, "final")]
    assert seen[0].usd is None  # unknown while it runs, never $0
    done = seen[-1]
    assert done.capacity == "spot" and done.note.startswith("failed: ")
    # Billed: the start-up overhead plus at most the wall time of the whole call, at spot.
    assert OVERHEAD_MIN * 60 < done.billed_seconds <= OVERHEAD_MIN * 60 + wall
    assert done.usd == pytest.approx(done.billed_seconds / 3600 * SPOT_PER_H)
    assert done.usd > OVERHEAD_MIN / 60 * SPOT_PER_H


def test_retry_stops_the_orphan_worker_and_keeps_every_attempt(
    tmp_path: Path, train_file: Path
) -> None:
    """The task submitting the job is SIGKILLed while its worker trains; the worker lives on
    as an orphan (every spot attempt here is reclaimed, so it sits waiting for the reclaim
    notice its dead parent will never send). The retry must stop it before starting its own
    worker, bill attempt 0 up to that stop, number its own attempts after it, and end with the
    model of an uninterrupted run."""
    job = _job(tmp_path, train_file, "orphan")
    reports = Reports(tmp_path / "reports.jsonl")
    t0 = time.time()

    killed_at(
        "train_challenger.worker_running",
        tmp_path / "faults",
        lambda: _backend(1.0).submit(job, on_attempt=reports),
    )
    pid = int((Path(job.workdir) / PIDFILE).read_text())
    assert process_running(pid), "the worker should outlive the task that started it"
    assert str(Path(job.workdir) / "job.json").encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert [(a.number, a.status) for a in reports.all()] == [(0, "running")]

    result = run_to_end(_backend(1.0), job, on_attempt=reports)
    elapsed = time.time() - t0

    assert not process_running(pid), "the orphan worker must be stopped, not left training"
    attempts = reports.final()
    assert [a.number for a in attempts] == list(range(len(attempts)))
    assert len(attempts) >= 2
    assert [a.number for a in result.attempts] == [a.number for a in attempts]
    assert all(a.status == "final" and a.usd is not None and a.usd > 0 for a in attempts)
    first = attempts[0]
    assert "its task died" in first.note and first.capacity == "spot"
    assert first.seconds is not None and 0 < first.seconds <= elapsed
    assert first.usd == pytest.approx((OVERHEAD_MIN * 60 + first.seconds) / 3600 * SPOT_PER_H)
    # Each attempt resumes where the one before stopped, and the last one finishes.
    assert all(
        b.start_chunk == a.end_chunk for a, b in zip(attempts[:-1], attempts[1:], strict=True)
    )
    assert attempts[-1].end_chunk == 6 and not attempts[-1].interrupted
    # The orphan was stopped before the retry's own worker started: never two at once.
    assert first.started_at is not None and attempts[1].started_at is not None
    assert first.started_at + first.seconds <= attempts[1].started_at
    # Every try's spend is kept: the killed try's attempt and the retry's attempts.
    total = sum(a.usd for a in attempts if a.usd is not None)
    assert total > first.usd
    assert result.usd == pytest.approx(total)

    clean = run_to_end(_backend(0.0), _job(tmp_path, train_file, "clean"))
    assert len(clean.attempts) == 1 and not clean.attempts[0].interrupted
    frame = pd.read_parquet(train_file)
    np.testing.assert_array_equal(
        score(load_model_file(result.model_path), frame, FEATURES),
        score(load_model_file(clean.model_path), frame, FEATURES),
    )


def _backend(rate: float, max_interruptions: int = 1) -> LocalBackend:
    return make_backend(rate, max_interruptions, OVERHEAD_MIN)


def test_a_worker_of_the_job_with_no_attempt_recorded_is_stopped_before_training(
    tmp_path: Path, train_file: Path
) -> None:
    """A worker of this job that no recorded attempt accounts for (a task the scheduler took
    for dead while it still ran) is stopped before the new attempt's worker starts."""
    job = _job(tmp_path, train_file, "stray")
    job_file = job.write()
    # A process with a training worker's command line for this job, that only sleeps.
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "-m", WORKER_MODULE, str(job_file)]
    )
    try:
        assert process_running(stray.pid)
        result = run_to_end(_backend(0.0), job)
        assert stray.wait(5) == -signal.SIGKILL  # stopped, not left beside the new worker
        assert len(result.attempts) == 1 and result.attempts[0].end_chunk == 6
    finally:
        stray.kill()
        stray.wait()
