"""Real small frames for the model-kind tests, all from data/elec2.csv.

* ``demand_band``: a string category binned from the raw ``nswdemand`` (low / mid / high),
  with some values blanked (missing);
* ``day_part``: a string category from ``period`` (night / morning / afternoon / evening);
* ``nswdemand``: numeric with some values blanked (``nullable: true``);
* targets: ``class`` (binary, the data set's own), ``price_band`` (multiclass: ``nswprice``
  in three bands) and ``price`` (regression: ``nswprice`` itself, never a feature).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from costaware.config import ModelConfig

from ..conftest import ROOT

FEATURES = ["period", "nswdemand", "vicprice", "transfer", "demand_band", "day_part"]
TARGETS = {"binary": "class", "multiclass": "price_band", "regression": "price"}
METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
CLASSES = ["low", "mid", "high"]


def frame(rows: int = 3000, start: int = 0, seed: int = 0) -> pd.DataFrame:
    raw = pd.read_csv(ROOT / "data" / "elec2.csv", skiprows=range(1, start + 1), nrows=rows)
    rng = np.random.default_rng(seed)
    out = raw[["period", "nswdemand", "vicprice", "transfer", "class"]].copy()
    out["demand_band"] = pd.cut(
        raw["nswdemand"], [-1, 0.35, 0.5, 2], labels=["low", "mid", "high"]
    ).astype(object)
    out["day_part"] = pd.cut(
        raw["period"], [-1, 0.25, 0.5, 0.75, 2], labels=["night", "morning", "afternoon", "evening"]
    ).astype(object)
    out.loc[rng.random(rows) < 0.05, "nswdemand"] = np.nan
    out.loc[rng.random(rows) < 0.05, "demand_band"] = None
    # Three price bands at fixed round cut points (about 1/4, 1/4, 1/2 of the first rows).
    out["price_band"] = pd.cut(raw["nswprice"], [-1, 0.045, 0.07, 2], labels=CLASSES).astype(object)
    out["price"] = raw["nswprice"] * 100
    return out.reset_index(drop=True)


def config(
    kind: str = "binary",
    algorithm: str = "xgboost",
    metric: str | None = None,
    features: list[dict[str, Any]] | None = None,
    **training: Any,
) -> ModelConfig:
    feats = features or [
        {"name": "period", "min": 0, "max": 1},
        {"name": "nswdemand", "min": 0, "max": 1, "nullable": True},
        {"name": "vicprice", "min": 0, "max": 1},
        {"name": "transfer", "min": 0, "max": 1},
        {"name": "demand_band", "type": "categorical", "nullable": True},
        {
            "name": "day_part",
            "type": "categorical",
            "categories": ["night", "morning", "afternoon", "evening"],
        },
    ]
    target: dict[str, Any] = {"name": TARGETS[kind], "kind": kind}
    if kind == "multiclass":
        target["classes"] = CLASSES
    params = {"max_depth": 4, "eta": 0.2} if algorithm == "xgboost" else {}
    if algorithm == "lightgbm":
        params = {"num_leaves": 15, "learning_rate": 0.2, "min_data_in_leaf": 10}
    return ModelConfig.model_validate(
        {
            "name": f"kinds_{kind}",
            "data": {"source": "data/elec2.csv", "batch_rows": 336},
            "features": feats,
            "target": target,
            "validation_suite": f"kinds_{kind}_batch",
            "metric": metric or METRIC[kind],
            "training": {
                "algorithm": algorithm,
                "params": params,
                "num_boost_round": 40,
                "chunk_rounds": 10,
                **training,
            },
            "cost_policy": {
                "max_usd_per_point_batch": 0.01,
                "auto_approve_usd": 1,
                "monthly_budget_usd": 5,
            },
            "tags": {"model": f"kinds_{kind}", "team": "test"},
        }
    )


def pipeline(**params: Any) -> Any:
    """A scikit-learn pipeline with its encoder inside (training.estimator in the tests)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["demand_band", "day_part"]),
            ("num", SimpleImputer(), ["period", "nswdemand", "vicprice", "transfer"]),
        ]
    )
    return make_pipeline(encode, LogisticRegression(max_iter=500, **params))


def custom_model(frame: pd.DataFrame, config: ModelConfig) -> Any:
    """The custom contract: (training frame with features + target, config) -> fitted model
    with predict / predict_proba. A random forest on one-hot features."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    cats = [f.name for f in config.features if f.type == "categorical"]
    nums = [f.name for f in config.features if f.type == "numeric"]
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), cats), ("num", SimpleImputer(), nums)]
    )
    forest = (
        RandomForestRegressor if config.target.kind == "regression" else RandomForestClassifier
    )(n_estimators=30, max_depth=6, random_state=0, n_jobs=1)
    y = frame[config.target.name]
    return make_pipeline(encode, forest).fit(frame[config.feature_names], y)


def not_a_model(frame: pd.DataFrame, config: ModelConfig) -> Any:
    return "oops"
