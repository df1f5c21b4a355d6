"""SageMaker and CloudWatch fixtures in moto for the idle-capacity tests (a uniquely named
module, importable from tests/costs and tests/dags alike). moto's missing StopTrainingJob is
added by the training tests' one patch (``tests/models/training/cloud.py``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.models.training.cloud import add_stop_training_job

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
__all__ = ["add_stop_training_job", "calls", "make_endpoint", "make_training_job", "moto_backend"]


def moto_backend() -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION]


def make_endpoint(
    sm: Any, name: str, instance_type: str, count: int, asynchronous: bool = False
) -> None:
    sm.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/xgb:1"},
    )
    extra = (
        {"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://costaware/async"}}}
        if asynchronous
        else {}
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        **extra,
        ProductionVariants=[
            {
                "VariantName": "main",
                "ModelName": f"{name}-model",
                "InstanceType": instance_type,
                "InitialInstanceCount": count,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def make_training_job(
    sm: Any, name: str, instance_type: str, *, spot: bool, tags: dict[str, str] | None = None
) -> None:
    sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={
            "TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/xgb:1",
            "TrainingInputMode": "File",
        },
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": "s3://costaware/out"},
        ResourceConfig={"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 86400},
        EnableManagedSpotTraining=spot,
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    )
    moto_backend().training_jobs[name].training_job_status = "InProgress"


def calls(cw: Any, endpoint: str, at: dt.datetime, n: float) -> None:
    cw.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": "main"},
                ],
                "Timestamp": at,
                "Value": n,
                "Unit": "None",
            }
        ],
    )
