"""The vertex backend over the real GAPIC client (REST) against ``vertex_server.py``.

What Vertex receives (Spot, restart on worker restart, max wait, output folder, labels, the
container's environment), a Spot preemption that restarts the worker from its GCS
checkpoints and must still make the model an uninterrupted run makes, and each way a job
ends without a model (FAILED, CANCELLED, a RUNNING that never ends → the deadline cancels
it): always a task failure, always billed for the time it ran. The contract battery
(``test_backend_contract.py``) runs the rest on this backend too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from costaware.config import TrainingSpec, VertexSpec
from costaware.costs.prices import StaticPriceSource
from costaware.errors import ConfigError, TrainingError
from costaware.models.scoring import load_model_file, predict_scores
from costaware.models.training import TrainingJob, run_to_end, worker
from costaware.models.training.base import Attempt
from costaware.models.training.sagemaker import job_name
from costaware.models.training.vertex import VertexBackend, labels_of

from ... import factories
from .vertex_server import FakeGCS, FakeVertex

BUCKET = "costaware-vertex"
FEATURES = ["period", "nswdemand", "vicprice", "vicdemand", "transfer"]
IMAGE = "us-central1-docker.pkg.dev/acme-ml/costaware/trainer:test"
TAGS = {"model": "elec2", "team": "energy-forecasting", "env": "dev", "purpose": "retrain"}
SPOT_N2 = 0.047  # the static table's n2-standard-4 spot $/h (costs/prices.py)


@pytest.fixture(scope="module")
def gcs() -> Iterator[FakeGCS]:
    server = FakeGCS().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def vertex(gcs: FakeGCS) -> Iterator[FakeVertex]:
    server = FakeVertex(gcs, preempt_after_chunk=1).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hanging(gcs: FakeGCS) -> Iterator[FakeVertex]:
    server = FakeVertex(gcs, hang=True).start()
    try:
        yield server
    finally:
        server.stop()


def _frame() -> pd.DataFrame:
    frame = pd.concat([part for _, part in factories.batches("elec2")[:2]])
    frame["class"] = frame["class"].astype(int)
    return frame[[*FEATURES, "class"]].reset_index(drop=True)


def _job(gcs: FakeGCS, name: str, frame: pd.DataFrame, **changes: Any) -> TrainingJob:
    """A job whose data and job.json are in GCS, as the training task leaves them."""
    folder = f"gs://{BUCKET}/state/work/elec2/{name}"
    job = TrainingJob(
        job_id=name,
        algorithm="xgboost",
        train_path=f"{folder}/train.parquet",
        features=FEATURES,
        target="class",
        params={"max_depth": 4, "eta": 0.2, "subsample": 0.8, "colsample_bytree": 0.8},
        num_boost_round=60,
        chunk_rounds=20,
        seed=11,
        workdir="/unused",
        mirror=folder,
        tags=TAGS,
    )
    job = dataclasses.replace(job, **changes)
    bucket = gcs.client().bucket(BUCKET)
    buf = io.BytesIO()
    frame.to_parquet(buf)
    bucket.blob(f"state/work/elec2/{name}/train.parquet").upload_from_string(buf.getvalue())
    bucket.blob(f"state/work/elec2/{name}/job.json").upload_from_string(
        json.dumps(dataclasses.asdict(job))
    )
    return job


def _backend(fake: FakeVertex, gcs: FakeGCS, spot: bool = True, **spec: Any) -> VertexBackend:
    return VertexBackend(
        fake.client(),
        StaticPriceSource(),
        VertexSpec(project="acme-ml", image_uri=IMAGE, **spec),
        region="us-central1",
        instance_type="n2-standard-4",
        spot=spot,
        storage_client=gcs.client(),
    )


def _seconds(job: dict[str, Any]) -> float:
    """Runtime from the times the server reported, read without the client's parsing."""

    def at(s: str) -> float:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    return at(job["endTime"]) - at(job["startTime"])


def test_tags_become_lower_case_vertex_labels() -> None:
    got = labels_of({"Team": "Energy Forecasting", "2nd": "A.B", "env": "dev"})
    assert got == {"team": "energy_forecasting", "t2nd": "a_b", "env": "dev"}
    with pytest.raises(ConfigError, match="collide as Vertex labels"):
        labels_of({"Team": "a", "team": "b"})


