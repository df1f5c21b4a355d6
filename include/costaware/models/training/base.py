"""What a training backend takes and returns: one contract for every backend.

A backend has four verbs. ``submit`` starts a job (or finds the one an earlier try of the
same task started: a job's handle derives from the job, never from the try), ``poll`` says
where it is, ``cancel`` stops it, and ``result`` prices a job that has ended and says what it
made. ``run_to_end`` strings them together for a caller that may wait in its own process; a
caller that must not hold a worker slot (Airflow) submits, defers to a trigger, and asks for
the result when the trigger fires.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class TrainingJob:
    """Everything a worker needs, written to ``job.json`` in the job's folder."""

    job_id: str
    algorithm: str  # xgboost | sklearn_hgb | sklearn_logreg
    train_path: str  # Parquet with the features and the target
    features: list[str]
    target: str
    params: dict[str, Any]
    num_boost_round: int
    chunk_rounds: int
    seed: int
    workdir: str  # on this machine's disk: the worker reads and writes files here
    # Where the job's folder is kept durably when that is not ``workdir`` itself (an object
    # storage URL): a retry on another machine resumes from the checkpoints copied there.
    mirror: str | None = None
    # Cost-allocation tags of the model (model, team, env, purpose): put on the cloud job and
    # on every ledger row of its attempts.
    tags: dict[str, str] = field(default_factory=dict)
    # The model's config (``ModelConfig.model_dump(mode="json")``): target kind, feature
    # types and categories, algorithm (``costaware.models.algorithms``). None: a binary model
    # on numeric features, as every job was before model kinds.
    model_spec: dict[str, Any] | None = None
    # What the simulated spot reclaims of the ``local`` backend are drawn from (empty: the
    # job id). The retrain step passes model/batch, so replaying the same batches reclaims
    # the same attempts whatever the run's id (a replay's runs are named by the wall clock).
    draw_key: str = ""

    def write(self) -> Path:
        path = Path(self.workdir) / "job.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, path: str | Path) -> TrainingJob:
        return cls(**json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class Attempt:
    """One try on one instance. ``usd`` is None when what it cost is not known (its process
    died with the task that ran it, at a time nobody saw); ``status`` says which:
    ``running`` (started, not finished yet), ``final`` (priced), ``lost`` (unknown)."""

    capacity: str  # spot | on_demand
    start_chunk: int
    end_chunk: int
    seconds: float | None
    billed_seconds: float | None
    usd: float | None
    interrupted: bool
    number: int = 0
    status: str = "final"
    note: str = ""
    started_at: float | None = None  # wall clock (epoch seconds)
    # Spot reclaims the cloud absorbed inside this attempt (SageMaker restarts a managed spot
    # job in place from its checkpoints: one attempt, several interruptions).
    reclaims: int = 0

    @classmethod
    def of_cloud_job(cls, spot: bool, usd: float | None, status: str) -> Attempt:
        """A cloud job as one attempt (the cloud restarts a reclaimed job inside it), started
        now; its seconds come from the job's own description when it ends."""
        import datetime as dt

        return cls(
            capacity="spot" if spot else "on_demand",
            start_chunk=0,
            end_chunk=0,
            seconds=None,
            billed_seconds=None,
            usd=usd,
            interrupted=False,
            number=0,
            status=status,
            started_at=dt.datetime.now(dt.UTC).timestamp(),
        )


@dataclass(frozen=True)
class TrainingResult:
    model_path: str
    algorithm: str
    attempts: list[Attempt] = field(default_factory=list)
    price_source: str = ""
    instance_type: str = ""
    metrics: dict[str, float] = field(default_factory=dict)  # the backend's final metrics
    tags: dict[str, str] = field(default_factory=dict)  # the tags the job ran under
    # What spot saved against the same run on demand; None when the backend cannot say.
    saved_usd: float | None = None
    notes: list[str] = field(default_factory=list)  # what the numbers rest on, in words
    handle: str = ""  # the job's handle at its backend (SageMaker job name, local folder)

    @property
    def usd(self) -> float | None:
        """What the job cost: the sum of its attempts, or None when any attempt's is unknown."""
        known = [a.usd for a in self.attempts]
        return None if any(u is None for u in known) else sum(u for u in known if u is not None)

    @property
    def known_usd(self) -> float:
        return sum(a.usd for a in self.attempts if a.usd is not None)

    @property
    def runtime_s(self) -> float:
        return sum(a.seconds for a in self.attempts if a.seconds is not None)

    @property
    def billed_s(self) -> float:
        return sum(a.billed_seconds for a in self.attempts if a.billed_seconds is not None)

    @property
    def interruptions(self) -> int:
        return sum(int(a.interrupted) + a.reclaims for a in self.attempts)

    @property
    def capacity(self) -> str:
        kinds = {a.capacity for a in self.attempts}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            usd=None if self.usd is None else round(self.usd, 6),
            runtime_s=round(self.runtime_s, 3),
            billed_s=round(self.billed_s, 1),
            interruptions=self.interruptions,
            capacity=self.capacity,
        )
        return d


AttemptHook = Callable[[Attempt], None]
State = Literal["running", "completed", "failed"]


@dataclass(frozen=True)
class JobStatus:
    """Where a job is. ``detail`` is the backend's own words (``InProgress/Training``,
    ``Stopped/MaxWaitTimeExceeded``), so a failure names what the cloud said."""

    handle: str
    state: State
    detail: str = ""
    reason: str = ""

    @property
    def terminal(self) -> bool:
        return self.state != "running"


class TrainingBackend(Protocol):
    name: str

    def submit(self, job: TrainingJob, on_attempt: AttemptHook | None = None) -> str:
        """Start the job and return its handle. Idempotent: a job an earlier try of the same
        task started is attached to, never started twice (the local backend continues it
        from its checkpoint and its attempts).

        ``on_attempt`` is called when an attempt starts (status ``running``, cost unknown) and
        again when it ends (``result``), so every attempt's cost is recorded as it happens —
        also those of a job that fails."""
        ...

    def poll(self, handle: str) -> JobStatus:
        """Where the job is now; ``running`` until the backend says it ended."""
        ...

    def cancel(self, handle: str) -> None:
        """Stop the job (no effect on one that has ended)."""
        ...

    def result(self, handle: str, on_attempt: AttemptHook | None = None) -> TrainingResult:
        """What an ended job made and cost, its attempts priced and reported to
        ``on_attempt``. Raises ``TrainingError`` for a job that did not complete (after
        reporting what it cost) or has not ended yet."""
        ...


def run_to_end(
    backend: TrainingBackend,
    job: TrainingJob,
    on_attempt: AttemptHook | None = None,
    *,
    poll_s: float = 30.0,
    deadline_s: float = 24 * 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> TrainingResult:
    """Submit, wait in this process until the job ends, and return its result. Polling
    always ends: past ``deadline_s`` the job is cancelled (it would go on costing money) and
    ``TrainingError`` says what state it was left in."""
    from costaware.errors import TrainingError

    handle = backend.submit(job, on_attempt)
    waited = 0.0
    status = backend.poll(handle)
    while not status.terminal:
        if waited >= deadline_s:
            backend.cancel(handle)
            raise TrainingError(
                f"training job {handle} still {status.detail or status.state} after "
                f"{waited:.0f} s (deadline {deadline_s:.0f} s): cancelled it; raise the "
                "backend's deadline if the job needs longer"
            )
        sleep(poll_s)
        waited += poll_s
        status = backend.poll(handle)
    return backend.result(handle, on_attempt)
