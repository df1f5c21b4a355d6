"""The ``local`` backend: the worker in a subprocess on this machine, with simulated spot.

Spot capacity is simulated honestly: the worker runs as a real process, and an
"interruption" is a real SIGTERM sent while it trains, after which the job resumes from the
last checkpoint in a new process. After ``max_interruptions`` lost attempts the job falls
back to on-demand capacity. Each attempt is billed as (start-up overhead + wall time) × the
price of its capacity, so the ledger holds what the run would have cost on that instance.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from costaware.config import SpotSpec
from costaware.costs.base import Capacity, PriceSource
from costaware.errors import TrainingError
from costaware.models.training.base import Attempt, TrainingJob, TrainingResult
from costaware.models.training.worker import _progress, model_file, n_chunks

log = logging.getLogger(__name__)


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
        job and attempt, so a retried task sees the same interruptions."""
        key = f"{self.spot.seed}:{job.job_id}:{attempt}".encode()
        rng = random.Random(int(hashlib.sha256(key).hexdigest()[:16], 16))
        if total - start < 2 or rng.random() >= self.spot.interruption_rate:
            return None
        return rng.randint(start + 1, total - 1)

    def _run_attempt(self, job_file: Path, job: TrainingJob, stop_after: int | None) -> bool:
        """Run the worker once; True when it finished, False when it was interrupted."""
        workdir = Path(job.workdir)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if stop_after is not None:
            env["COSTAWARE_SIM_RECLAIM_AFTER_CHUNK"] = str(stop_after)
        with (workdir / "worker.log").open("a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "costaware.models.training.worker", str(job_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            deadline = time.monotonic() + self.timeout_minutes * 60
            sent = False
            while proc.poll() is None:
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
        if proc.returncode == 0:
            return True
        if proc.returncode in (143, -signal.SIGTERM):
            return False
        tail = (workdir / "worker.log").read_text()[-2000:]
        raise TrainingError(
            f"worker for job {job.job_id} failed with exit code {proc.returncode}:\n{tail}"
        )

    def submit(self, job: TrainingJob) -> TrainingResult:
        job_file = job.write()
        total = 1 if job.algorithm == "sklearn_logreg" else n_chunks(job)
        attempts: list[Attempt] = []
        overhead_s = self.billing_overhead_minutes * 60
        sources = set()
        for number in range(self.spot.max_interruptions + 2):
            lost = sum(a.interrupted for a in attempts)
            use_spot = self.spot.enabled and lost < self.spot.max_interruptions
            capacity: Capacity = "spot" if use_spot else "on_demand"
            start = _progress(Path(job.workdir))["chunks_done"]
            stop_after = self._interrupt_at(job, number, start, total) if use_spot else None
            price = self.price_source.price(self.instance_type, self.region, capacity)
            sources.add(price.source)
            t0 = time.monotonic()
            finished = self._run_attempt(job_file, job, stop_after)
            seconds = time.monotonic() - t0
            end = _progress(Path(job.workdir))["chunks_done"]
            billed = overhead_s + seconds
            attempts.append(
                Attempt(
                    capacity,
                    start,
                    end,
                    seconds,
                    billed,
                    billed / 3600 * price.usd_per_hour,
                    not finished,
                )
            )
            log.info(
                "attempt %d on %s: chunks %d→%d of %d, %.1fs, %s",
                number + 1,
                capacity,
                start,
                end,
                total,
                seconds,
                "finished" if finished else "INTERRUPTED",
            )
            if finished:
                return TrainingResult(
                    str(model_file(job)),
                    job.algorithm,
                    attempts,
                    ", ".join(sorted(sources)),
                    self.instance_type,
                )
        raise TrainingError(f"job {job.job_id} did not finish after {len(attempts)} attempts")
