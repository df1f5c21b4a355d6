"""The ``training`` section: algorithm, backend (local, SageMaker, Vertex AI) and spot."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from costaware.config.base import _Strict


class SpotSpec(_Strict):
    enabled: bool = True
    interruption_rate: float = Field(default=0.1, ge=0, le=1)
    max_interruptions: int = Field(default=2, ge=0)
    seed: int = 0


class SageMakerSpec(_Strict):
    """``training.sagemaker``: how a ``backend: sagemaker`` model trains on SageMaker (README
    "Training on cloud spot capacity"). Credentials come from the Airflow connection."""

    role_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
        description="the IAM role SageMaker assumes to read the data and write the model",
    )
    # None: SageMaker's built-in XGBoost algorithm image of the region (image_version).
    image: str | None = None
    image_version: str = "1.7-1"
    # Script mode: a framework container (image) runs ``script`` from the ``source`` tarball.
    script: str | None = None
    source: str | None = Field(default=None, pattern=r"^s3://[^/]+/.+")
    # Instance types the job may run on (SageMaker's ml.* names); empty: training.instance_type.
    # With more than one, the cheapest by spot price x interruption risk is chosen (placement).
    instance_types: list[str] = []
    zones: list[str] = []  # availability zones the placement may consider; empty: all
    instance_count: int = Field(default=1, ge=1)
    volume_gb: int = Field(default=30, ge=1)
    max_run_minutes: float = Field(default=60, gt=0)
    max_wait_minutes: float = Field(default=120, gt=0, description="spot: run + waiting")
    checkpoints: bool = True
    aws_conn_id: str = "aws_default"
    poll_seconds: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> SageMakerSpec:
        if self.max_wait_minutes < self.max_run_minutes:
            raise ValueError(
                f"sagemaker.max_wait_minutes ({self.max_wait_minutes}) must be at least "
                f"max_run_minutes ({self.max_run_minutes}): SageMaker counts the spot wait in it"
            )
        if (self.script or self.source) and not (self.script and self.source and self.image):
            raise ValueError(
                "sagemaker script mode needs image (the framework container), script (the "
                "entry point) and source (s3:// URI of the code tarball) together"
            )
        return self


class VertexSpec(_Strict):
    """``training.vertex``: how a ``backend: vertex`` model trains as a Vertex AI custom job
    on Spot VMs (README "Training on cloud spot capacity" → Vertex). Credentials come from the
    Airflow connection ``gcp_conn_id`` (its documented extras, as the GCP cost sources read
    them). ``training.region`` is the Vertex location (us-central1...); ``training.
    instance_type`` the machine type (n2-standard-4...)."""

    project: str = Field(min_length=1, description="the Google Cloud project the job runs in")
    # Script mode: a container with costaware installed that runs
    # ``python -m costaware.models.training.vertex_container`` (its default command here).
    image_uri: str = Field(min_length=1, description="the training container image")
    command: list[str] = ["python", "-m", "costaware.models.training.vertex_container"]
    # Where the job's outputs (model/, checkpoints/) go: a gs:// folder; None: the run's work
    # folder under COSTAWARE_STORAGE (which must then be gs://).
    base_output_uri: str | None = Field(default=None, pattern=r"^gs://[^/]+(/.*)?$")
    service_account: str | None = None
    replica_count: int = Field(default=1, ge=1)
    boot_disk_gb: int = Field(default=100, ge=10)
    # Vertex's Scheduling: ``timeout`` bounds the run, ``max_wait_duration`` the wait for
    # Spot capacity; the poll bound of the deferred task is (timeout + max wait) with margin.
    timeout_minutes: float = Field(default=60, gt=0)
    max_wait_minutes: float = Field(default=120, gt=0, description="spot: wait for capacity")
    checkpoints: bool = True
    gcp_conn_id: str = "google_cloud_default"
    poll_seconds: int = Field(default=30, ge=1)


ALGORITHMS = ("xgboost", "lightgbm", "sklearn", "custom", "sklearn_hgb", "sklearn_logreg")
# Algorithms that continue training from a checkpoint (chunks of rounds); the others train in
# one chunk.
INCREMENTAL_ALGORITHMS = frozenset({"xgboost", "lightgbm", "sklearn_hgb"})
_IMPORT_PATH = r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$"
_ENTRY_POINT = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class TrainingSpec(_Strict):
    backend: Literal["local", "sagemaker", "vertex"] = "local"
    sagemaker: SageMakerSpec | None = None
    vertex: VertexSpec | None = None
    # xgboost | lightgbm: boosted trees trained in chunks of rounds (checkpoints, spot
    # resume); sklearn: ``estimator`` (an estimator class or a function returning a
    # pipeline, by import path) called with ``params``; custom: ``entry_point``
    # ``package.module:function(frame, config) -> fitted model`` (README "Model kinds").
    # sklearn_hgb / sklearn_logreg: the earlier shortcuts, kept working.
    algorithm: Literal[
        "xgboost", "lightgbm", "sklearn", "custom", "sklearn_hgb", "sklearn_logreg"
    ] = "xgboost"
    estimator: str | None = Field(
        default=None,
        pattern=_IMPORT_PATH,
        description="sklearn: import path of an estimator class or pipeline factory",
    )
    entry_point: str | None = Field(
        default=None, pattern=_ENTRY_POINT, description="custom: package.module:function"
    )
    window_batches: int = Field(default=8, ge=1)
    min_train_rows: int = Field(default=500, ge=10)
    params: dict[str, Any] = {}
    num_boost_round: int = Field(default=200, ge=1)
    chunk_rounds: int = Field(default=25, ge=1)
    instance_type: str = "m5.xlarge"
    region: str = "us-east-1"
    billing_overhead_minutes: float = Field(
        default=5.0, ge=0, description="instance start-up and data load billed per run"
    )
    expected_runtime_minutes: float = Field(
        default=10.0, gt=0, description="prior for the cost estimate before history exists"
    )
    spot: SpotSpec = SpotSpec()
    timeout_minutes: float = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _cloud_backend(self) -> TrainingSpec:
        needs = {"sagemaker": "at least role_arn", "vertex": "at least project and image_uri"}
        if self.backend not in needs:
            return self
        block = getattr(self, self.backend)
        if block is None:
            raise ValueError(
                f"training.backend is {self.backend} but there is no training.{self.backend} "
                f"block; add one with {needs[self.backend]}"
            )
        if self.spot.enabled and not block.checkpoints:
            raise ValueError(
                f"training.{self.backend}.checkpoints is false with spot enabled: a reclaimed "
                "spot job would start over and pay again; set checkpoints: true or "
                "training.spot.enabled: false"
            )
        return self
