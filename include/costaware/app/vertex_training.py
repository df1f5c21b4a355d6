"""Training on Vertex AI from Airflow without holding a worker slot while it runs.

The Google provider (``apache-airflow-providers-google``, whose ``vertex_ai`` triggers would
do this) does not install beside the pinned set (README "Training on cloud spot capacity"),
so this module mirrors the SageMaker operator's shape with a small trigger of its own:

- ``VertexSpotTrainingOperator`` creates the run's custom job through
  ``costaware.steps.cloud_training.start_cloud_training`` (or attaches to the one an earlier try
  created: the job's display name and ``costaware-job`` label derive from the DAG run and
  task), then defers;
- ``VertexCustomJobTrigger`` runs in the triggerer: it asks Vertex for the job every
  ``poll_seconds`` (the GAPIC client is synchronous, so each call runs in a thread and the
  triggerer's event loop is never blocked) and fires when the job reaches a terminal state,
  or after ``max_polls`` with ``status: timeout``;
- back on a worker, ``execute_complete`` judges the job by the backend's table
  (SUCCEEDED → success; FAILED, CANCELLED, EXPIRED → failure, billed either way); a
  timeout cancels the job (it would go on costing money) and fails the task.

In the retrain DAG it is the ``train_on_vertex`` task of a ``backend: vertex`` model, between
``prepare_training`` (the data and ``job.json`` under ``training.vertex.base_output_uri``,
written with ``google-cloud-storage``; its ``job`` spec in XCom) and ``train_challenger``
(which fetches the model the job wrote and registers it).

Credentials: the Airflow connection ``training.vertex.gcp_conn_id`` (its documented extras,
read as the GCP cost sources read them); Cloud Storage (the container's metrics) uses the
same credentials, and ``STORAGE_EMULATOR_HOST`` when set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from costaware.app.cloud_training import CloudJobSteps
from costaware.config import ModelConfig


def job_client(conn_id: str, region: str) -> Any:
    from costaware.models.training.vertex import client_for

    return client_for(conn_id, region)


def storage_client(conn_id: str) -> Any:
    from costaware.models.training.vertex import storage_client_for

    return storage_client_for(conn_id)


class VertexCustomJobTrigger(BaseTrigger):
    """Wait for a Vertex custom job to end; fire ``{"status": "done"|"timeout", ...}``."""

    def __init__(
        self,
        job_name: str,
        conn_id: str,
        region: str,
        poll_seconds: float = 30,
        max_polls: int = 480,
    ) -> None:
        super().__init__()
        self.job_name = job_name
        self.conn_id = conn_id
        self.region = region
        self.poll_seconds = poll_seconds
        self.max_polls = max_polls

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "conn_id": self.conn_id,
                "region": self.region,
                "poll_seconds": self.poll_seconds,
                "max_polls": self.max_polls,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from costaware.models.training.vertex import TERMINAL

        client = await asyncio.to_thread(job_client, self.conn_id, self.region)
        state = "unknown"
        for _ in range(self.max_polls):
            job = await asyncio.to_thread(client.get_custom_job, name=self.job_name)
            state = job.state.name
            self.log.info("Vertex custom job %s: %s", self.job_name, state)
            if state in TERMINAL:
                yield TriggerEvent({"status": "done", "job_name": self.job_name, "state": state})
                return
            await asyncio.sleep(self.poll_seconds)
        yield TriggerEvent({"status": "timeout", "job_name": self.job_name, "state": state})


class VertexSpotTrainingOperator(CloudJobSteps, BaseOperator):
    """Train ``model`` as a Vertex AI custom job (Spot VMs when its YAML says so).

    ``job`` is the training job's spec (``TrainingJob`` fields but ``job_id`` and ``tags``);
    templated, so it can come from an upstream task's XCom, as can ``instance_type``.
    ``max_polls`` × the model's ``poll_seconds`` bounds the wait; by default the job's own
    bound (Vertex's ``timeout`` + ``max_wait_duration``) plus ten polls."""

    template_fields = ("job", "instance_type")

    def __init__(
        self,
        *,
        cfg: ModelConfig,
        job: dict[str, Any] | str,
        instance_type: str | None = None,
        max_polls: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        spec = cfg.training.vertex
        if spec is None:
            from costaware.errors import ConfigError

            raise ConfigError(f"{cfg.name}: VertexSpotTrainingOperator needs training.vertex")
        self.model = cfg.name
        self.job = job
        self.instance_type = instance_type
        self.conn_id = spec.gcp_conn_id
        self.region = cfg.training.region
        self.poll_seconds = spec.poll_seconds
        bound_s = (spec.timeout_minutes + spec.max_wait_minutes) * 60
        self.max_polls = max_polls or int(bound_s // spec.poll_seconds) + 10

    def _job_client(self) -> Any:
        return job_client(self.conn_id, self.region)

    def _storage_client(self) -> Any:
        return storage_client(self.conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        started = self._start(context)
        if started["state"] != "running":  # ended already (a retry after the end)
            return self._finish(context)
        self.defer(
            trigger=VertexCustomJobTrigger(
                job_name=started["handle"],
                conn_id=self.conn_id,
                region=self.region,
                poll_seconds=self.poll_seconds,
                max_polls=self.max_polls,
            ),
            method_name="execute_complete",
            # A little beyond the trigger's own bound, so its timeout event comes first.
            timeout=dt.timedelta(seconds=self.poll_seconds * (self.max_polls + 2) + 60),
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        from costaware.errors import TrainingError

        event = event or {}
        if event.get("status") == "timeout":
            self._stop(context, event["job_name"])
            raise TrainingError(
                f"Vertex custom job {event['job_name']} still {event.get('state')} after "
                f"{self.max_polls} polls {self.poll_seconds} s apart: asked Vertex to cancel "
                "it; its cost is recorded when a retry of this task sees it cancelled"
            )
        return self._finish(context)  # the job's own state decides (the explicit table)
