"""Model configs: one YAML per model in ``include/models/``, validated with pydantic.

A bad config fails with the file, the key and what is allowed, e.g.::

    include/models/elec2.yaml: cost_policy.max_usd_per_point_batch: Input should be
    greater than 0 (got -1)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from costaware.errors import ConfigError
from costaware.settings import Settings

_log = logging.getLogger(__name__)

# Evidently's drift methods that return a p-value (drift when p < threshold); the others
# return a distance (drift when distance >= threshold).
PVALUE_METHODS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "t_test",
        "mannw",
        "anderson",
        "fisher_exact",
        "cramer_von_mises",
        "g_test",
        "epps_singleton",
        "empirical_mmd",
    }
)
DISTANCE_METHODS = frozenset(
    {"psi", "wasserstein", "jensenshannon", "kl_div", "hellinger", "energy", "TVD"}
)
DRIFT_METHODS = PVALUE_METHODS | DISTANCE_METHODS
# Methods that compare numbers only: a categorical column (a categorical feature, or the
# predicted class of a multiclass model) needs one of the others (psi, chisquare, ...).
NUMERIC_ONLY_METHODS = frozenset(
    {
        "wasserstein",
        "ks",
        "t_test",
        "mannw",
        "anderson",
        "cramer_von_mises",
        "epps_singleton",
        "energy",
        "empirical_mmd",
    }
)
TARGET_KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class MetricSpec:
    """A metric, defined once: the target kinds it applies to and its direction.

    Every comparison in costaware is made on *points*: ``sign × scale × value`` with sign −1
    for a metric where lower is better, so "more points" always means "better" and a gain
    is positive whatever the metric. ``scale`` is 100 for rates in [0, 1] (a point is one
    hundredth: one ROC AUC point, one accuracy point) and 1 for errors in the target's own
    unit (one RMSE point is one unit of the target)."""

    name: str
    kinds: tuple[str, ...]
    higher_is_better: bool
    scale: float
    unit: str
    probabilities: bool  # reads scores as class probabilities (must lie in [0, 1])
    per_row_mean: bool  # a mean of per-row terms (its paired standard error is exact)

    def points(self, value: Any) -> Any:
        """Points from the metric's value (a number or a NumPy array of them)."""
        return (1.0 if self.higher_is_better else -1.0) * self.scale * value

    def value(self, points: float) -> float:
        """The metric in its own unit from points (the inverse of ``points``)."""
        return (1.0 if self.higher_is_better else -1.0) * points / self.scale

    def shown(self, points: float) -> float:
        """The metric as people read it, in ``unit``: points without the sign that makes an
        error grow with quality (an RMSE of 12.3, not −12.3 points; ROC AUC × 100 as is)."""
        return self.value(points) * self.scale

    @property
    def reading(self) -> str:
        """How to read ``shown``: its unit and direction."""
        return f"{self.unit}, {'higher' if self.higher_is_better else 'lower'} is better"


_CLASSIFICATION = ("binary", "multiclass")
METRIC_SPECS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("roc_auc", _CLASSIFICATION, True, 100.0, "ROC AUC × 100", False, False),
        MetricSpec("accuracy", _CLASSIFICATION, True, 100.0, "accuracy %", True, True),
        MetricSpec("log_loss", _CLASSIFICATION, False, 100.0, "log loss × 100", True, True),
        MetricSpec("macro_f1", _CLASSIFICATION, True, 100.0, "macro F1 × 100", True, False),
        MetricSpec("rmse", ("regression",), False, 1.0, "target units", False, False),
        MetricSpec("mae", ("regression",), False, 1.0, "target units", False, True),
        MetricSpec("r2", ("regression",), True, 100.0, "R² × 100", False, False),
    )
}
METRICS = tuple(METRIC_SPECS)


