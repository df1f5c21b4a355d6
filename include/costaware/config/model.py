"""``ModelConfig``: one model's YAML, every section, and the checks across sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from costaware.config.base import _Strict
from costaware.config.data import (
    DRIFT_METHODS,
    NUMERIC_ONLY_METHODS,
    DataSpec,
    DriftColumn,
    DriftSpec,
    Feature,
    Target,
)
from costaware.config.live import AirflowSpec, MonitorSpec, ServingSpec
from costaware.config.metrics import METRIC_SPECS, MetricSpec
from costaware.config.policy import CostPolicy, EvaluationSpec, Tags, renamed_limit
from costaware.config.training import TrainingSpec


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
