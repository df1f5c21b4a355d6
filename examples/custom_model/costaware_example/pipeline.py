"""A custom training entry point: ``training.entry_point: costaware_example.pipeline:train``.

The contract costaware calls (README, "Bring your model"):

* ``train(frame, config)`` gets ``frame``, a pandas DataFrame of the training window: the
  model's feature columns in config order — numeric ones as float64 with NaN where a value is
  missing, categorical ones as pandas ``category`` with the categories fixed for the model's
  life (declared, or learned from this window) — plus the target column, encoded: 0/1 for a
  binary target (1 = ``target.positive``), the class's index in ``target.classes`` for a
  multiclass one, a float for regression. ``config`` is the model's ``ModelConfig``.
* It returns a fitted, picklable model with scikit-learn's API: ``predict_proba`` for a
  classification target (columns in the order of its ``classes_``, which costaware maps
  onto ``target.classes``), ``predict`` for regression. costaware scores it on frames of the
  same shape, so whatever encoding the model needs lives inside it — here a scikit-learn
  pipeline with its imputer and one-hot encoder — never in a step of its own.

Only scikit-learn classes end up in the pickle, so loading the model (serving, evaluation)
does not need this package installed; training does (the worker imports the entry point).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def build(config: Any) -> Pipeline:
    """The unfitted pipeline for a config: numeric features imputed (with a was-missing
    indicator) and scaled, categorical ones one-hot encoded (missing is a category of its
    own; a category unseen in training scores as all zeros), then a linear model."""
    numeric = [f.name for f in config.features if f.type == "numeric"]
    categorical = [f.name for f in config.features if f.type == "categorical"]
    prepare = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    params = dict(config.training.params)
    if config.target.kind == "regression":
        model: Any = Ridge(alpha=params.get("alpha", 1.0))
    else:
        model = LogisticRegression(C=params.get("C", 1.0), max_iter=params.get("max_iter", 1000))
    return Pipeline([("prepare", prepare), ("model", model)])


def train(frame: pd.DataFrame, config: Any) -> Pipeline:
    """costaware's entry point: fit the pipeline on the training window."""
    target = config.target.name
    return build(config).fit(frame.drop(columns=[target]), frame[target])