def category_text(value: Any) -> str:
    """A category value as text, the same for 3, 3.0 and "3" (a CSV column with a missing
    value reads integers as floats): how categories are compared everywhere."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    name: str
    type: Literal["numeric", "categorical"] = "numeric"
    min: float | None = None
    max: float | None = None
    categories: list[str | int] | None = None
    nullable: bool = False


class TimeOrder(_Strict):
    """How rows are ordered in time. ``column`` names a timestamp column; without one the row
    index is the clock (``start`` + index × ``freq``), as for Elec2."""

    column: str | None = None
    start: str = "2000-01-01T00:00:00"
    freq: str = "1D"


class PredictionLogBatches(_Strict):
    """``data.batches_from: prediction_log``: a batch is the labelled predictions that
    ``costaware serve`` logged in one interval (``batches/prediction_log.py``)."""

    interval_hours: float | None = Field(
        default=None, gt=0, description="one batch's interval; default batch_rows × time.freq"
    )
    label_wait_hours: float | None = Field(
        default=None,
        ge=0,
        description="an interval is taken this long after it ends; "
        "default label_delay_batches × interval_hours",
    )
    aliases: list[Literal["champion", "challenger"]] = Field(
        default=["champion"],
        min_length=1,
        description="rows scored by these aliases are taken (challenger: the canary's rows)",
    )


class DataSpec(_Strict):
    source: str = Field(description="CSV or Parquet file used by `costaware replay`")
    time: TimeOrder = TimeOrder()
    batch_rows: int = Field(gt=0)
    label_delay_batches: int = Field(default=1, ge=0)
    drop_columns: list[str] = []
    # Where retrain_<model> takes its batches: files in the landing zone, or the predictions
    # `costaware serve` logged, once labelled (README, "The live loop").
    batches_from: Literal["landing", "prediction_log"] = "landing"
    prediction_log: PredictionLogBatches = PredictionLogBatches()


class Target(_Strict):
    """The label column. ``binary``: ``positive`` is the class scored; ``multiclass``:
    ``classes`` lists every class (a model scores one probability per class, in this
    order); ``regression``: a number."""

    name: str
    kind: Literal["binary", "multiclass", "regression"] = "binary"
    positive: int | str = 1
    classes: list[int | str] | None = None

    @model_validator(mode="after")
    def _classes_fit_kind(self) -> Target:
        if self.kind == "multiclass":
            if not self.classes or len(self.classes) < 3:
                raise ValueError(
                    f"target.classes: a multiclass target lists its 3 or more classes "
                    f"(got {self.classes!r}); for two classes use kind: binary with positive"
                )
            dupes = sorted({str(c) for c in self.classes if self.classes.count(c) > 1})
            if dupes:
                raise ValueError(f"target.classes lists {dupes} twice")
        elif self.classes is not None:
            raise ValueError(
                f"target.classes is only for kind: multiclass (this target is {self.kind}); "
                "remove it" + (" and set positive" if self.kind == "binary" else "")
            )
        return self


class DriftColumn(_Strict):
    method: str
    threshold: float = Field(gt=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in DRIFT_METHODS:
            raise ValueError(f"unknown drift method {v!r}; allowed: {sorted(DRIFT_METHODS)}")
        return v


class DriftSpec(_Strict):
    method: str = "psi"
    threshold: float = Field(default=0.2, gt=0)
    columns: dict[str, DriftColumn] = {}
    prediction: DriftColumn = DriftColumn(method="psi", threshold=0.2)
    drift_share: float = Field(default=0.5, gt=0, le=1)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        return DriftColumn._known_method(v)


class EvaluationSpec(_Strict):
    holdout_batches: int = Field(default=1, ge=1)
    min_gain_points: float = Field(default=0.0, ge=0)
    bootstrap: int = Field(default=500, ge=50)
    confidence: float = Field(default=0.9, gt=0.5, lt=1)
    seed: int = 0
    # Fewer held-out rows than this → reject, whatever the numbers say. 30 is the usual floor
    # for a percentile bootstrap interval to be trusted (below it the interval is too narrow
    # too often), and below it one row moves accuracy by more than 3 points; not tuned to the
    # shipped data (Elec2 holds out 336 rows, Weather 90).
    min_rows: int = Field(
        default=30, ge=2, description="fewest held-out rows a champion/challenger verdict needs"
    )


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
        if self.backend == "sagemaker" and self.sagemaker is None:
            raise ValueError(
                "training.backend is sagemaker but there is no training.sagemaker block; "
                "add one with at least role_arn"
            )
        if self.backend == "vertex" and self.vertex is None:
            raise ValueError(
                "training.backend is vertex but there is no training.vertex block; add one "
                "with at least project and image_uri"
            )
        if self.backend == "vertex" and self.vertex is not None:
            if self.spot.enabled and not self.vertex.checkpoints:
                raise ValueError(
                    "training.vertex.checkpoints is false with spot enabled: a preempted "
                    "Spot VM would restart the job from scratch and pay again; set "
                    "checkpoints: true or training.spot.enabled: false"
                )
        if self.backend == "sagemaker" and self.sagemaker is not None:
            if self.spot.enabled and not self.sagemaker.checkpoints:
                raise ValueError(
                    "training.sagemaker.checkpoints is false with spot enabled: a reclaimed "
                    "spot job would start over and pay again; set checkpoints: true or "
                    "training.spot.enabled: false"
                )
        return self


CONNECTIONS = {"aws_conn_id": "aws_default", "gcp_conn_id": "google_cloud_default"}
# Parts of an option's name that say it holds a credential (aws_secret_access_key, token...).
CREDENTIAL_WORDS = "password passwd secret token credential private_key access_key api_key"
CREDENTIAL_WORDS += " keyfile key_path"


def credential_options(options: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the options (nested ones too) whose name says they hold a credential."""
    found = []
    for key, value in options.items():
        name = str(key).lower().replace("-", "_")
        if any(word in name for word in CREDENTIAL_WORDS.split()):
            found.append(f"{prefix}{key}")
        elif isinstance(value, dict):
            found += credential_options(value, f"{prefix}{key}.")
    return found


