"""The ``sagemaker`` backend: a SageMaker training job on managed spot capacity.

The library speaks to SageMaker through a boto3 client it is handed (in Airflow: the Amazon
provider's ``SageMakerHook(aws_conn_id=...).conn``, so credentials stay in the connection).
The waiting is not done here: ``costaware.app.cloud_training`` submits, defers to the
provider's ``SageMakerTrigger`` (the triggerer polls, no worker slot is held) and asks this
module for the result when the trigger fires.

Managed spot is one job that SageMaker restarts in place after a reclaim, from the
checkpoints it syncs to ``CheckpointConfig.S3Uri``; it reports ``TrainingTimeInSeconds``
(wall time the instances ran) and ``BillableTimeInSeconds`` (what is billed, at the
instance's on-demand price). So the job is one attempt, its reclaims counted from the
``Interrupted`` entries of ``SecondaryStatusTransitions``, its cost billable × price and what
spot saved (training − billable) × price.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from typing import Any

from costaware.config import SageMakerSpec
from costaware.costs.base import PriceSource
from costaware.errors import ConfigError, TrainingError
from costaware.models.training.base import (
    Attempt,
    AttemptHook,
    JobStatus,
    TrainingJob,
    TrainingResult,
)
from costaware.models.training.sagemaker_container import JOB_FILE

log = logging.getLogger(__name__)

# SageMaker's own words → the contract's state. Stopped covers MaxWaitTimeExceeded and
# MaxRuntimeExceeded (SecondaryStatus says which): a task failure, never success. Anything
# else (InProgress, Stopping, a status added later) keeps waiting until the deadline.
TERMINAL = {"Completed": "completed", "Failed": "failed", "Stopped": "failed"}
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"

# The built-in XGBoost algorithm's image registry per region (the SageMaker Python SDK's
# image_uris config for framework "xgboost", versions 1.x). Other regions: set
# ``sagemaker.image``.
XGBOOST_REGISTRIES = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-central-1": "492215442770",
}


def builtin_xgboost_image(region: str, version: str) -> str:
    try:
        account = XGBOOST_REGISTRIES[region]
    except KeyError:
        raise ConfigError(
            f"no built-in XGBoost image known for region {region!r} (known: "
            f"{sorted(XGBOOST_REGISTRIES)}); set training.sagemaker.image to the image URI"
        ) from None
    return f"{account}.dkr.ecr.{region}.amazonaws.com/sagemaker-xgboost:{version}"


def job_name(job: TrainingJob) -> str:
    """SageMaker's name of the job: derived from the job id, which derives from the DAG run
    and task, so a retry finds the job its first try started. ``[a-zA-Z0-9-]``, ≤ 63."""
    model = re.sub(r"[^a-zA-Z0-9]+", "-", job.tags.get("model", "job")).strip("-")[:24]
    digest = hashlib.sha256(job.job_id.encode()).hexdigest()[:16]
    return f"costaware-{model}-{digest}"


def s3_uri(text: str) -> str:
    """``s3://bucket/key`` from a storage URL (Airflow writes ``s3://conn_id@bucket/key``)."""
    m = re.match(r"^s3://(?:[^@/]+@)?(.+)$", text)
    if m is None:
        raise ConfigError(f"not an s3:// URL: {text!r}")
    return "s3://" + m.group(1).rstrip("/")


