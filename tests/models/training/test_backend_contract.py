"""One battery for every training backend (STYLE: one contract test per Protocol).

Each backend runs a job through the contract's verbs (``submit``/``poll``/``cancel``/
``result``, strung together by ``run_to_end``) and must return the whole result — model
artifact URI, metrics, runtime, billable seconds, capacity, interruptions, the cost priced
with the model's tags — with every attempt recorded in a real ledger by the same recorder
the DAG uses. ``local`` trains for real on this machine; ``sagemaker`` runs against moto's
server through the Amazon provider's hook, with the cloud-side states moto cannot produce
set on its job (see ``cloud.py``: nothing trains there, so its artifact URI names an object
that does not exist — checked as a URI, not as a model); ``vertex`` runs against
``vertex_server.py`` (Vertex AI's REST API for custom jobs and a Cloud Storage stand-in),
where the job really trains in a container-like process and a Spot preemption restarts it
from its GCS checkpoints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from costaware.config import SageMakerSpec
from costaware.costs.prices import StaticPriceSource
from costaware.models.training import TrainingJob, run_to_end
from costaware.models.training.base import Attempt, TrainingBackend
from costaware.steps.spend import attempt_recorder
from costaware.store.ledger import Ledger

from ... import factories
from ...conftest import moto_server
from . import cloud
from .jobs import make_backend, make_job

TAGS = {"model": "elec2", "team": "energy-forecasting", "env": "dev", "purpose": "retrain"}
BACKENDS = ["local", "sagemaker", "vertex"]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.concat([part for _, part in factories.batches("elec2")[:2]])
    path = tmp_path_factory.mktemp("train") / "train.parquet"
    frame.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def vertex_fakes() -> Iterator[Any]:
    from .vertex_server import FakeGCS, FakeVertex

    gcs = FakeGCS().start()
    vertex = FakeVertex(gcs).start()
    try:
        yield gcs, vertex
    finally:
        vertex.stop()
        gcs.stop()


class Harness:
    """What differs between backends: how to build one, and (for the cloud) how its jobs
    move while the contract waits."""

    name: str

    def backend(self, hazard: bool) -> TrainingBackend: ...
    def job(self, name: str) -> TrainingJob: ...
    def on_attempt(self, a: Attempt, hazard: bool) -> None: ...
    def sleep(self, hazard: bool) -> Callable[[float], None]: ...
    def same_job_object(self, handle: str) -> Any: ...


class LocalHarness(Harness):
    name = "local"

    def __init__(self, tmp: Path, train_file: Path) -> None:
        self.tmp, self.train_file = tmp, train_file

    def backend(self, hazard: bool) -> TrainingBackend:
        return make_backend(1.0 if hazard else 0.0, max_interruptions=1)

    def job(self, name: str) -> TrainingJob:
        return dataclasses.replace(make_job(self.tmp, self.train_file, name), tags=TAGS)

    def on_attempt(self, a: Attempt, hazard: bool) -> None:
        pass

    def sleep(self, hazard: bool) -> Callable[[float], None]:
        def never(s: float) -> None:
            raise AssertionError("the local backend has ended when submit returns")

        return never

    def same_job_object(self, handle: str) -> Any:
        return (Path(handle) / "attempts.json").read_text()


class SageMakerHarness(Harness):
    name = "sagemaker"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.client = cloud.hook_client()
        self.handles: list[str] = []

    def backend(self, hazard: bool) -> TrainingBackend:
        from costaware.models.training.sagemaker import SageMakerBackend

        return SageMakerBackend(
            self.client,
            StaticPriceSource(cloud.SM_PRICES),
            SageMakerSpec(role_arn=cloud.ROLE),
            region=cloud.REGION,
            instance_type="ml.m5.xlarge",
            spot=True,
        )

    def job(self, name: str) -> TrainingJob:
        root = f"s3://costaware/state/work/elec2/{name}-{self.tmp.name}"
        return TrainingJob(
            job_id=f"{name}-{self.tmp.name}",
            algorithm="xgboost",
            train_path=f"{root}/train.csv",
            features=["period", "nswdemand"],
            target="class",
            params={"max_depth": 4},
            num_boost_round=60,
            chunk_rounds=10,
            seed=3,
            workdir=str(self.tmp / name),
            mirror=root,
            tags=TAGS,
        )

    def on_attempt(self, a: Attempt, hazard: bool) -> None:
        if a.status == "running":  # just created: the job trains, as on SageMaker
            cloud.set_running(self.handles[-1])

    def sleep(self, hazard: bool) -> Callable[[float], None]:
        def ended(s: float) -> None:
            # While the contract waits, the job ends: 400 s trained, 120 s billed, and with
            # the hazard two spot reclaims SageMaker resumed from the checkpoints.
            for name, job in cloud.jobs().items():
                if job.training_job_status == "InProgress" and name in self.handles:
                    cloud.set_ended(
                        name,
                        billable=120,
                        training=400,
                        interrupted=2 if hazard else 0,
                        metrics={"train:auc": 0.91},
                    )

        return ended

    def same_job_object(self, handle: str) -> Any:
        return id(cloud.jobs()[handle])


class VertexHarness(Harness):
    name = "vertex"

    def __init__(self, tmp: Path, train_file: Path, fakes: Any) -> None:
        self.tmp, self.train_file = tmp, train_file
        self.gcs, self.fake = fakes
        self.storage = self.gcs.client()

    def backend(self, hazard: bool) -> TrainingBackend:
        from costaware.config import VertexSpec
        from costaware.models.training.vertex import VertexBackend

        # With the hazard, Spot preempts the worker after its first chunk; Vertex restarts it.
        self.fake.preempt_after_chunk = 1 if hazard else None
        return VertexBackend(
            self.fake.client(),
            StaticPriceSource(),
            VertexSpec(project="acme-ml", image_uri="us-docker.pkg.dev/acme-ml/costaware:test"),
            region="us-central1",
            instance_type="n2-standard-4",
            spot=True,
            storage_client=self.storage,
        )

    def job(self, name: str) -> TrainingJob:
        import json

        key = f"state/work/elec2/{name}-{self.tmp.name}"
        job = dataclasses.replace(
            make_job(self.tmp, self.train_file, name),
            job_id=f"{name}-{self.tmp.name}",
            train_path=f"gs://costaware/{key}/train.parquet",
            mirror=f"gs://costaware/{key}",
            tags=TAGS,
        )
        bucket = self.storage.bucket("costaware")
        if not bucket.blob(f"{key}/job.json").exists():  # the training task writes these
            bucket.blob(f"{key}/train.parquet").upload_from_filename(str(self.train_file))
            bucket.blob(f"{key}/job.json").upload_from_string(json.dumps(dataclasses.asdict(job)))
        return job

    def on_attempt(self, a: Attempt, hazard: bool) -> None:
        pass

    def sleep(self, hazard: bool) -> Callable[[float], None]:
        import time

        return lambda s: time.sleep(min(s, 0.2))

    def same_job_object(self, handle: str) -> Any:
        return self.fake.jobs[handle]["createTime"], len(self.fake.jobs)


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path, train_file: Path) -> Iterator[Harness]:
    if request.param == "local":
        yield LocalHarness(tmp_path, train_file)
        return
    if request.param == "vertex":
        yield VertexHarness(tmp_path, train_file, request.getfixturevalue("vertex_fakes"))
        return
    url = request.getfixturevalue("moto")
    mp = request.getfixturevalue("monkeypatch")
    cloud.use_connection(mp, url)
    cloud.add_stop_training_job(mp)
    yield SageMakerHarness(tmp_path)


def _run(h: Harness, tmp: Path, name: str, hazard: bool) -> tuple[Any, Ledger, list[Attempt]]:
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    backend = h.backend(hazard)
    job = h.job(name)
    if isinstance(h, SageMakerHarness):
        from costaware.models.training.sagemaker import job_name

        h.handles.append(job_name(job))
    record = attempt_recorder(
        ledger,
        model="elec2",
        run_id="run-1",
        usage_date=dt.datetime(2026, 11, 1),
        prefix=f"{job.job_id}/",
        instance_type="m5.xlarge",
        price_source="static",
        tags=job.tags,
    )
    seen: list[Attempt] = []

    def on_attempt(a: Attempt) -> None:
        seen.append(a)
        record(a)
        h.on_attempt(a, hazard)

    result = run_to_end(backend, job, on_attempt, poll_s=1.0, sleep=h.sleep(hazard))
    return result, ledger, seen


def test_result_is_whole_and_every_attempt_is_in_the_ledger(
    harness: Harness, tmp_path: Path
) -> None:
    result, ledger, seen = _run(harness, tmp_path, "whole", hazard=False)

    assert result.model_path and result.handle
    if harness.name == "local":
        assert Path(result.model_path).is_file()
    elif harness.name == "vertex":  # the model the container wrote under AIP_MODEL_DIR
        assert result.model_path.startswith("gs://costaware/state/work/elec2/whole-")
        assert result.model_path.endswith("/model/model.pkl")
        key = result.model_path.removeprefix("gs://costaware/")
        assert harness.storage.bucket("costaware").blob(key).exists()  # type: ignore[attr-defined]
    else:  # the URI SageMaker reports, under the job's own output folder
        assert result.model_path.startswith("s3://costaware/state/work/elec2/whole-")
        assert result.model_path.endswith("/output/model.tar.gz")
    assert result.metrics and all(math.isfinite(v) for v in result.metrics.values())
    assert result.runtime_s > 0 and result.billed_s > 0
    assert result.capacity == "spot" and result.interruptions == 0
    assert result.usd is not None and result.usd > 0
    assert result.usd == pytest.approx(sum(a.usd or 0 for a in result.attempts))
    assert result.saved_usd is not None and result.saved_usd > 0  # spot is cheaper
    assert result.tags == TAGS
    assert result.notes  # what the numbers rest on
    # Every attempt was reported running (cost unknown, never $0), then priced.
    assert [a.status for a in seen if a.number == 0][0] == "running"
    assert seen[0].usd is None
    rows = ledger.run_costs("elec2", "run-1")
    assert len(rows) == len(result.attempts)
    for row, a in zip(sorted(rows, key=lambda r: r["attempt"]), result.attempts, strict=True):
        assert row["status"] == "final" and row["usd"] == pytest.approx(a.usd)
        assert row["tags"] == TAGS and row["capacity"] == a.capacity


def test_interruptions_are_counted_and_billed(harness: Harness, tmp_path: Path) -> None:
    result, ledger, _ = _run(harness, tmp_path, "hazard", hazard=True)

    assert result.interruptions >= 1
    assert result.capacity in ("spot", "mixed")
    rows = ledger.run_costs("elec2", "run-1")
    assert sum(r["interruptions"] for r in rows) == result.interruptions
    assert sum(r["usd"] for r in rows) == pytest.approx(result.usd)


def test_submit_again_attaches_to_the_same_job(harness: Harness, tmp_path: Path) -> None:
    """A retried task submits the same job again: it finds the first one, never starts a
    second (local: no new attempt; SageMaker: moto's job object is the same one — a second
    create would have replaced it)."""
    result, _, _ = _run(harness, tmp_path, "again", hazard=False)
    before = harness.same_job_object(result.handle)

    fresh = harness.backend(False)  # a new process: nothing in memory
    handle = fresh.submit(harness.job("again"))

    assert handle == result.handle
    assert harness.same_job_object(handle) == before
    again = fresh.result(handle)
    assert [a.usd for a in again.attempts] == pytest.approx([a.usd for a in result.attempts])


def test_poll_and_cancel_after_the_end(harness: Harness, tmp_path: Path) -> None:
    result, _, _ = _run(harness, tmp_path, "ended", hazard=False)
    backend = harness.backend(False)

    status = backend.poll(result.handle)
    assert status.terminal and status.state == "completed"
    backend.cancel(result.handle)  # nothing left to stop: harmless
    assert backend.poll(result.handle).state == "completed"
    assert backend.result(result.handle).model_path == result.model_path