# The limit's old name (until 0.x): it was always dollars per metric point × batch served.
OLD_LIMIT_KEY, LIMIT_KEY = "max_usd_per_metric_point", "max_usd_per_point_batch"


def renamed_limit(raw: Any, where: str) -> Any:
    """``raw`` (a ``cost_policy`` mapping or run parameters) with the limit's old key moved to
    its new name, a DeprecationWarning and a log line naming ``where`` and the new key; both
    keys at once is an error (which one was meant cannot be known)."""
    if not isinstance(raw, dict) or OLD_LIMIT_KEY not in raw:
        return raw
    if raw.get(LIMIT_KEY) is not None and raw.get(OLD_LIMIT_KEY) is not None:
        raise ValueError(
            f"{where} gives both {LIMIT_KEY} ({raw[LIMIT_KEY]!r}) and its deprecated old name "
            f"{OLD_LIMIT_KEY} ({raw[OLD_LIMIT_KEY]!r}); keep only {LIMIT_KEY}"
        )
    raw = dict(raw)
    old = raw.pop(OLD_LIMIT_KEY)
    if raw.get(LIMIT_KEY) is None:
        raw[LIMIT_KEY] = old
    text = (
        f"{where}: {OLD_LIMIT_KEY} is deprecated, rename it to {LIMIT_KEY} (the same value: "
        "dollars per metric point × batch served)"
    )
    warnings.warn(text, DeprecationWarning, stacklevel=2)
    _log.warning(text)
    return raw


class CostPolicy(_Strict):
    # Dollars per metric point × batch served: a retrain is worth it when cost / expected
    # gain (points of the model's metric, summed over the batches it will serve) is at most this.
    max_usd_per_point_batch: float = Field(gt=0)
    auto_approve_usd: float = Field(ge=0)
    monthly_budget_usd: float = Field(gt=0)
    cooldown_hours: float = Field(default=0, ge=0)
    min_expected_gain_points: float = Field(default=0.5, ge=0)
    cost_source: str = "ledger"
    cost_source_options: dict[str, Any] = {}
    price_source: str = "static"
    price_source_options: dict[str, Any] = {}
    # When the cost or price source cannot answer (no data for the tag, an API failing):
    # "fallback" prices the retrain from the ledger prior / static table and flags it as a
    # fallback in the decision and the report; "fail" fails the task (Airflow retries it).
    on_source_error: Literal["fallback", "fail"] = "fallback"

    @model_validator(mode="before")
    @classmethod
    def _old_limit_name(cls, raw: Any) -> Any:
        return renamed_limit(raw, "cost_policy")

    @property
    def max_usd_per_metric_point(self) -> float:
        """Deprecated name of ``max_usd_per_point_batch`` (kept for callers of the library)."""
        return self.max_usd_per_point_batch

    @model_validator(mode="after")
    def _no_credentials(self) -> CostPolicy:
        # A model config names an Airflow connection, never a key: the YAML lives in git.
        for role, source in (("cost", self.cost_source), ("price", self.price_source)):
            options = getattr(self, f"{role}_source_options")
            found = credential_options(options)
            if not found:
                continue
            conn_option = {"aws": "aws_conn_id", "gcp": "gcp_conn_id"}.get(source)
            where = (
                f"the Airflow connection {options.get(conn_option, CONNECTIONS[conn_option])!r} "
                f"(named by {role}_source_options.{conn_option})"
                if conn_option
                else "an Airflow connection"
            )
            raise ValueError(
                f"{role}_source_options.{found[0]} holds a credential; a model config names a "
                f"connection, never a key: remove it here and put it on {where}"
            )
        return self


