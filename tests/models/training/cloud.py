"""SageMaker in moto's server for the backend tests: the client comes from the Amazon
provider's ``SageMakerHook`` over an Airflow connection pointing at moto (real HTTP).

What moto's SageMaker does with a training job (moto 5.2.5, ``moto/sagemaker/models.py``):
``CreateTrainingJob`` stores the request and the job is ``Completed`` at once, with
``TrainingStartTime == TrainingEndTime``, no ``BillableTimeInSeconds`` nor
``TrainingTimeInSeconds``, a ``train:progress`` metric of 100 and a ``ModelArtifacts`` URI
under the output path where no object is ever written (nothing trains). A second create
under the same name silently replaces the first (SageMaker refuses it). There is no
``StopTrainingJob``. So the states a real job passes through (InProgress, Interrupted,
Failed, Stopped with MaxWaitTimeExceeded) and its billing fields are set here on moto's
in-process job object, the way SageMaker documents them, and ``StopTrainingJob`` is added
to moto's responses; every request still goes through boto3 and moto's HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pytest

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's default account
ROLE = f"arn:aws:iam::{ACCOUNT}:role/costaware-training"
# SageMaker's public on-demand list price of ml.m5.xlarge training in us-east-1 ($/h); the
# spot column is unused (managed spot bills billable seconds at the on-demand price).
SM_PRICES = {"ml.m5.xlarge": (0.23, 0.069)}
CONN_ID = "costaware_sagemaker"


def use_connection(monkeypatch: pytest.MonkeyPatch, endpoint_url: str) -> None:
    """The Airflow connection the backend's client comes from (and nothing else: every
    ``AWS_*`` variable is unset)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint_url, "region_name": REGION},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


def hook_client() -> Any:
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    return SageMakerHook(aws_conn_id=CONN_ID, region_name=REGION).conn


def add_stop_training_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto has no StopTrainingJob: SageMaker's documented effect (Stopping, then Stopped
    with SecondaryStatus Stopped), here at once."""
    from moto.core.responses import EmptyResult
    from moto.sagemaker.responses import SageMakerResponse

    def stop_training_job(self: Any) -> Any:
        job = self.sagemaker_backend.training_jobs[self._get_param("TrainingJobName")]
        job.training_job_status = "Stopped"
        job.secondary_status = "Stopped"
        return EmptyResult()

    monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)


def jobs() -> dict[str, Any]:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION].training_jobs


def set_running(name: str) -> None:
    """The job as SageMaker shows it while it trains."""
    job = jobs()[name]
    job.training_job_status, job.secondary_status = "InProgress", "Training"
    job.training_end_time = None
    job.final_metric_data_list = []


def set_ended(
    name: str,
    status: str = "Completed",
    secondary: str = "Completed",
    *,
    billable: int | None,
    training: int | None,
    interrupted: int = 0,
    failure: str | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """The job as SageMaker shows it once it ended: status, billing fields, one
    ``Interrupted`` transition per spot reclaim, final metrics."""
    job = jobs()[name]
    start = job.training_start_time
    job.training_job_status, job.secondary_status = status, secondary
    job.training_end_time = start + dt.timedelta(seconds=training or 0)
    if billable is not None:
        job.billable_time_in_seconds = billable
    if training is not None:
        job.training_time_in_seconds = training
    if failure is not None:
        job.failure_reason = failure
    for i in range(interrupted):
        at = start + dt.timedelta(seconds=10 * (i + 1))
        job.secondary_status_transitions.append(
            {"Status": "Interrupted", "StartTime": at, "StatusMessage": "spot reclaimed"}
        )
        job.secondary_status_transitions.append(
            {"Status": "Training", "StartTime": at, "StatusMessage": "resumed from checkpoint"}
        )
    job.final_metric_data_list = [
        {"MetricName": k, "Value": v, "Timestamp": job.training_end_time}
        for k, v in (metrics or {}).items()
    ]
