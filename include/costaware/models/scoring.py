"""Load a trained model file and score a frame, whatever the algorithm."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def load_model_file(path: str | Path) -> Any:
    path = Path(path)
    if path.suffix == ".ubj":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path))
        return booster
    with path.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - written by our own worker


def score(model: Any, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Probability of the positive class for each row."""
    x = frame[features]
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(x))[:, 1]
    import xgboost as xgb

    return np.asarray(model.predict(xgb.DMatrix(x)))