class Tags(_Strict):
    model: str
    team: str
    env: Literal["dev", "staging", "prod"] = "dev"


# Airflow's schedule presets (airflow.sdk's CRON_PRESETS); anything else must be a cron line.
SCHEDULE_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


class AirflowSpec(_Strict):
    """How Airflow runs this model's DAGs. Every key is optional; the defaults are what the
    DAGs did before the section existed."""

    retries: int = Field(default=2, ge=0, le=20)
    retry_delay_seconds: float = Field(default=30, ge=0)
    approval_timeout_hours: float = Field(
        default=24, gt=0, description="an unanswered approval is rejected after this long"
    )
    schedule: str | None = Field(
        default="@weekly", description="retrain schedule: a preset, a cron line, or null (manual)"
    )

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, v: str | None) -> str | None:
        # Checked here, not left to Airflow: a schedule Airflow rejects while building one
        # model's DAG would fail the whole DAG file, and with it every model's DAGs.
        from croniter import croniter

        if v is None or v in SCHEDULE_PRESETS or (not v.startswith("@") and croniter.is_valid(v)):
            return v
        raise ValueError(
            f"not a schedule: {v!r}; allowed: null (manual runs only), "
            f"{', '.join(SCHEDULE_PRESETS)}, or a cron line such as '0 6 * * 1'"
        )


class ServingSpec(_Strict):
    """``costaware serve``: the live model behind the registry alias ``champion`` (README,
    "The live loop")."""

    canary_share: float = Field(
        default=0.0, ge=0, le=1, description="share of requests scored by `challenger`"
    )
    alias_poll_seconds: float = Field(
        default=10.0, gt=0, description="how often the server re-reads the aliases"
    )
    flush_interval_seconds: float = Field(
        default=0.2, gt=0, description="logged predictions are written at least this often"
    )
    batch_records: int = Field(default=500, ge=1, description="records per log write")
    spool_max_mb: float = Field(
        default=256, gt=0, description="on-disk spool bound while the ledger is slow or down"
    )
    max_pending_records: int = Field(
        default=100_000, ge=1, description="records held in memory before /predict answers 503"
    )
    protect_predictions: bool = Field(
        default=False, description="/predict and /labels need the token too"
    )


class MonitorSpec(_Strict):
    """``monitor_<model>``: the live model between retrains (README, "The live loop")."""

    schedule: str | None = "@hourly"
    window_hours: float = Field(default=24, gt=0, description="one monitoring window")
    window_origin: str = Field(
        default="1970-01-05T00:00:00",
        description="a window boundary (UTC); the others are whole windows from it. The "
        "default, a Monday midnight, makes daily windows run midnight to midnight and weekly "
        "ones Monday to Monday (ISO weeks)",
    )
    history_windows: int = Field(default=28, ge=1, description="windows of metric history")
    min_rows: int = Field(
        default=30, ge=2, description="fewest labelled rows a window's metric needs"
    )
    tolerance_points: float = Field(
        default=2.0, ge=0, description="metric points below the reference that count as decay"
    )
    act_on_estimate: bool = Field(
        default=False, description="the label-free estimate alone may trigger the action"
    )
    on_degradation: Literal["alert", "rollback", "retrain"] = "alert"
    drift_max_rows: int = Field(default=200_000, ge=100)

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, v: str | None) -> str | None:
        return AirflowSpec._known_schedule(v)

    @field_validator("window_origin")
    @classmethod
    def _an_instant(cls, v: str) -> str:
        try:
            t = dt.datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(
                f"{v!r} is not an ISO date-time; write e.g. 1970-01-05T00:00:00 (UTC)"
            ) from None
        if t.tzinfo is not None and t.utcoffset() != dt.timedelta(0):
            raise ValueError(f"{v!r}: give the origin in UTC (no offset, or +00:00)")
        return v

    @property
    def origin(self) -> dt.datetime:
        """``window_origin`` as a naive UTC datetime (the ledger's clock)."""
        return dt.datetime.fromisoformat(self.window_origin).replace(tzinfo=None)


class ModelConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    description: str = ""
    data: DataSpec
    features: list[Feature] = Field(min_length=1)
    target: Target
    validation_suite: str
    drift: DriftSpec = DriftSpec()
    metric: Literal["roc_auc", "accuracy", "log_loss", "macro_f1", "rmse", "mae", "r2"] = "roc_auc"
    evaluation: EvaluationSpec = EvaluationSpec()
    training: TrainingSpec = TrainingSpec()
    cost_policy: CostPolicy
    tags: Tags
    airflow: AirflowSpec = AirflowSpec()
    serving: ServingSpec = ServingSpec()
    monitor: MonitorSpec = MonitorSpec()
    source_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_limit_name(cls, raw: Any) -> Any:
        # Here, not only in CostPolicy, so the warning names the file.
        if isinstance(raw, dict) and isinstance(raw.get("cost_policy"), dict):
            where = f"{raw.get('source_file') or 'model config'}: cost_policy"
            raw = {**raw, "cost_policy": renamed_limit(raw["cost_policy"], where)}
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {dupes}")
        if self.target.name in names:
            raise ValueError(f"target {self.target.name!r} is also listed as a feature")
        unknown = sorted(set(self.drift.columns) - set(names))
        if unknown:
            raise ValueError(f"drift.columns names unknown features {unknown}; features: {names}")
        if self.tags.model != self.name:
            raise ValueError(f"tags.model is {self.tags.model!r} but the model is {self.name!r}")
        self._check_kinds()
        for col, spec in self.drift.columns.items():
            if spec.method in NUMERIC_ONLY_METHODS and col in self.categorical_features:
                raise ValueError(
                    f"drift.columns.{col}.method {spec.method!r} compares numbers, but {col!r} "
                    f"is categorical; use one of {sorted(DRIFT_METHODS - NUMERIC_ONLY_METHODS)}"
                )
        if self.target.kind == "multiclass" and self.drift.prediction.method in (
            NUMERIC_ONLY_METHODS
        ):
            raise ValueError(
                f"drift.prediction.method {self.drift.prediction.method!r} compares numbers, but "
                "a multiclass model's prediction is a class; use psi, chisquare, jensenshannon..."
            )
        return self

    def _check_kinds(self) -> None:
        """Combinations of target kind, metric, algorithm and feature declarations."""
        spec, kind = METRIC_SPECS[self.metric], self.target.kind
        if kind not in spec.kinds:
            fitting = [m.name for m in METRIC_SPECS.values() if kind in m.kinds]
            raise ValueError(
                f"metric {self.metric!r} does not apply to a {kind} target "
                f"(target {self.target.name!r}); allowed for {kind}: {fitting}"
            )
        t = self.training
        if t.algorithm == "sklearn" and not t.estimator:
            raise ValueError(
                "training.algorithm sklearn needs training.estimator: the import path of an "
                "estimator class or pipeline factory, e.g. sklearn.ensemble.RandomForestClassifier"
            )
        if t.algorithm == "custom" and not t.entry_point:
            raise ValueError(
                "training.algorithm custom needs training.entry_point: package.module:function, "
                "a function(frame, config) returning a fitted model (README, Model kinds)"
            )
        if t.estimator and t.algorithm != "sklearn":
            raise ValueError(
                f"training.estimator is only read by algorithm sklearn, not {t.algorithm}"
            )
        if t.entry_point and t.algorithm != "custom":
            raise ValueError(
                f"training.entry_point is only read by algorithm custom, not {t.algorithm}"
            )
        if t.algorithm in ("sklearn_hgb", "sklearn_logreg") and kind != "binary":
            raise ValueError(
                f"training.algorithm {t.algorithm} trains binary targets only; for a {kind} "
                "target use xgboost, lightgbm, sklearn (with estimator) or custom"
            )
        cats = [f.name for f in self.features if f.type == "categorical"]
        if cats and t.algorithm in ("sklearn_hgb", "sklearn_logreg"):
            raise ValueError(
                f"training.algorithm {t.algorithm} takes numeric features only, but {cats} "
                "are categorical; use xgboost, lightgbm, sklearn (a pipeline with its encoder) "
                "or custom"
            )
        for f in self.features:
            if f.type == "categorical" and (f.min is not None or f.max is not None):
                raise ValueError(
                    f"feature {f.name!r} is categorical: min/max do not apply (use categories)"
                )
            if f.type == "numeric" and f.categories is not None:
                raise ValueError(
                    f"feature {f.name!r} is numeric: categories apply to type: categorical only"
                )
            if f.categories is not None and len(set(map(str, f.categories))) != len(f.categories):
                raise ValueError(f"feature {f.name!r}: categories lists a value twice")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def metric_spec(self) -> MetricSpec:
        return METRIC_SPECS[self.metric]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.type == "categorical"]

    def drift_for(self, column: str) -> DriftColumn:
        if column in self.drift.columns:
            return self.drift.columns[column]
        if column in self.categorical_features and self.drift.method in NUMERIC_ONLY_METHODS:
            # The model-wide method compares numbers: a categorical column takes PSI on its
            # categories at DriftSpec's default threshold (0.2, the usual "significant shift").
            return DriftColumn(method="psi", threshold=DriftSpec().threshold)
        return DriftColumn(method=self.drift.method, threshold=self.drift.threshold)


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid model config"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {loc}: {e['msg']}{shown}")
    return "\n".join(lines)


