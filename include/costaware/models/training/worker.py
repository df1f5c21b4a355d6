"""The training worker: ``python -m costaware.models.training.worker JOB.json``.

Trains in fixed chunks of rounds and checkpoints after each one. Chunk ``i`` always uses
seed ``job.seed + i`` and starts from the booster of chunk ``i-1``, so a run interrupted and
resumed from its checkpoint gives exactly the model of an uninterrupted run, even with row
and column subsampling. On SIGTERM (a spot interruption notice) it stops after nothing
more than the chunk in flight is lost.
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


def n_chunks(job: TrainingJob) -> int:
    return -(-job.num_boost_round // job.chunk_rounds)


def _load_xy(job: TrainingJob) -> tuple[Any, Any]:
    import pandas as pd

    frame = pd.read_parquet(job.train_path)
    return frame[job.features], frame[job.target].astype(int)


def _train_chunk(job: TrainingJob, i: int, state: Any, x: Any, y: Any) -> Any:
    rounds = min(job.chunk_rounds, job.num_boost_round - i * job.chunk_rounds)
    if job.algorithm == "xgboost":
        import xgboost as xgb

        params = {
            "objective": "binary:logistic",
            "eval_metric": "auc",
            "nthread": 1,
            "tree_method": "hist",
            **job.params,
            "seed": job.seed + i,
        }
        return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=rounds, xgb_model=state)
    if job.algorithm == "sklearn_hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = state or HistGradientBoostingClassifier(
            warm_start=True,
            max_iter=0,
            early_stopping=False,
            **{k: v for k, v in job.params.items() if k != "max_iter"},
        )
        model.set_params(max_iter=model.max_iter + rounds, random_state=job.seed)
        return model.fit(x, y)
    if job.algorithm == "sklearn_logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000, **job.params).fit(x, y)
    raise ValueError(
        f"unknown algorithm {job.algorithm!r}; "
        "allowed: ['sklearn_hgb', 'sklearn_logreg', 'xgboost']"
    )


def _save(job: TrainingJob, state: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    if job.algorithm == "xgboost":
        state.save_model(str(tmp) + ".ubj")
        Path(str(tmp) + ".ubj").replace(path.with_suffix(".ubj"))
    else:
        with tmp.open("wb") as f:
            pickle.dump(state, f)
        tmp.replace(path.with_suffix(".pkl"))


def _load(job: TrainingJob, path: Path) -> Any:
    if job.algorithm == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path.with_suffix(".ubj")))
        return booster
    with path.with_suffix(".pkl").open("rb") as f:
        return pickle.load(f)  # noqa: S301 - our own checkpoint, written above


def model_file(job: TrainingJob) -> Path:
    suffix = ".ubj" if job.algorithm == "xgboost" else ".pkl"
    return Path(job.workdir) / f"model{suffix}"


def run(job: TrainingJob) -> Path:
    workdir = Path(job.workdir)
    stop = {"now": False}

    def on_term(signum: int, frame: Any) -> None:  # spot interruption notice
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    x, y = _load_xy(job)
    done = _progress(workdir)["chunks_done"]
    state = _load(job, checkpoint_path(workdir, done)) if done else None
    total = 1 if job.algorithm == "sklearn_logreg" else n_chunks(job)
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
        state = _train_chunk(job, i, state, x, y)
        # The checkpoint of chunk i+1 is complete on disk before progress names it, and the
        # one before is removed only after: a kill at any point resumes from a consistent
        # pair, never from chunk i+1's booster with progress still saying i.
        _save(job, state, checkpoint_path(workdir, i + 1))
        _save_progress(workdir, i + 1, total)
        for old in workdir.glob(f"{CHECKPOINT}_*"):
            if old.stem != checkpoint_path(workdir, i + 1).stem:
                old.unlink(missing_ok=True)
    final = model_file(job)
    _save(job, state, final.with_suffix(""))  # writes model.ubj / model.pkl
    (workdir / "model.done").write_text("ok")
    return final


if __name__ == "__main__":
    run(TrainingJob.read(sys.argv[1]))
