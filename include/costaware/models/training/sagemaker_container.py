"""costaware's trainer inside a SageMaker script-mode container.

``python -m costaware.models.training.sagemaker_container`` is the entry point a script-mode
job runs (``training.sagemaker.script`` names a script calling ``main()``, shipped in
``source`` — ``examples/sagemaker/costaware_train.py``; the ``image`` has costaware and
SageMaker's training toolkit installed). It reads what SageMaker mounts, the way its training
toolkit documents them:

- ``SM_CHANNEL_TRAIN``: the ``train`` channel, holding ``train.parquet`` (target encoded by
  the task that wrote it);
- ``SM_CHANNEL_JOB``: the ``job`` channel, holding ``job.json`` (the ``TrainingJob``:
  features, target, model config, rounds, chunk size, seed) — too big for hyperparameters,
  which SageMaker caps at 2,500 characters a value;
- ``SM_MODEL_DIR``: where the model goes; SageMaker tars it to ``model.tar.gz`` under the
  job's ``S3OutputPath``;
- the checkpoint folder (``CheckpointConfig.LocalPath``, ``/opt/ml/checkpoints``), which
  SageMaker syncs with ``CheckpointConfig.S3Uri`` and restores after a spot reclaim.

It trains with the same worker as the ``local`` backend, with the checkpoint folder as the
worker's folder: chunk ``i`` always uses seed ``seed + i``, so a job that SageMaker restarts
after a reclaim resumes from the last chunk and makes the model an uninterrupted run makes.
The model is costaware's own format (``model.pkl``: the booster with its input encoding),
the file the registry takes, so nothing is converted between XGBoost versions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

from costaware.models.training.base import TrainingJob

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
MODEL_FILE = "model.pkl"
INFO_FILE = "costaware-model.json"
TRAIN_FILE = "train.parquet"
JOB_FILE = "job.json"


def _channel(name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", f"/opt/ml/input/data/{name}"))


def _find(folder: Path, name: str) -> Path:
    found = sorted(folder.rglob(name)) if folder.is_dir() else []
    if not found:
        listing = sorted(p.name for p in folder.rglob("*")) if folder.is_dir() else "absent"
        raise SystemExit(
            f"costaware: no {name} in the {folder.name!r} channel ({folder}: {listing}); the "
            "training task writes it beside the job's data before it submits the job"
        )
    return found[0]


def main() -> Path:
    """Train the job of the mounted channels; return the model file in ``SM_MODEL_DIR``."""
    from costaware.models.training import worker

    spec = json.loads(_find(_channel("job"), JOB_FILE).read_text())
    # The checkpoint folder is the worker's folder: its checkpoints and progress file are
    # what SageMaker uploads as they change and puts back after a reclaim.
    checkpoints = Path(os.environ.get("COSTAWARE_CHECKPOINT_DIR", CHECKPOINT_LOCAL_PATH))
    checkpoints.mkdir(parents=True, exist_ok=True)
    fields = {f.name for f in dataclasses.fields(TrainingJob)}
    job = TrainingJob(
        **{
            **{k: v for k, v in spec.items() if k in fields},
            "job_id": str(spec.get("job_id", "sagemaker")),
            "train_path": str(_find(_channel("train"), TRAIN_FILE)),
            "workdir": str(checkpoints),
            "mirror": None,
        }
    )
    model = worker.run(job)  # exits 143 on SIGTERM (the reclaim notice), its chunk saved
    out = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, out / MODEL_FILE)
    import xgboost

    (out / INFO_FILE).write_text(
        json.dumps(
            {
                "format": "costaware-model-pickle",
                "algorithm": job.algorithm,
                "xgboost": xgboost.__version__,
                "python": sys.version.split()[0],
            }
        )
    )
    print(f"costaware: model written to {out / MODEL_FILE}", flush=True)
    return out / MODEL_FILE


if __name__ == "__main__":
    main()