def _load_yaml(text: str) -> Any:
    """libyaml's C loader when PyYAML has it: 0.8 ms a config instead of 5.9 ms, and the DAG
    files load every config on every parse (bench/scale.py). On an error, parse again with
    PyYAML's own loader so the message keeps the offending line."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return yaml.safe_load(text)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader
    except yaml.YAMLError:
        return yaml.safe_load(text)


def load_model_config(path: str | Path) -> ModelConfig:
    return _load_model_config(Path(path), _load_yaml)


def _load_model_config(path: Path, parse: Callable[[str], Any]) -> ModelConfig:
    try:
        raw = parse(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such model config") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the model config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return ModelConfig.model_validate({**raw, "source_file": str(path)})
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from exc


class ParsedYamlCache:
    """Model YAML already parsed, by the SHA-256 of the file's text, in one JSON file.

    The DAG files load every model config on every parse (three files, every 30 s), and
    parsing YAML costs 1.3-2.3 ms a config even with libyaml; reading this cache and
    validating costs 0.17 ms (bench/results/scale.md). Keyed by content, not by mtime or
    size, so an edit is a new key whatever the file system's clock says. Only a parse that
    succeeded is kept, and only when JSON gives back exactly what YAML gave (a date, a set, a
    non-string key is parsed every time): validation, and every error a bad file shows, run
    on the same input as without the cache. Best effort: an unreadable or unwritable cache
    file is no cache."""

    VERSION = 1

    def __init__(self, file: Path) -> None:
        self.file = file
        self.kept: dict[str, Any] = {}
        self.used: dict[str, Any] = {}

    def open(self) -> ParsedYamlCache:
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return self  # none yet, or torn by a crash: rebuilt by save()
        if isinstance(data, dict) and data.get("version") == self.VERSION:
            entries = data.get("entries")
            self.kept = entries if isinstance(entries, dict) else {}
        return self

    def parse(self, text: str) -> Any:
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in self.kept:
            self.used[key] = self.kept[key]
            return self.used[key]
        raw = _load_yaml(text)
        try:
            if json.loads(json.dumps(raw)) == raw:
                self.used[key] = raw
        except (TypeError, ValueError):
            pass  # not JSON (a date, a set, NaN...): parsed from YAML every time
        return raw

    def save(self) -> None:
        """Keep what this load used (a file gone or edited drops its entry); written whole to
        a temporary file then renamed, so a parse running beside sees the old cache or this
        one, never half of it."""
        if self.used.keys() == self.kept.keys():
            return
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": self.VERSION, "entries": self.used}))
            os.replace(tmp, self.file)
        except OSError:
            with contextlib.suppress(OSError):  # the folder may not even exist
                tmp.unlink(missing_ok=True)


BUDGETS_FILE = "budgets.yaml"  # shared budgets, beside the model YAMLs (not a model config)
BUDGET_WINDOWS = ("@daily", "@weekly", "@monthly")


def model_config_paths(models_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(models_dir).glob("*.yaml") if p.name != BUDGETS_FILE)


class SharedBudget(_Strict):
    """One entry of ``budgets.yaml``: models that share a team's monthly dollars (README,
    "A budget shared by several models"). ``window``: the scheduling interval in which the
    retrains worth doing are ranked against each other (by the run's clock, UTC)."""

    monthly_usd: float = Field(gt=0)
    models: list[str] = Field(min_length=1)
    window: Literal["@daily", "@weekly", "@monthly"] = "@weekly"
    # How long a window's candidates wait (rescheduled, no worker slot held) for the other
    # models of the budget to post before the window is ranked without them. 60 min: models
    # on one schedule start within minutes of each other; not tuned on any data.
    wait_minutes: float = Field(default=60, ge=0)

    @field_validator("models")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        dupes = sorted({m for m in v if v.count(m) > 1})
        if dupes:
            raise ValueError(f"models lists {dupes} twice")
        return v


class BudgetsConfig(_Strict):
    budgets: dict[str, SharedBudget] = {}

    @model_validator(mode="after")
    def _one_budget_each(self) -> BudgetsConfig:
        seen: dict[str, str] = {}
        for name, b in self.budgets.items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", name):
                raise ValueError(
                    f"budget name {name!r}: lowercase letters, digits, - and _ (it names a "
                    "lock file and appears in every decision)"
                )
            for m in b.models:
                if m in seen:
                    raise ValueError(
                        f"model {m!r} is in budgets {seen[m]!r} and {name!r}; a model draws "
                        "on one shared budget at most"
                    )
                seen[m] = name
        return self

    def of(self, model: str) -> tuple[str, SharedBudget] | None:
        """The shared budget ``model`` draws on, by name; None when it has only its own."""
        for name, b in self.budgets.items():
            if model in b.models:
                return name, b
        return None


def load_budgets(models_dir: str | Path, models: Any = None) -> BudgetsConfig:
    """``budgets.yaml`` of the model folder (none: no shared budget). ``models``: the model
    names that exist, to refuse a budget naming another one."""
    path = Path(models_dir) / BUDGETS_FILE
    if not path.exists():
        return BudgetsConfig()
    try:
        raw = _load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the shared budgets: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a top-level `budgets:` key")
    try:
        found = BudgetsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc).replace("model config", "budgets")) from exc
    if models is not None:
        for name, b in found.budgets.items():
            unknown = sorted(set(b.models) - set(models))
            if unknown:
                raise ConfigError(
                    f"{path}: budgets.{name}.models names {unknown}, which have no model "
                    f"config here; models: {sorted(models)}"
                )
    return found