def test_a_preempted_spot_job_resumes_from_gcs_and_makes_the_uninterrupted_model(
    gcs: FakeGCS, vertex: FakeVertex, tmp_path: Path
) -> None:
    frame = _frame()
    job = _job(gcs, "preempted", frame)
    backend = _backend(vertex, gcs)
    seen: list[Attempt] = []
    result = run_to_end(backend, job, seen.append, poll_s=0.2, deadline_s=600, sleep=time.sleep)

    # What Vertex received: Spot, restart on preemption, the bounds, outputs, labels.
    sent = vertex.jobs[result.handle]
    sched = sent["jobSpec"]["scheduling"]
    assert sched["strategy"] in ("SPOT", 4) and sched["restartJobOnWorkerRestart"] is True
    assert sched["maxWaitDuration"] == "7200s" and sched["timeout"] == "3600s"
    folder = f"gs://{BUCKET}/state/work/elec2/preempted"
    assert sent["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"] == folder
    assert sent["displayName"] == job_name(job)
    assert {k: v for k, v in sent["labels"].items() if k != "costaware-job"} == TAGS
    pool = sent["jobSpec"]["workerPoolSpecs"][0]
    assert pool["machineSpec"]["machineType"] == "n2-standard-4"
    assert pool["containerSpec"]["imageUri"] == IMAGE
    env = {e["name"]: e["value"] for e in pool["containerSpec"]["env"]}
    assert env["COSTAWARE_JOB_URI"] == f"{folder}/job.json"
    # One preemption, absorbed by Vertex's restart inside the one job.
    assert result.capacity == "spot" and result.interruptions == 1
    assert "resuming from" in vertex.logs[result.handle].read_text()
    # Billed: runtime × the spot price (Vertex gives no billable time, and the notes say so).
    runtime = _seconds(sent)
    assert result.known_usd == pytest.approx(runtime * SPOT_N2 / 3600, rel=1e-6)
    assert result.saved_usd == pytest.approx(runtime * (0.194 - SPOT_N2) / 3600, rel=1e-6)
    assert any("no billable time" in n for n in result.notes)
    assert [a.status for a in seen] == ["running", "final"]
    # GCS holds the last chunk's checkpoint (3 chunks of 20 rounds) and the model.
    keys = [b.name for b in gcs.client().list_blobs(BUCKET, prefix="state/work/elec2/preempted/")]
    assert any(k.endswith("checkpoints/checkpoint_00003") for k in keys), keys
    assert result.model_path == f"{folder}/model/model.pkl"

    got = load_model_file(gcs.root / result.model_path.removeprefix("gs://"))
    # The same job uninterrupted on this machine, with the same worker: identical scores.
    local = tmp_path / "local"
    local.mkdir()
    frame.to_parquet(local / "train.parquet")
    ref_job = dataclasses.replace(
        job, train_path=str(local / "train.parquet"), workdir=str(local), mirror=None
    )
    ref = load_model_file(worker.run(ref_job))
    np.testing.assert_array_equal(
        predict_scores(got, frame, FEATURES), predict_scores(ref, frame, FEATURES)
    )
    # A retry attaches to it: no second job.
    count = len(vertex.jobs)
    assert _backend(vertex, gcs).submit(job) == result.handle
    assert len(vertex.jobs) == count


def test_a_failed_container_fails_the_task_and_is_billed(gcs: FakeGCS, vertex: FakeVertex) -> None:
    job = _job(gcs, "failing", _frame(), features=[*FEATURES, "no_such_column"])
    seen: list[Attempt] = []
    with pytest.raises(TrainingError, match="JOB_STATE_FAILED: The replica workerpool0-0 exited"):
        run_to_end(
            _backend(vertex, gcs, spot=False), job, seen.append, poll_s=0.2, sleep=time.sleep
        )
    final = seen[-1]
    sent = next(j for j in vertex.jobs.values() if j["displayName"] == job_name(job))
    assert final.status == "final" and final.capacity == "on_demand"
    assert "upper bound" in final.note  # Vertex may not bill failed training: said so
    assert final.usd == pytest.approx(_seconds(sent) * 0.194 / 3600, rel=1e-6)
    assert sent["jobSpec"]["scheduling"]["strategy"] in ("STANDARD", 3)


def test_a_job_that_never_ends_is_cancelled_at_the_deadline_and_billed(
    gcs: FakeGCS, hanging: FakeVertex
) -> None:
    job = _job(gcs, "forever", _frame())
    backend = _backend(hanging, gcs)
    with pytest.raises(TrainingError, match="still JOB_STATE_RUNNING after .* cancelled it"):
        run_to_end(backend, job, poll_s=0.2, deadline_s=1.0, sleep=time.sleep)
    handle = next(n for n, j in hanging.jobs.items() if j["displayName"] == job_name(job))
    for _ in range(100):
        if backend.poll(handle).terminal:
            break
        time.sleep(0.05)
    status = backend.poll(handle)
    assert (status.state, status.detail) == ("failed", "JOB_STATE_CANCELLED")
    seen: list[Attempt] = []
    with pytest.raises(TrainingError, match="ended JOB_STATE_CANCELLED"):
        backend.result(job_name(job), seen.append)  # by display name, as a retry knows it
    assert seen[0].usd == pytest.approx(_seconds(hanging.jobs[handle]) * SPOT_N2 / 3600)
    assert seen[0].seconds is not None and seen[0].seconds >= 1.0
    assert ("POST", f"/v1/{handle}:cancel") in hanging.calls


def test_spot_without_checkpoints_is_refused_before_any_job(
    gcs: FakeGCS, hanging: FakeVertex
) -> None:
    job = _job(gcs, "nockpt", _frame())
    before = len(hanging.jobs)
    with pytest.raises(ConfigError, match="Vertex Spot without checkpoints is refused"):
        _backend(hanging, gcs, checkpoints=False).submit(job)
    assert len(hanging.jobs) == before
    with pytest.raises(ValueError, match="no training.vertex block"):
        TrainingSpec(backend="vertex")
