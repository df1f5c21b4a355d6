"""What a training backend takes and returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


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


@dataclass(frozen=True)
class TrainingResult:
    model_path: str
    algorithm: str
    attempts: list[Attempt] = field(default_factory=list)
    price_source: str = ""
    instance_type: str = ""

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
        return sum(a.interrupted for a in self.attempts)

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


class TrainingBackend(Protocol):
    name: str

    def submit(self, job: TrainingJob, on_attempt: AttemptHook | None = None) -> TrainingResult:
        """Run the job to completion (resuming after interruptions) and say what it cost.

        ``on_attempt`` is called when an attempt starts (status ``running``, cost unknown) and
        again when it ends, so every attempt's cost is recorded as it happens — also those of
        a job that fails. A job already (partly) run by an earlier try of the same task
        continues from its checkpoint and its attempts."""
        ...