@dataclass(frozen=True)
class ModelConfigs:
    """Every model config of a folder, each file loaded on its own, so one bad file never
    hides the good ones: ``configs`` by model name, ``errors`` by file (the ConfigError
    text: the file, the key, what is allowed)."""

    folder: Path
    configs: dict[str, ModelConfig] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def error_text(self) -> str:
        return (
            f"{len(self.errors)} invalid model config(s) in {self.folder}; their DAGs are not "
            "loaded (every other model's are). Fix the file(s), or run `costaware check`:\n\n"
            + "\n\n".join(self.errors.values())
        )

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigError(self.error_text())


def load_models(models_dir: str | Path, cache: Path | None = None) -> ModelConfigs:
    """Load each ``*.yaml`` of ``models_dir``; a bad file is recorded, never raised.

    A model is found by its file name (``get_model`` reads ``<name>.yaml``), so a file whose
    ``name`` differs from its file name is an error: its runs could not find it, and two files
    could claim the same model. ``cache``: a ``ParsedYamlCache`` file to reuse parsed YAML
    from (what the DAG files do); the result is the same with or without it."""
    folder = Path(models_dir)
    found = ModelConfigs(folder)
    if not folder.is_dir():
        found.errors[str(folder)] = (
            f"{folder}: no such folder of model configs; set COSTAWARE_MODELS_DIR to the folder "
            "holding the model YAML files (default include/models)"
        )
        return found
    for path in sorted(folder.glob("*.yml")):
        found.errors[str(path)] = (
            f"{path}: not read: model configs must end in .yaml; rename it to {path.stem}.yaml"
        )
    parsed = ParsedYamlCache(cache).open() if cache is not None else None
    loaded: list[tuple[Path, ModelConfig]] = []
    for path in model_config_paths(folder):
        try:
            loaded.append((path, _load_model_config(path, parsed.parse if parsed else _load_yaml)))
        except ConfigError as exc:
            found.errors[str(path)] = str(exc)
    if parsed is not None:
        parsed.save()
    try:
        load_budgets(folder, [p.stem for p in model_config_paths(folder)])
    except ConfigError as exc:
        found.errors[str(folder / BUDGETS_FILE)] = str(exc)
    for path, cfg in loaded:
        if cfg.name != path.stem:
            others = [str(p) for p, c in loaded if c.name == cfg.name and p != path]
            also = f" (model {cfg.name!r} is also declared by {', '.join(others)})"
            found.errors[str(path)] = (
                f"{path}: invalid model config\n  name: {cfg.name!r} does not match the file "
                f"name {path.name!r}; a model's runs read <name>.yaml, so rename the file to "
                f"{cfg.name}.yaml or set name: {path.stem}" + (also if others else "")
            )
        else:
            found.configs[cfg.name] = cfg
    return found