class SageMakerBackend:
    name = "sagemaker"

    def __init__(
        self,
        client: Any,
        price_source: PriceSource,
        spec: SageMakerSpec,
        *,
        region: str,
        instance_type: str,
        spot: bool,
    ) -> None:
        self.client = client
        self.price_source = price_source
        self.spec = spec
        self.region = region
        self.instance_type = instance_type
        self.spot = spot

    # -- the request ---------------------------------------------------------------------
    def request(self, job: TrainingJob) -> dict[str, Any]:
        """The ``CreateTrainingJob`` request of a job. Spot without checkpoints in S3 is
        refused: a reclaimed job would start over and be paid again."""
        if not job.train_path.startswith("s3://"):
            raise ConfigError(
                f"SageMaker reads training data from S3; job {job.job_id} has "
                f"{job.train_path!r}. Set COSTAWARE_STORAGE to an s3:// root"
            )
        if job.mirror is None or not job.mirror.startswith("s3://"):
            raise ConfigError(
                f"SageMaker needs an s3:// folder for the model and checkpoints of job "
                f"{job.job_id}, but the job's storage is {job.mirror or 'this machine'}: "
                "set COSTAWARE_STORAGE to s3://bucket/prefix"
            )
        if self.spot and not self.spec.checkpoints:
            raise ConfigError(
                "SageMaker managed spot without checkpoints is refused: a reclaimed job "
                "would start over and pay again; set training.sagemaker.checkpoints: true "
                "or training.spot.enabled: false"
            )
        folder = s3_uri(job.mirror)
        image = self.spec.image or builtin_xgboost_image(self.region, self.spec.image_version)
        if self.spec.script:
            # Script mode: framework containers JSON-decode their hyperparameters.
            import json

            hyper = {k: json.dumps(v) for k, v in job.params.items()}
            hyper["sagemaker_program"] = json.dumps(self.spec.script)
            hyper["sagemaker_submit_directory"] = json.dumps(self.spec.source)
            hyper["num_round"] = json.dumps(job.num_boost_round)
        else:
            hyper = {
                "objective": "binary:logistic",
                "eval_metric": "auc",
                **{k: str(v) for k, v in job.params.items()},
                "num_round": str(job.num_boost_round),
                "seed": str(job.seed),
            }
        max_run = int(self.spec.max_run_minutes * 60)
        stopping = {"MaxRuntimeInSeconds": max_run}
        if self.spot:
            stopping["MaxWaitTimeInSeconds"] = int(self.spec.max_wait_minutes * 60)
        req: dict[str, Any] = {
            "TrainingJobName": job_name(job),
            "RoleArn": self.spec.role_arn,
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "HyperParameters": hyper,
            "InputDataConfig": [
                _channel("train", s3_uri(job.train_path), self.spec.script is not None),
                # Script mode: costaware's trainer reads the job (features, model config,
                # rounds, seed) from job.json, which the task writes beside the data.
                *([_channel("job", f"{folder}/{JOB_FILE}", True)] if self.spec.script else []),
            ],
            "OutputDataConfig": {"S3OutputPath": f"{folder}/output"},
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.spec.instance_count,
                "VolumeSizeInGB": self.spec.volume_gb,
            },
            "StoppingCondition": stopping,
            "EnableManagedSpotTraining": self.spot,
            "Tags": [{"Key": k, "Value": str(v)} for k, v in sorted(job.tags.items())],
        }
        if self.spec.checkpoints:
            req["CheckpointConfig"] = {
                "S3Uri": f"{folder}/checkpoints",
                "LocalPath": CHECKPOINT_LOCAL_PATH,
            }
        return req

    # -- the contract ----------------------------------------------------------------------
    def submit(self, job: TrainingJob, on_attempt: AttemptHook | None = None) -> str:
        """Create the job, or attach to the one an earlier try created under the same name."""
        req = self.request(job)
        name = req["TrainingJobName"]
        if self._describe(name) is not None:
            log.info(
                "SageMaker training job %s exists: attaching to it, not starting another", name
            )
            return name
        from botocore.exceptions import ClientError

        try:
            self.client.create_training_job(**req)
        except ClientError as exc:
            # A concurrent try created it first: SageMaker refuses a second job of that name
            # (ResourceInUse, or a ValidationException saying it already exists).
            err = exc.response.get("Error", {})
            msg = str(err.get("Message", "")).lower()
            if err.get("Code") != "ResourceInUse" and "already exists" not in msg:
                raise
            log.info("SageMaker training job %s was created meanwhile: attaching", name)
            return name
        log.info(
            "created SageMaker training job %s on %s × %d (%s)",
            name,
            self.instance_type,
            self.spec.instance_count,
            "managed spot" if self.spot else "on demand",
        )
        if on_attempt is not None:
            on_attempt(self._attempt(None, "running"))
        return name

    def poll(self, handle: str) -> JobStatus:
        desc = self._describe(handle)
        if desc is None:
            return JobStatus(handle, "failed", "NotFound", f"no SageMaker training job {handle}")
        return _status(handle, desc)

    def cancel(self, handle: str) -> None:
        status = self.poll(handle)
        if not status.terminal:
            self.client.stop_training_job(TrainingJobName=handle)

    def result(self, handle: str, on_attempt: AttemptHook | None = None) -> TrainingResult:
        desc = self._describe(handle)
        if desc is None:
            raise TrainingError(f"no SageMaker training job {handle}")
        status = _status(handle, desc)
        if not status.terminal:
            raise TrainingError(f"SageMaker training job {handle} has not ended: {status.detail}")
        instance_type = desc.get("ResourceConfig", {}).get("InstanceType", self.instance_type)
        count = int(desc.get("ResourceConfig", {}).get("InstanceCount", 1))
        spot = bool(desc.get("EnableManagedSpotTraining", False))
        # SageMaker bills billable seconds (× instances) at the instance's on-demand price;
        # the spot discount is the time it does not bill.
        price = self.price_source.price(instance_type, self.region, "on_demand")
        per_s = price.usd_per_hour / 3600
        runtime = _runtime_s(desc)
        trained = desc.get("TrainingTimeInSeconds")
        billable = desc.get("BillableTimeInSeconds")
        notes = [f"priced at {price.usd_per_hour:.4f} $/h ({price.source}) × {count} instance(s)"]
        if billable is None:
            notes.append(
                "SageMaker gave no BillableTimeInSeconds for this job: billed its runtime "
                f"({runtime:.0f} s, from its start and end times) instead"
            )
            billable = runtime
        if trained is None:
            notes.append("SageMaker gave no TrainingTimeInSeconds: runtime used")
            trained = runtime
        saved = (float(trained) - float(billable)) * count * per_s if spot else 0.0
        reclaims = sum(
            1
            for t in desc.get("SecondaryStatusTransitions", [])
            if t.get("Status") == "Interrupted"
        )
        note = f"SageMaker {status.detail}" + (f": {status.reason}" if status.reason else "")
        attempt = Attempt(
            capacity="spot" if spot else "on_demand",
            start_chunk=0,
            end_chunk=0,
            seconds=float(trained),
            billed_seconds=float(billable) * count,
            usd=float(billable) * count * per_s,
            interrupted=False,
            number=0,
            status="final",
            note=note[:500],
            started_at=_epoch(desc.get("TrainingStartTime")),
            reclaims=reclaims,
        )
        if on_attempt is not None:
            on_attempt(attempt)
        if status.state != "completed":
            raise TrainingError(
                f"SageMaker training job {handle} ended {status.detail}"
                + (f": {status.reason}" if status.reason else "")
                + f" (billed ${attempt.usd:.4f})"
            )
        image = desc.get("AlgorithmSpecification", {}).get("TrainingImage", "")
        return TrainingResult(
            model_path=desc.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),
            algorithm="xgboost" if "sagemaker-xgboost" in image else "script",
            attempts=[attempt],
            price_source=price.source,
            instance_type=instance_type,
            metrics={
                m["MetricName"]: float(m["Value"]) for m in desc.get("FinalMetricDataList", [])
            },
            tags=self._tags(desc["TrainingJobArn"]),
            saved_usd=saved,
            notes=notes,
            handle=handle,
        )

    # -- helpers -----------------------------------------------------------------------------
    def _describe(self, name: str) -> dict[str, Any] | None:
        """The job's description, or None when SageMaker says it does not exist (any other
        error is raised: absent is not error)."""
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.describe_training_job(TrainingJobName=name))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            msg = str(err.get("Message", ""))
            if err.get("Code") in ("ValidationException", "ResourceNotFound") and (
                "not found" in msg.lower() or "could not find" in msg.lower()
            ):
                return None
            raise

    def _tags(self, arn: str) -> dict[str, str]:
        got = self.client.list_tags(ResourceArn=arn).get("Tags", [])
        return {t["Key"]: t["Value"] for t in got}

    def _attempt(self, usd: float | None, status: str) -> Attempt:
        return Attempt.of_cloud_job(self.spot, usd, status)


def _channel(name: str, uri: str, parquet: bool) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": "application/x-parquet" if parquet else "text/csv",
    }


def _status(handle: str, desc: dict[str, Any]) -> JobStatus:
    raw = str(desc.get("TrainingJobStatus", ""))
    secondary = str(desc.get("SecondaryStatus", ""))
    detail = f"{raw}/{secondary}" if secondary else raw
    state = TERMINAL.get(raw, "running")
    reason = str(desc.get("FailureReason", ""))
    if raw == "Stopped" and not reason:
        reason = {
            "MaxWaitTimeExceeded": "spot capacity did not finish the job within "
            "MaxWaitTimeInSeconds",
            "MaxRuntimeExceeded": "the job ran longer than MaxRuntimeInSeconds",
        }.get(secondary, "the job was stopped before it completed")
    return JobStatus(handle, state, detail, reason)  # type: ignore[arg-type]


def _runtime_s(desc: dict[str, Any]) -> float:
    start = desc.get("TrainingStartTime") or desc.get("CreationTime")
    end = desc.get("TrainingEndTime") or desc.get("LastModifiedTime")
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return max(0.0, (end - start).total_seconds())
    return 0.0


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else None
