"""The training worker: ``python -m costaware.models.training.worker JOB.json``.

Trains in fixed chunks of rounds and checkpoints after each one (algorithms that cannot
continue from a checkpoint train in one chunk; ``costaware.models.algorithms`` fits).
Chunk ``i`` always uses seed ``job.seed + i`` and starts from the state of chunk ``i-1``,
so a run interrupted and resumed from its checkpoint gives exactly the model of an
uninterrupted run, even with row and column subsampling. On SIGTERM (a spot interruption
notice) it stops after nothing more than the chunk in flight is lost.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import time
from pathlib import Path
from typing import Any

from costaware.config import INCREMENTAL_ALGORITHMS, ModelConfig
from costaware.models.algorithms import Model, model_spec
from costaware.models.training.base import TrainingJob

CHECKPOINT = "checkpoint"
PROGRESS = "progress.json"


def _progress(workdir: Path) -> dict[str, Any]:
    p = workdir / PROGRESS
    return json.loads(p.read_text()) if p.exists() else {"chunks_done": 0}


def _save_progress(workdir: Path, chunks_done: int, total: int) -> None:
    tmp = workdir / (PROGRESS + ".tmp")
    tmp.write_text(
        json.dumps({"chunks_done": chunks_done, "chunks_total": total, "time": time.time()})
    )
    tmp.replace(workdir / PROGRESS)


def checkpoint_path(workdir: Path, chunks_done: int) -> Path:
    return workdir / f"{CHECKPOINT}_{chunks_done:05d}"


def job_config(job: TrainingJob) -> ModelConfig:
    """The model's config the job was written with (a job without one: binary, numeric)."""
    from costaware.models.algorithms import default_config

    if job.model_spec is not None:
        return ModelConfig.model_validate(job.model_spec)
    return default_config(job.features, job.target, job.algorithm)


def n_chunks(job: TrainingJob) -> int:
    """Chunks of ``chunk_rounds`` rounds; 1 for an algorithm that cannot continue from a
    checkpoint (sklearn, custom, sklearn_logreg)."""
    if job.algorithm not in INCREMENTAL_ALGORITHMS:
        return 1
    return -(-job.num_boost_round // job.chunk_rounds)


def _load_xy(job: TrainingJob, cfg: ModelConfig) -> tuple[Any, Any, dict[str, list[str]]]:
    import pandas as pd

    from costaware.models.algorithms import prepare

    frame = pd.read_parquet(job.train_path)
    # The target was encoded by the task that wrote the job (0/1, class index, float).
    return prepare(frame, cfg, encoded=True)


def _train_chunk(job: TrainingJob, cfg: ModelConfig, i: int, state: Any, x: Any, y: Any) -> Any:
    from costaware.models.algorithms import fit_chunk

    rounds = min(job.chunk_rounds, job.num_boost_round - i * job.chunk_rounds)
    return fit_chunk(cfg, x, y, state, rounds, job.seed + i, params=job.params)


def _save(state: Any, path: Path) -> None:
    """Pickle ``state`` beside ``path`` and rename it there: whole or not at all. (XGBoost
    and LightGBM boosters pickle their own exact model format.)"""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        pickle.dump(state, f)
    tmp.replace(path)


def _load(path: Path) -> Any:
    with path.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - our own checkpoint, written above


def model_file(job: TrainingJob) -> Path:
    return Path(job.workdir) / "model.pkl"


def run(job: TrainingJob) -> Path:
    workdir = Path(job.workdir)
    stop = {"now": False}

    def on_term(signum: int, frame: Any) -> None:  # spot interruption notice
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    cfg = job_config(job)
    x, y, categories = _load_xy(job, cfg)
    done = _progress(workdir)["chunks_done"]
    state = _load(checkpoint_path(workdir, done)) if done else None
    total = n_chunks(job)
    # Spot simulation (local backend): after this chunk the worker waits for the reclaim
    # notice the backend sends, so the interruption lands at a reproducible point.
    hold_after = int(os.environ.get("COSTAWARE_SIM_RECLAIM_AFTER_CHUNK", "-1"))
    for i in range(done, total):
        if i == hold_after:
            deadline = time.monotonic() + 30
            while not stop["now"] and time.monotonic() < deadline:
                time.sleep(0.01)
        if stop["now"]:
            print(f"interrupted after chunk {i}/{total}", flush=True)
            sys.exit(143)
        state = _train_chunk(job, cfg, i, state, x, y)
        # The checkpoint of chunk i+1 is complete on disk before progress names it, and the
        # one before is removed only after: a kill at any point resumes from a consistent
        # pair, never from chunk i+1's booster with progress still saying i.
        _save(state, checkpoint_path(workdir, i + 1))
        # Go on from what was saved, as a resumed run does: both see the same state.
        state = _load(checkpoint_path(workdir, i + 1))
        _save_progress(workdir, i + 1, total)
        for old in workdir.glob(f"{CHECKPOINT}_*"):
            if old.stem != checkpoint_path(workdir, i + 1).stem:
                old.unlink(missing_ok=True)
    final = model_file(job)
    # The model with its input encoding (feature types, the training categories): what
    # scoring, the registry and evaluation load.
    _save(Model(model_spec(cfg), categories, state, job.algorithm), final)
    (workdir / "model.done").write_text("ok")
    return final


if __name__ == "__main__":
    run(TrainingJob.read(sys.argv[1]))