def load_models_for_dags(settings: Settings | None = None) -> ModelConfigs:
    """The model configs the DAG files build DAGs from: ``COSTAWARE_MODELS_DIR`` when set,
    else ``include/models``. Read here, in the library, because DAG files must not read the
    environment themselves (STYLE.md). Parsed YAML is reused from ``parsed_yaml_cache``."""
    settings = settings or Settings.from_env()
    return load_models(settings.models_dir, cache=parsed_yaml_cache(settings))


def parsed_yaml_cache(settings: Settings) -> Path:
    """The ``ParsedYamlCache`` file of the DAG files: local to this machine, under
    ``COSTAWARE_HOME/cache/``, one per folder of configs (tests and benchmarks point
    ``COSTAWARE_MODELS_DIR`` elsewhere). Safe to delete at any time."""
    folder = str(settings.models_dir.resolve())
    digest = hashlib.sha256(folder.encode()).hexdigest()[:16]
    return settings.home / "cache" / f"model_configs-{digest}.json"


def load_all(models_dir: str | Path) -> dict[str, ModelConfig]:
    """Every model config of ``models_dir``; raises one ConfigError naming every bad file."""
    found = load_models(models_dir)
    found.raise_errors()
    return found.configs


def get_model(models_dir: str | Path, name: str) -> ModelConfig:
    path = Path(models_dir) / f"{name}.yaml"
    if not path.exists() or path.name == BUDGETS_FILE:
        available = [p.stem for p in model_config_paths(models_dir)]
        raise ConfigError(f"unknown model {name!r}; available: {available}")
    return load_model_config(path)


# Run parameters (the trigger form). Validated again here so the library rejects what a
# caller outside Airflow passes too.
class RunParams(_Strict):
    force: bool = False
    dry_run: bool = False
    max_usd_per_point_batch: float | None = Field(default=None, gt=0)
    batch: str | None = None

    @classmethod
    def parse(cls, conf: dict[str, Any] | None) -> RunParams:
        conf = {k: v for k, v in (conf or {}).items() if v is not None and v != ""}
        try:
            conf = renamed_limit(conf, "run parameters")
        except ValueError as exc:
            raise ConfigError(f"invalid run parameters: {exc}") from exc
        unknown = sorted(set(conf) - set(cls.model_fields))
        if unknown:
            raise ConfigError(
                f"unknown run parameter(s) {unknown}; allowed: {sorted(cls.model_fields)}"
            )
        try:
            return cls.model_validate(conf)
        except ValidationError as exc:
            msgs = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid run parameters: {msgs}") from exc
