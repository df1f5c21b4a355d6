"""costaware's trainer inside a Vertex AI custom job container.

``python -m costaware.models.training.vertex_container`` is the command the ``vertex``
backend gives the container (``training.vertex.command``; the ``image_uri`` has costaware
installed). It reads what Vertex documents for custom training:

- ``AIP_CHECKPOINT_DIR`` and ``AIP_MODEL_DIR``: ``gs://`` folders Vertex derives from the
  job's ``base_output_directory`` (``…/checkpoints/``, ``…/model/``);
- Cloud Storage FUSE: every bucket the job may read is mounted at ``/gcs/<bucket>``, so
  ``gs://b/k`` is the file ``/gcs/b/k`` (``COSTAWARE_GCS_FUSE_ROOT`` moves the mount point:
  the tests' stand-in mounts its GCS folder elsewhere);
- ``COSTAWARE_JOB_URI`` / ``COSTAWARE_TRAIN_URI``: the ``job.json`` and ``train.parquet``
  the training task wrote (container env set by the backend).

The checkpoint folder on GCS *is* the worker's folder: each chunk's checkpoint and the
progress file naming it are written there (checkpoint first), so when Vertex restarts a
preempted Spot worker (``restart_job_on_worker_restart``) the new container resumes from the
last chunk, with chunk ``i``'s seed ``seed + i``: the model of an uninterrupted run. Each
resume is counted in ``resumes.json`` there (Vertex reports no preemption count), and
``metrics.json`` beside the model says the training metric and that count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from costaware.models.training.base import TrainingJob
from costaware.models.training.sagemaker_container import INFO_FILE, MODEL_FILE

RESUMES_FILE = "resumes.json"


def fuse_path(uri: str) -> Path:
    """The file Cloud Storage FUSE shows for ``gs://bucket/key``."""
    if not uri.startswith("gs://"):
        raise SystemExit(f"costaware: expected a gs:// URI, got {uri!r}")
    root = Path(os.environ.get("COSTAWARE_GCS_FUSE_ROOT", "/gcs"))
    return root / uri.removeprefix("gs://").rstrip("/")


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(
            f"costaware: {name} is not set; Vertex sets AIP_* from the job's "
            "base_output_directory, the backend sets COSTAWARE_* in the container spec"
        )
    return value


def main() -> Path:
    """Train the job named by the environment; return the model file in ``AIP_MODEL_DIR``."""
    from costaware.models.training import local, worker

    spec = json.loads(fuse_path(_env("COSTAWARE_JOB_URI")).read_text())
    checkpoints = fuse_path(_env("AIP_CHECKPOINT_DIR"))
    checkpoints.mkdir(parents=True, exist_ok=True)
    progress = checkpoints / worker.PROGRESS
    resumes_file = checkpoints / RESUMES_FILE
    resumes = json.loads(resumes_file.read_text())["resumes"] if resumes_file.exists() else 0
    if progress.exists() and not (checkpoints / "model.done").exists():
        resumes += 1  # a restarted worker: Vertex brought it back after a preemption
        tmp = resumes_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"resumes": resumes}))
        tmp.replace(resumes_file)
        print(f"costaware: resuming from {progress.read_text()}", flush=True)
    fields = {f.name for f in dataclasses.fields(TrainingJob)}
    job = TrainingJob(
        **{
            **{k: v for k, v in spec.items() if k in fields},
            "job_id": str(spec.get("job_id", "vertex")),
            "train_path": str(fuse_path(_env("COSTAWARE_TRAIN_URI"))),
            "workdir": str(checkpoints),
            "mirror": None,
        }
    )
    model = worker.run(job)  # exits 143 on SIGTERM (the preemption notice), its chunk saved
    out = fuse_path(_env("AIP_MODEL_DIR"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, out / MODEL_FILE)
    import sys

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
    metrics = local._train_metrics(job)
    (out / "metrics.json").write_text(json.dumps({"metrics": metrics, "resumes": resumes}))
    print(f"costaware: model written to {out / MODEL_FILE}", flush=True)
    return out / MODEL_FILE


if __name__ == "__main__":
    main()
