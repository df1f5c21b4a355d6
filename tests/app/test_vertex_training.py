"""The Vertex trigger the deferred training task waits in: it polls the real GAPIC client
(over an Airflow connection's documented extras) against ``vertex_server.py``, never blocks
the triggerer's event loop, fires on a terminal state and gives up after its polls."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from costaware.app.vertex_training import VertexCustomJobTrigger
from costaware.config import VertexSpec
from costaware.costs.prices import StaticPriceSource
from costaware.models.training import TrainingJob
from costaware.models.training.vertex import VertexBackend

from ..models.training.vertex_server import FakeGCS, FakeVertex

CONN = "costaware_vertex_trigger"


@pytest.fixture(scope="module")
def hanging() -> Iterator[FakeVertex]:
    gcs = FakeGCS().start()
    server = FakeVertex(gcs, hang=True).start()
    try:
        yield server
    finally:
        server.stop()
        gcs.stop()


@pytest.fixture
def conn(hanging: FakeVertex, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"is_anonymous": True, "project": "acme-ml", "api_endpoint": hanging.url}
    conn = {"conn_type": "google_cloud_platform", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))


def _running_job(fake: FakeVertex, name: str) -> str:
    backend = VertexBackend(
        fake.client(),
        StaticPriceSource(),
        VertexSpec(project="acme-ml", image_uri="img"),
        region="us-central1",
        instance_type="n2-standard-4",
        spot=True,
    )
    job = TrainingJob(
        job_id=name,
        algorithm="xgboost",
        train_path="gs://b/train.parquet",
        features=["x"],
        target="y",
        params={},
        num_boost_round=10,
        chunk_rounds=5,
        seed=0,
        workdir="/unused",
        mirror=f"gs://b/{name}",
        tags={"model": "elec2"},
    )
    handle = backend.submit(job)
    for _ in range(100):
        if fake.jobs[handle]["state"] == "JOB_STATE_RUNNING":
            break
        time.sleep(0.02)
    return handle


async def _first_event_and_ticks(trigger: VertexCustomJobTrigger) -> tuple[Any, int]:
    """The trigger's first event, and how often another coroutine ran meanwhile."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    other = asyncio.create_task(ticker())
    try:
        event = await anext(trigger.run())
    finally:
        other.cancel()
    return event, ticks


def test_the_trigger_fires_when_the_job_ends(hanging: FakeVertex, conn: None) -> None:
    handle = _running_job(hanging, "trigger-done")
    trigger = VertexCustomJobTrigger(handle, CONN, "us-central1", poll_seconds=0.1, max_polls=200)

    async def cancel_later() -> Any:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(hanging.client().cancel_custom_job, name=handle)

    async def both() -> tuple[Any, int]:
        task = asyncio.create_task(cancel_later())
        got = await _first_event_and_ticks(trigger)
        await task
        return got

    event, ticks = asyncio.run(both())
    assert event.payload == {"status": "done", "job_name": handle, "state": "JOB_STATE_CANCELLED"}
    assert ticks >= 20  # the loop kept running while the trigger waited (≥ 0.5 s of ticks)
    gets = [c for c in hanging.calls if c == ("GET", f"/v1/{handle}")]
    assert len(gets) >= 2  # it polled over HTTP, through the connection's endpoint


def test_the_trigger_gives_up_after_its_polls(hanging: FakeVertex, conn: None) -> None:
    handle = _running_job(hanging, "trigger-forever")
    trigger = VertexCustomJobTrigger(handle, CONN, "us-central1", poll_seconds=0.05, max_polls=3)
    event, _ = asyncio.run(_first_event_and_ticks(trigger))
    assert event.payload == {"status": "timeout", "job_name": handle, "state": "JOB_STATE_RUNNING"}
    hanging.client().cancel_custom_job(name=handle)


def test_the_trigger_survives_serialization() -> None:
    path, kwargs = VertexCustomJobTrigger(
        "projects/p/locations/l/customJobs/1", CONN, "l"
    ).serialize()
    module, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
