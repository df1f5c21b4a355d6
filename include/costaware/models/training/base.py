"""What a training backend takes and returns."""

from __future__ import annotations

import json
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
    workdir: str

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
    capacity: str  # spot | on_demand
    start_chunk: int
    end_chunk: int
    seconds: float
    billed_seconds: float
    usd: float
    interrupted: bool


@dataclass(frozen=True)
class TrainingResult:
    model_path: str
    algorithm: str
    attempts: list[Attempt] = field(default_factory=list)
    price_source: str = ""
    instance_type: str = ""

    @property
    def usd(self) -> float:
        return sum(a.usd for a in self.attempts)

    @property
    def runtime_s(self) -> float:
        return sum(a.seconds for a in self.attempts)

    @property
    def billed_s(self) -> float:
        return sum(a.billed_seconds for a in self.attempts)

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
            usd=round(self.usd, 6),
            runtime_s=round(self.runtime_s, 3),
            billed_s=round(self.billed_s, 1),
            interruptions=self.interruptions,
            capacity=self.capacity,
        )
        return d


class TrainingBackend(Protocol):
    name: str

    def submit(self, job: TrainingJob) -> TrainingResult:
        """Run the job to completion (resuming after interruptions) and say what it cost."""
        ...
