"""The sagemaker backend over boto3 (the Amazon provider's hook) against moto's server:
the request SageMaker receives, each terminal state, a status that never ends, and what
moto itself answers for a job it "trains" (see ``cloud.py`` for what moto can and cannot
show)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from costaware.config import SageMakerSpec, TrainingSpec
from costaware.costs.prices import StaticPriceSource
from costaware.errors import ConfigError, TrainingError
from costaware.models.training import TrainingJob, run_to_end
from costaware.models.training.base import Attempt
from costaware.models.training.sagemaker import SageMakerBackend, job_name
from costaware.models.training.sagemaker_model import fetch_model

from ...conftest import moto_server
from . import cloud

TAGS = {"model": "elec2", "team": "energy-forecasting", "env": "dev", "purpose": "retrain"}
ROOT = "s3://costaware/state/work/elec2"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def client(moto: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    cloud.use_connection(monkeypatch, moto)
    cloud.add_stop_training_job(monkeypatch)
    return cloud.hook_client()


def _job(tmp: Path, name: str, mirror: str | None = "default") -> TrainingJob:
    folder = f"s3://aws_default@costaware/state/work/elec2/{name}-{tmp.name}"
    return TrainingJob(
        job_id=f"{name}-{tmp.name}",
        algorithm="xgboost",
        train_path=f"{ROOT}/{name}-{tmp.name}/train.csv",
        features=["period"],
        target="class",
        params={"max_depth": 5, "eta": 0.1},
        num_boost_round=120,
        chunk_rounds=20,
        seed=7,
        workdir=str(tmp / name),
        mirror=folder if mirror == "default" else mirror,
        tags=TAGS,
    )


def _backend(client: Any, spot: bool = True, **spec: Any) -> SageMakerBackend:
    return SageMakerBackend(
        client,
        StaticPriceSource(cloud.SM_PRICES),
        SageMakerSpec(role_arn=cloud.ROLE, max_run_minutes=30, max_wait_minutes=90, **spec),
        region=cloud.REGION,
        instance_type="ml.m5.xlarge",
        spot=spot,
    )


def test_request_carries_spot_checkpoints_max_wait_tags_and_image(
    client: Any, tmp_path: Path
) -> None:
    job = _job(tmp_path, "shape")
    handle = _backend(client).submit(job)

    got = client.describe_training_job(TrainingJobName=handle)
    assert got["EnableManagedSpotTraining"] is True
    folder = f"{ROOT}/shape-{tmp_path.name}"  # the connection id is not part of the URI
    assert got["CheckpointConfig"]["S3Uri"] == f"{folder}/checkpoints"
    assert got["OutputDataConfig"]["S3OutputPath"] == f"{folder}/output"
    assert got["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 5400}
    assert got["AlgorithmSpecification"]["TrainingImage"] == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    )
    assert got["HyperParameters"]["num_round"] == "120"
    assert got["HyperParameters"]["max_depth"] == "5"
    assert got["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    tags = client.list_tags(ResourceArn=got["TrainingJobArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS
    assert handle == job_name(job) and len(handle) <= 63


def test_script_mode_names_its_container_and_entry_point(client: Any, tmp_path: Path) -> None:
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3-cpu-py311"
    backend = _backend(client, image=image, script="train.py", source="s3://code/src.tar.gz")
    got = client.describe_training_job(TrainingJobName=backend.submit(_job(tmp_path, "script")))
    assert got["AlgorithmSpecification"]["TrainingImage"] == image
    hyper = got["HyperParameters"]
    assert hyper["sagemaker_program"] == '"train.py"'
    assert hyper["sagemaker_submit_directory"] == '"s3://code/src.tar.gz"'


def test_on_demand_has_no_max_wait(client: Any, tmp_path: Path) -> None:
    got = client.describe_training_job(
        TrainingJobName=_backend(client, spot=False).submit(_job(tmp_path, "od"))
    )
    assert got["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in got["StoppingCondition"]


def test_spot_without_checkpoints_is_refused(client: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="managed spot without checkpoints is refused"):
        _backend(client, checkpoints=False).submit(_job(tmp_path, "nockpt"))
    # Nor anywhere to put them: the state is on this machine, not in S3.
    with pytest.raises(ConfigError, match="set COSTAWARE_STORAGE to s3://"):
        _backend(client).submit(_job(tmp_path, "local", mirror=None))
    # And the YAML says so when it loads.
    with pytest.raises(ValueError, match="checkpoints is false with spot enabled"):
        TrainingSpec(backend="sagemaker", sagemaker={"role_arn": cloud.ROLE, "checkpoints": False})
    assert not any(n.startswith("costaware-elec2-") and "nockpt" in n for n in cloud.jobs())


def test_what_moto_answers_for_a_job(client: Any, tmp_path: Path) -> None:
    """moto: Completed at once, no billing fields, start == end. The backend says it had no
    billable time and bills the runtime it can see (0 s here), never a made-up number."""
    backend = _backend(client)
    result = run_to_end(backend, _job(tmp_path, "moto"), sleep=_no_wait)
    assert result.capacity == "spot"
    assert any("no BillableTimeInSeconds" in n for n in result.notes)
    assert result.billed_s == 0.0 and result.usd == 0.0
    assert result.metrics == {"train:progress": 100.0}


# SageMaker's terminal failures: (status, secondary, FailureReason, what the error says).
FAILURES = [
    ("Failed", "Failed", "AlgorithmError: label column has 3 classes", "AlgorithmError"),
    ("Stopped", "Stopped", None, "stopped before it completed"),
    ("Stopped", "MaxWaitTimeExceeded", None, "within MaxWaitTimeInSeconds"),
    ("Stopped", "MaxRuntimeExceeded", None, "longer than MaxRuntimeInSeconds"),
]


@pytest.mark.parametrize(("status", "secondary", "failure", "says"), FAILURES)
def test_each_failure_state_fails_and_is_still_billed(
    client: Any,
    tmp_path: Path,
    status: str,
    secondary: str,
    failure: str | None,
    says: str,
) -> None:
    backend = _backend(client)
    seen: list[Attempt] = []
    handle = backend.submit(_job(tmp_path, "fail"), seen.append)
    cloud.set_running(handle)
    assert not backend.poll(handle).terminal
    cloud.set_ended(handle, status, secondary, billable=60, training=300, failure=failure)

    polled = backend.poll(handle)
    assert polled.terminal and polled.state == "failed"
    assert polled.detail == f"{status}/{secondary}"
    with pytest.raises(TrainingError, match=says):
        backend.result(handle, seen.append)
    # What it used is paid for anyway: 60 billable s at $0.23/h = $0.0038333.
    assert [a.status for a in seen] == ["running", "final"]
    assert seen[-1].usd == pytest.approx(0.0038333, abs=1e-7)
    assert secondary in seen[-1].note


def test_cost_and_saving_from_billable_and_training_time(client: Any, tmp_path: Path) -> None:
    """Hand-worked: 400 s trained, 120 s billable, ml.m5.xlarge at $0.23/h, 2 instances:
    cost 120 × 2 × 0.23 / 3600 = $0.0153333; saved (400 − 120) × 2 × 0.23 / 3600 = $0.0357778."""
    backend = _backend(client, instance_count=2)
    handle = backend.submit(_job(tmp_path, "price"))
    cloud.set_ended(handle, billable=120, training=400, interrupted=3)
    result = backend.result(handle)
    assert result.usd == pytest.approx(0.0153333, abs=1e-7)
    assert result.saved_usd == pytest.approx(0.0357778, abs=1e-7)
    assert result.billed_s == 240 and result.runtime_s == 400
    assert result.interruptions == 3 and result.capacity == "spot"


def test_a_status_that_never_ends_is_polled_to_a_deadline_then_stopped(
    client: Any, tmp_path: Path
) -> None:
    backend = _backend(client)
    polls: list[float] = []
    seen: list[Attempt] = []

    def still_running(s: float) -> None:
        polls.append(s)
        cloud.set_running(handle)  # SageMaker keeps saying InProgress

    def created(a: Attempt) -> None:
        seen.append(a)
        cloud.set_running(handle)  # training, as on SageMaker (moto: Completed at once)

    job = _job(tmp_path, "forever")
    handle = job_name(job)
    with pytest.raises(TrainingError, match="still InProgress/Training after 5 s"):
        run_to_end(backend, job, created, poll_s=1.0, deadline_s=5, sleep=still_running)
    assert len(polls) == 5
    # The job was asked to stop (it would go on costing money).
    assert client.describe_training_job(TrainingJobName=handle)["TrainingJobStatus"] == "Stopped"


def test_an_unknown_status_keeps_waiting(client: Any, tmp_path: Path) -> None:
    backend = _backend(client)
    handle = backend.submit(_job(tmp_path, "odd"))
    cloud.jobs()[handle].training_job_status = "Pending"  # not in the table: not an end
    assert backend.poll(handle).state == "running"
    with pytest.raises(TrainingError, match="has not ended"):
        backend.result(handle)


def _no_wait(s: float) -> None:
    raise AssertionError("moto's job has ended at once: nothing to wait for")


def test_the_artifact_moto_reports_does_not_exist(client: Any, moto: str, tmp_path: Path) -> None:
    """moto names a model.tar.gz it never writes (nothing trains): fetching it is a clear
    error, not a model."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=moto,
        region_name=cloud.REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="costaware")
    result = run_to_end(_backend(client), _job(tmp_path, "artifact"), sleep=_no_wait)
    assert result.model_path.endswith("/output/model.tar.gz")
    with pytest.raises(TrainingError, match="does not exist: SageMaker reported it"):
        fetch_model(result.model_path, tmp_path / "model", cloud.CONN_ID)
