"""Load a trained model file and score a frame, whatever the algorithm and target kind.

``predict_scores`` gives what the metrics read (``costaware.models.algorithms``: P(positive)
for binary, one probability per class for multiclass, the value for regression); ``score``
gives one number per row, the prediction column drift compares (multiclass: the index of
the predicted class, compared as a category).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def load_model_file(path: str | Path) -> Any:
    path = Path(path)
    if path.suffix == ".ubj":  # a bare XGBoost booster (models trained before model kinds)
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path))
        return booster
    with path.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - written by our own worker


def predict_scores(model: Any, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Scores by target kind: (n,) P(positive) | (n, K) class probabilities | (n,) values."""
    if hasattr(model, "scores"):  # costaware.models.algorithms.Model
        return np.asarray(model.scores(frame))
    x = frame[features]
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(x))[:, 1]
    import xgboost as xgb

    return np.asarray(model.predict(xgb.DMatrix(x)))


def score(model: Any, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """One number per row: P(positive), the predicted value, or (multiclass) the index of
    the most probable class."""
    s = predict_scores(model, frame, features)
    return s.argmax(axis=1).astype(float) if s.ndim == 2 else s
