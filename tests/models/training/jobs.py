"""Training jobs and local backends for the backend tests."""

from __future__ import annotations

from pathlib import Path

from costaware.config import SpotSpec
from costaware.costs.prices import StaticPriceSource
from costaware.models.training import TrainingJob
from costaware.models.training.local import LocalBackend

FEATURES = ["period", "nswdemand", "vicprice", "vicdemand", "transfer"]


def make_job(tmp: Path, train: Path, name: str, algorithm: str = "xgboost") -> TrainingJob:
    # Subsampling on purpose: resume must still be exact.
    return TrainingJob(
        job_id=name,
        algorithm=algorithm,
        train_path=str(train),
        features=FEATURES,
        target="class",
        params={"max_depth": 4, "subsample": 0.7, "colsample_bytree": 0.8},
        num_boost_round=60,
        chunk_rounds=10,
        seed=3,
        workdir=str(tmp / name),
    )


def make_backend(rate: float, max_interruptions: int = 2, overhead_min: float = 5) -> LocalBackend:
    return LocalBackend(
        "m5.xlarge",
        "us-east-1",
        StaticPriceSource(),
        SpotSpec(interruption_rate=rate, max_interruptions=max_interruptions),
        billing_overhead_minutes=overhead_min,
    )
