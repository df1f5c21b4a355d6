"""Model configs: one YAML per model in ``include/models/``, validated with pydantic.

A bad config fails with the file, the key and what is allowed, e.g.::

    include/models/elec2.yaml: cost_policy.max_usd_per_point_batch: Input should be
    greater than 0 (got -1)

One module per concern; every name is importable from ``costaware.config`` as before the
split: ``metrics`` (MetricSpec), ``data`` (features, target, drift), ``training``,
``policy`` (evaluation, cost policy, run parameters), ``live`` (airflow, serving, monitor),
``model`` (ModelConfig), ``budgets`` (budgets.yaml), ``parsing`` (YAML, its cache, error
text) and ``load`` (a file, a folder, a model by name). The modules import each other, never
this package.
"""

from __future__ import annotations

# What the single module held by importing it, still reachable as costaware.config.<name>.
import contextlib as contextlib
import datetime as dt  # noqa: F401 - re-exported as costaware.config.dt
import hashlib as hashlib
import json as json
import logging as logging
import os as os
import re as re
import warnings as warnings
from collections.abc import Callable as Callable
from dataclasses import dataclass as dataclass
from dataclasses import field as field
from pathlib import Path as Path
from typing import Any as Any
from typing import Literal as Literal

import yaml as yaml
from pydantic import BaseModel as BaseModel
from pydantic import ConfigDict as ConfigDict
from pydantic import Field as Field
from pydantic import ValidationError as ValidationError
from pydantic import field_validator as field_validator
from pydantic import model_validator as model_validator

from costaware.config.base import _Strict as _Strict
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
from costaware.config.load import (
    _load_model_config as _load_model_config,
)
from costaware.config.metrics import (
    _CLASSIFICATION as _CLASSIFICATION,
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
from costaware.config.parsing import (
    _format_errors as _format_errors,
)
from costaware.config.parsing import (
    _load_yaml as _load_yaml,
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
from costaware.config.policy import (
    _log as _log,
)
from costaware.config.training import (
    _ENTRY_POINT as _ENTRY_POINT,
)
from costaware.config.training import (
    _IMPORT_PATH as _IMPORT_PATH,
)
from costaware.config.training import (
    ALGORITHMS,
    INCREMENTAL_ALGORITHMS,
    SageMakerSpec,
    SpotSpec,
    TrainingSpec,
    VertexSpec,
)
from costaware.errors import ConfigError as ConfigError
from costaware.settings import Settings as Settings

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
