"""Model configs: one YAML per model in ``include/models/``, validated with pydantic.

A bad config fails with the file, the key and what is allowed, e.g.::

    include/models/elec2.yaml: cost_policy.max_usd_per_point_batch: Input should be
    greater than 0 (got -1)

One module per concern; every public name is importable from ``costaware.config``:
``metrics`` (MetricSpec), ``data`` (features, target, drift), ``training``, ``policy``
(evaluation, cost policy, run parameters), ``live`` (airflow, serving, monitor), ``model``
(ModelConfig), ``budgets`` (budgets.yaml), ``parsing`` (YAML, its cache, error text) and
``load`` (a file, a folder, a model by name). The modules import each other, never this
package.
"""

from __future__ import annotations

from costaware.config.budgets import (
    BUDGET_WINDOWS,
    BUDGETS_FILE,
    BudgetsConfig,
    SharedBudget,
    load_budgets,
)
from costaware.config.data import (
    DISTANCE_METHODS,
    DRIFT_METHODS,
    NUMERIC_ONLY_METHODS,
    PVALUE_METHODS,
    DataSpec,
    DriftColumn,
    DriftSpec,
    Feature,
    PredictionLogBatches,
    Target,
    TimeOrder,
    category_text,
)
from costaware.config.live import SCHEDULE_PRESETS, AirflowSpec, MonitorSpec, ServingSpec
from costaware.config.load import (
    ModelConfigs,
    get_model,
    load_all,
    load_model_config,
    load_models,
    load_models_for_dags,
    model_config_paths,
    parsed_yaml_cache,
)
from costaware.config.metrics import (
    METRIC_SPECS,
    METRICS,
    TARGET_KINDS,
    MetricSpec,
)
from costaware.config.model import ModelConfig
from costaware.config.parsing import (
    ParsedYamlCache,
)
from costaware.config.policy import (
    CONNECTIONS,
    CREDENTIAL_WORDS,
    LIMIT_KEY,
    OLD_LIMIT_KEY,
    CostPolicy,
    EvaluationSpec,
    RunParams,
    Tags,
    credential_options,
    renamed_limit,
)
from costaware.config.training import (
    ALGORITHMS,
    INCREMENTAL_ALGORITHMS,
    SageMakerSpec,
    SpotSpec,
    TrainingSpec,
    VertexSpec,
)

__all__ = [
    "ALGORITHMS",
    "BUDGETS_FILE",
    "BUDGET_WINDOWS",
    "CONNECTIONS",
    "CREDENTIAL_WORDS",
    "DISTANCE_METHODS",
    "DRIFT_METHODS",
    "INCREMENTAL_ALGORITHMS",
    "LIMIT_KEY",
    "METRICS",
    "METRIC_SPECS",
    "NUMERIC_ONLY_METHODS",
    "OLD_LIMIT_KEY",
    "PVALUE_METHODS",
    "SCHEDULE_PRESETS",
    "TARGET_KINDS",
    "AirflowSpec",
    "BudgetsConfig",
    "CostPolicy",
    "DataSpec",
    "DriftColumn",
    "DriftSpec",
    "EvaluationSpec",
    "Feature",
    "MetricSpec",
    "ModelConfig",
    "ModelConfigs",
    "MonitorSpec",
    "ParsedYamlCache",
    "PredictionLogBatches",
    "RunParams",
    "SageMakerSpec",
    "ServingSpec",
    "SharedBudget",
    "SpotSpec",
    "Tags",
    "Target",
    "TimeOrder",
    "TrainingSpec",
    "VertexSpec",
    "category_text",
    "credential_options",
    "get_model",
    "load_all",
    "load_budgets",
    "load_model_config",
    "load_models",
    "load_models_for_dags",
    "model_config_paths",
    "parsed_yaml_cache",
    "renamed_limit",
]
