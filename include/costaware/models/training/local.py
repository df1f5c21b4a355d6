"""The ``local`` backend: the worker in a subprocess on this machine, with simulated spot.

Spot capacity is simulated honestly: the worker runs as a real process, and an
"interruption" is a real SIGTERM sent while it trains, after which the job resumes from the
last checkpoint in a new process. After ``max_interruptions`` lost attempts the job falls
back to on-demand capacity. Each attempt is billed as (start-up overhead + wall time) × the
price of its capacity, so the ledger holds what the run would have cost on that instance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from costaware import faults
from costaware.config import SpotSpec
from costaware.costs.base import Capacity, Price, PriceSource
from costaware.errors import TrainingError
from costaware.models.training.base import (
    Attempt,
    AttemptHook,
    JobStatus,
    TrainingJob,
    TrainingResult,
)
from costaware.models.training.worker import _progress, model_file, n_chunks
from costaware.store import storage

log = logging.getLogger(__name__)
ATTEMPTS = "attempts.json"  # every attempt of the job, across retries of its task
PIDFILE = "worker.pid"  # for people and tests; orphans are found by command line
WORKER_MODULE = "costaware.models.training.worker"
MIRROR_EVERY_S = 5.0  # how often new checkpoints are copied to the job's mirror while it runs


class LocalBackend:
    name = "local"

    def __init__(
        self,
        instance_type: str,
        region: str,
        price_source: PriceSource,
        spot: SpotSpec,
        billing_overhead_minutes: float = 5.0,
        timeout_minutes: float = 30.0,
    ) -> None:
        self.instance_type = instance_type
        self.region = region
        self.price_source = price_source
        self.spot = spot
        self.billing_overhead_minutes = billing_overhead_minutes
        self.timeout_minutes = timeout_minutes

    def _interrupt_at(self, job: TrainingJob, attempt: int, start: int, total: int) -> int | None:
        """The chunk after which this spot attempt is reclaimed, or None. Deterministic per
        job (its ``draw_key``: model and batch) and attempt, so a retried task sees the same
        interruptions, and so does a replay of the same batches."""
        key = f"{self.spot.seed}:{job.draw_key or job.job_id}:{attempt}".encode()
        rng = random.Random(int(hashlib.sha256(key).hexdigest()[:16], 16))
        if total - start < 2 or rng.random() >= self.spot.interruption_rate:
            return None
        return rng.randint(start + 1, total - 1)

    def _run_attempt(self, job_file: Path, job: TrainingJob, stop_after: int | None) -> bool:
        """Run the worker once; True when it finished, False when it was interrupted."""
        workdir = Path(job.workdir)
        # Never two workers on one checkpoint folder: an earlier try's orphan is stopped when
        # its attempt is settled; any other worker of this job still running (one whose try
        # recorded no attempt, or a task the scheduler took for dead) is stopped here.
        _stop_orphan(workdir, job_file)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if stop_after is not None:
            env["COSTAWARE_SIM_RECLAIM_AFTER_CHUNK"] = str(stop_after)
        with (workdir / "worker.log").open("a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(job_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            (workdir / PIDFILE).write_text(str(proc.pid))
            faults.point("train_challenger.worker_running")
            deadline = time.monotonic() + self.timeout_minutes * 60
            sent = False
            mirrored = time.monotonic()
            while proc.poll() is None:
                if job.mirror and time.monotonic() - mirrored > MIRROR_EVERY_S:
                    _mirror(job)
                    mirrored = time.monotonic()
                if time.monotonic() > deadline:
                    proc.kill()
                    raise TrainingError(
                        f"job {job.job_id} exceeded {self.timeout_minutes} "
                        f"min; worker log: {workdir / 'worker.log'}"
                    )
                if (
                    stop_after is not None
                    and not sent
                    and _progress(workdir)["chunks_done"] >= stop_after
                ):
                    proc.send_signal(signal.SIGTERM)  # the spot reclaim notice
                    sent = True
                time.sleep(0.02)
        (workdir / PIDFILE).unlink(missing_ok=True)
        if proc.returncode == 0:
            return True
        if proc.returncode in (143, -signal.SIGTERM):
            return False
        tail = (workdir / "worker.log").read_text()[-2000:]
        raise TrainingError(
            f"worker for job {job.job_id} failed with exit code {proc.returncode}:\n{tail}"
        )

    def submit(self, job: TrainingJob, on_attempt: AttemptHook | None = None) -> str:
        """Run the job on this machine to its end and return its handle (the job's folder).
        The simulation needs this process to send the reclaim notices, so ``submit`` does the
        waiting here; ``poll`` then answers at once. A worker that fails raises
        ``TrainingError`` here, after its attempt was priced and reported."""
        self._drive(job, on_attempt)
        return job.workdir

    def poll(self, handle: str) -> JobStatus:
        workdir = Path(handle)
        if (workdir / "model.done").exists():
            return JobStatus(handle, "completed", "model.done")
        failed = [a for a in _load_attempts(workdir) if a.note.startswith("failed")]
        if failed:
            return JobStatus(handle, "failed", "worker failed", failed[-1].note)
        return JobStatus(handle, "running", f"chunks done: {_progress(workdir)['chunks_done']}")

    def cancel(self, handle: str) -> None:
        _stop_orphan(Path(handle), Path(handle) / "job.json")

    def result(self, handle: str, on_attempt: AttemptHook | None = None) -> TrainingResult:
        """The finished job's model and attempts (already reported while they ran)."""
        status = self.poll(handle)
        if status.state != "completed":
            raise TrainingError(f"local job {handle} has not completed: {status.detail}")
        job = TrainingJob.read(Path(handle) / "job.json")
        return self._result(job, _load_attempts(Path(handle)))

    def _drive(self, job: TrainingJob, on_attempt: AttemptHook | None = None) -> None:
        workdir = Path(job.workdir)
        if job.mirror:  # a retry on another machine: what earlier tries left, checkpoints too
            storage.sync(storage.location(job.mirror), workdir, always=())
        job_file = job.write()
        total = 1 if job.algorithm == "sklearn_logreg" else n_chunks(job)
        overhead_s = self.billing_overhead_minutes * 60
        hook = on_attempt or (lambda a: None)

        def report(a: Attempt) -> None:
            if job.mirror:  # attempts.json and checkpoints are durable before the ledger row
                _mirror(job)
            hook(a)

        attempts = _settle_earlier_tries(workdir, job_file, overhead_s, self._price, report)
        if (workdir / "model.done").exists():  # an earlier try finished training
            return
        while True:
            spot_losses = sum(a.interrupted for a in attempts)
            tries = sum(a.status != "lost" for a in attempts)
            if tries >= self.spot.max_interruptions + 2:
                raise TrainingError(f"job {job.job_id} did not finish after {tries} attempts")
            use_spot = self.spot.enabled and spot_losses < self.spot.max_interruptions
            capacity: Capacity = "spot" if use_spot else "on_demand"
            start = _progress(workdir)["chunks_done"]
            number = len(attempts)
            stop_after = self._interrupt_at(job, number, start, total) if use_spot else None
            running = Attempt(
                capacity,
                start,
                start,
                None,
                None,
                None,
                False,
                number,
                "running",
                started_at=time.time(),
            )
            attempts.append(running)
            _save_attempts(workdir, attempts)
            report(running)
            t0 = time.monotonic()
            try:
                finished = self._run_attempt(job_file, job, stop_after)
            except TrainingError as exc:
                # A failed job still ran on a billed instance: price what it used.
                done = self._priced(running, time.monotonic() - t0, overhead_s, False, workdir)
                attempts[-1] = dataclasses.replace(done, note=f"failed: {str(exc)[:200]}")
                _save_attempts(workdir, attempts)
                report(attempts[-1])
                raise
            attempts[-1] = self._priced(
                running, time.monotonic() - t0, overhead_s, not finished, workdir
            )
            _save_attempts(workdir, attempts)
            report(attempts[-1])
            a = attempts[-1]
            log.info(
                "attempt %d on %s: chunks %d→%d of %d, %.1fs, %s",
                number + 1,
                capacity,
                a.start_chunk,
                a.end_chunk,
                total,
                a.seconds or 0.0,
                "finished" if finished else "INTERRUPTED",
            )
            if finished:
                return

    def _price(self, capacity: str) -> Price:
        return self.price_source.price(
            self.instance_type, self.region, "spot" if capacity == "spot" else "on_demand"
        )

    def _priced(
        self, a: Attempt, seconds: float, overhead_s: float, interrupted: bool, workdir: Path
    ) -> Attempt:
        """The attempt billed as (start-up overhead + wall time) × the price of ITS capacity."""
        billed = overhead_s + seconds
        usd = billed / 3600 * self._price(a.capacity).usd_per_hour
        end = _progress(workdir)["chunks_done"]
        return dataclasses.replace(
            a,
            end_chunk=end,
            seconds=seconds,
            billed_seconds=billed,
            usd=usd,
            interrupted=interrupted,
            status="final",
        )

    def _result(self, job: TrainingJob, attempts: list[Attempt]) -> TrainingResult:
        sources = sorted({self._price(a.capacity).source for a in attempts})
        # Spot's saving: what one uninterrupted on-demand run would have cost (one start-up
        # overhead + the attempts' wall time: a reclaim loses no finished chunk here) minus
        # what every attempt cost — a reclaim's extra start-up counts against spot, and a
        # job reclaimed early can cost more than on demand (a negative saving).
        saved: float | None = None
        notes = [
            "billed: start-up overhead + wall time of each attempt (simulated spot on this "
            "machine); saved: one uninterrupted on-demand run (one start-up + the attempts' "
            "wall time) minus what all attempts cost"
        ]
        if any(a.usd is None for a in attempts):
            notes.append("an attempt's cost is unknown: what spot saved cannot be said")
        elif any(a.capacity == "spot" for a in attempts):
            one_run_s = self.billing_overhead_minutes * 60 + sum(a.seconds or 0.0 for a in attempts)
            on_demand = self._price("on_demand").usd_per_hour
            saved = one_run_s / 3600 * on_demand - sum(a.usd or 0.0 for a in attempts)
        else:
            saved = 0.0  # on demand throughout: nothing saved, nothing lost
        return TrainingResult(
            str(model_file(job)),
            job.algorithm,
            attempts,
            ", ".join(sources),
            self.instance_type,
            metrics=_train_metrics(job),
            tags=dict(job.tags),
            saved_usd=saved,
            notes=notes,
            handle=job.workdir,
        )


def _train_metrics(job: TrainingJob) -> dict[str, float]:
    """``train:auc`` of the finished model on its training rows: the metric SageMaker's
    built-in XGBoost reports under the same name."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from costaware.models.scoring import load_model_file, score

    frame = pd.read_parquet(job.train_path)
    y = frame[job.target]
    if y.nunique() != 2:  # AUC needs exactly two classes (not a regression, not multiclass)
        return {}
    scores = score(load_model_file(model_file(job)), frame, job.features)
    return {"train:auc": float(roc_auc_score(y.astype(int), scores))}


def _mirror(job: TrainingJob) -> None:
    """Copy the job's new files (checkpoints, attempts, model) to its mirror; the pid file
    stays here: a process id means nothing on another machine."""
    assert job.mirror is not None
    storage.sync(Path(job.workdir), storage.location(job.mirror), skip=(PIDFILE,))


def _load_attempts(workdir: Path) -> list[Attempt]:
    path = workdir / ATTEMPTS
    return [Attempt(**a) for a in json.loads(path.read_text())] if path.exists() else []


def _save_attempts(workdir: Path, attempts: list[Attempt]) -> None:
    tmp = workdir / (ATTEMPTS + ".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(a) for a in attempts], indent=1))
    tmp.replace(workdir / ATTEMPTS)


def _settle_earlier_tries(
    workdir: Path,
    job_file: Path,
    overhead_s: float,
    price: Callable[[str], Price],
    report: AttemptHook,
) -> list[Attempt]:
    """The attempts an earlier try of this task recorded. One still ``running`` lost its task
    process: if its worker outlived it, the worker is stopped now (never two workers on one
    checkpoint folder) and the attempt is billed up to now; if the worker is gone too, it is
    billed up to its last sign of life (``_last_sign_of_life``); with none, its cost is
    unknown — recorded as unknown (``lost``), never as $0."""
    attempts = _load_attempts(workdir)
    for i, a in enumerate(attempts):
        if a.status != "running":
            continue
        killed_at = _stop_orphan(workdir, job_file)
        ended, note = killed_at, "its task died; the worker ran on until the retry stopped it"
        if ended is None:  # the worker is gone too: when did it stop?
            ended, note = _last_sign_of_life(workdir)
        end_chunk = _progress(workdir)["chunks_done"]
        if ended is not None and a.started_at is not None and ended >= a.started_at:
            billed = overhead_s + (ended - a.started_at)
            attempts[i] = dataclasses.replace(
                a,
                end_chunk=end_chunk,
                seconds=ended - a.started_at,
                billed_seconds=billed,
                usd=billed / 3600 * price(a.capacity).usd_per_hour,
                status="final",
                note=note,
            )
        else:
            attempts[i] = dataclasses.replace(
                a,
                end_chunk=end_chunk,
                status="lost",
                note="its task and worker died before it wrote anything: cost unknown",
            )
        report(attempts[i])
    _save_attempts(workdir, attempts)
    return attempts


def _last_sign_of_life(workdir: Path) -> tuple[float | None, str]:
    """When a worker that is gone stopped: exactly when it finished the job (``model.done``),
    else at least its last checkpoint (a lower bound, said so in the note)."""
    done = workdir / "model.done"
    if done.exists():
        return done.stat().st_mtime, "its task died; the worker finished the job on its own"
    last = _progress(workdir).get("time")
    if last is not None:
        return float(last), "its task and worker died; billed up to its last checkpoint (at least)"
    return None, ""


def _stop_orphan(workdir: Path, job_file: Path) -> float | None:
    """SIGKILL every worker of this job that is still running; the time they were stopped,
    or None when there was none. Workers are found by their command line (``-m
    costaware.models.training.worker <job file>``), not by the pid file alone: a task killed
    between starting its worker and writing the pid file leaves an orphan no file names."""
    (workdir / PIDFILE).unlink(missing_ok=True)
    wanted = [WORKER_MODULE.encode(), str(job_file).encode()]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if all(w in args for w in wanted) and not _zombie(int(proc.name)):
            found.append(int(proc.name))
    if not found:
        return None
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stopped = time.time()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_zombie(pid) for pid in found):
        time.sleep(0.02)
    log.warning("stopped worker(s) %s left running by an earlier try of this task", found)
    return stopped


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True
