"""Training on SageMaker from Airflow without holding a worker slot while it runs.

``SageMakerSpotTrainingOperator`` is the Amazon provider's ``SageMakerTrainingOperator``
with costaware's verbs: it creates the run's training job through the provider's
``SageMakerHook`` (credentials from the Airflow connection named in the model's
``training.sagemaker.aws_conn_id``), or attaches to the job an earlier try of the same task
created — the provider's own ``check_if_job_exists`` would start a second, timestamped job —
then defers to the provider's ``SageMakerTrigger``: the triggerer polls, the worker slot is
free. When the trigger fires, the job's state is read again and judged by costaware's table
(Completed → success; Failed, Stopped, MaxWaitTimeExceeded → failure), its cost priced into
the ledger either way. A trigger that runs out of polls stops the job (it would go on
costing money) and fails the task: polling always ends.

In the retrain DAG it is the ``train_on_sagemaker`` task of a ``backend: sagemaker`` model,
between ``prepare_training`` (the data and ``job.json`` on S3, its ``job`` spec in XCom) and
``train_challenger`` (which registers the model the job made).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

from costaware.app.airflow_glue import step_context
from costaware.config import ModelConfig


class CloudJobSteps:
    """What every cloud-training operator does around its trigger, whatever the cloud: start
    (or attach to) the run's job, stop it, price it and take its result — the steps'
    ``start_cloud_training`` / ``stop_cloud_training`` / ``finish_cloud_training`` with the
    job's spec from XCom and a key from the DAG run and task. A subclass says how its clients
    are made (``_job_client``; ``_storage_client`` when the backend needs one)."""

    model: str
    job: dict[str, Any] | str
    instance_type: str | None

    def _job_client(self) -> Any:
        raise NotImplementedError

    def _storage_client(self) -> Any:
        return None

    def _spec(self) -> dict[str, Any]:
        # A template rendered from XCom arrives as text unless the DAG renders native objects.
        return json.loads(self.job) if isinstance(self.job, str) else dict(self.job)

    def _key(self, context: Any) -> str:
        ti = context["ti"]
        return f"{ti.dag_id}/{context['run_id']}/{ti.task_id}"

    def _start(self, context: Any) -> dict[str, Any]:
        from costaware.steps.cloud_training import start_cloud_training

        ctx = step_context(self.model, context)
        return start_cloud_training(
            ctx,
            self._spec(),
            self._key(context),
            self._job_client(),
            self.instance_type or None,
            self._storage_client(),
        )

    def _stop(self, context: Any, job_name: str) -> None:
        from costaware.steps.cloud_training import stop_cloud_training

        stop_cloud_training(step_context(self.model, context), job_name, self._job_client())

    def _finish(self, context: Any) -> dict[str, Any]:
        from costaware.steps.cloud_training import finish_cloud_training

        ctx = step_context(self.model, context)
        return finish_cloud_training(
            ctx, self._spec(), self._key(context), self._job_client(), self._storage_client()
        )


class SageMakerSpotTrainingOperator(CloudJobSteps, SageMakerTrainingOperator):
    """Train ``model`` on SageMaker (managed spot when its YAML says so).

    ``job`` is the training job's spec (``TrainingJob`` fields but ``job_id`` and ``tags``,
    which derive from the DAG run + task and the model's tags); templated, so it can come
    from an upstream task's XCom, as can ``instance_type`` (the placement's choice).
    ``max_polls`` × the model's ``poll_seconds`` bounds the wait."""

    template_fields = (*SageMakerTrainingOperator.template_fields, "job", "instance_type")

    def __init__(
        self,
        *,
        cfg: ModelConfig,
        job: dict[str, Any] | str,
        instance_type: str | None = None,
        max_polls: int = 480,
        **kw: Any,
    ) -> None:
        spec = cfg.training.sagemaker
        super().__init__(
            config={},
            aws_conn_id=spec.aws_conn_id if spec else "aws_default",
            region_name=cfg.training.region,
            wait_for_completion=True,
            print_log=False,
            check_interval=spec.poll_seconds if spec else 30,
            max_attempts=max_polls,
            check_if_job_exists=False,
            deferrable=True,
            **kw,
        )
        self.model = cfg.name
        self.job = job
        # The placement's choice (estimate_cost's ``placement.instance_type``); None: the YAML's.
        self.instance_type = instance_type

    def _job_client(self) -> Any:
        return self.hook.conn

    def execute(self, context: Any) -> dict[str, Any]:
        started = self._start(context)
        if started["state"] != "running":  # ended already (a retry after the end)
            return self._finish(context)
        self.defer(
            trigger=SageMakerTrigger(
                job_name=started["handle"],
                job_type="Training",
                waiter_delay=self.check_interval,
                waiter_max_attempts=self.max_attempts,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            # A little beyond the trigger's own bound, so the trigger's timeout event (which
            # stops the job) normally comes first.
            timeout=dt.timedelta(seconds=self.check_interval * (self.max_attempts + 2) + 60),
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        from costaware.errors import TrainingError

        event = event or {}
        if event.get("status") == "timeout":
            self._stop(context, event["job_name"])
            raise TrainingError(
                f"SageMaker training job {event['job_name']} had not ended after "
                f"{self.max_attempts} polls {self.check_interval} s apart: asked SageMaker "
                "to stop it; its cost is recorded when a retry of this task sees it stopped"
            )
        # Whatever the trigger said, the job's own state decides (the explicit table).
        return self._finish(context)
