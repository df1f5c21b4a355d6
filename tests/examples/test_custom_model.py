"""The example custom training entry point (examples/custom_model) under costaware's own
fitting code (``training.algorithm: custom``), on real batches of the shipped streams: it
fits, survives a pickle round trip, scores frames with missing values and categories it never
saw, and beats a constant predictor on the next, never-trained-on batch (computed here with
scikit-learn)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, root_mean_squared_error

from costaware.app.replay import load_source, split_batches
from costaware.config import ModelConfig, get_model
from costaware.models.algorithms import fit

from ..conftest import ROOT

ENTRY = "costaware_example.pipeline:train"


@pytest.fixture(autouse=True)
def _example_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "custom_model"))


def _custom(name: str, **params: float) -> tuple[ModelConfig, list]:
    cfg = get_model(ROOT / "examples" / "models", name)
    raw = cfg.model_dump(mode="json")
    raw["training"] = {**raw["training"], "algorithm": "custom", "entry_point": ENTRY}
    raw["training"]["params"] = params
    custom = ModelConfig.model_validate(raw)
    return custom, [p for _, p in split_batches(cfg, load_source(cfg, ROOT))]


def test_regression_pipeline_beats_the_training_mean() -> None:
    cfg, parts = _custom("hotel_rates", alpha=1.0)
    train, nxt = pd.concat(parts[:8]), parts[8]
    model = pickle.loads(pickle.dumps(fit(train, cfg)))
    y = nxt["avg_price_per_room"].to_numpy()
    rmse = root_mean_squared_error(y, model.predict(nxt))
    constant = root_mean_squared_error(y, np.full(len(y), train["avg_price_per_room"].mean()))
    assert rmse < 0.7 * constant  # measured 23 vs 68 EUR
    assert type(model.estimator).__module__.startswith("sklearn.")  # no example class inside


def test_classifier_scores_missing_values_and_unseen_categories() -> None:
    cfg, parts = _custom("flights_lga", C=1.0)
    train, nxt = pd.concat(parts[:2]), parts[2].copy()
    model = fit(train, cfg)
    nxt.loc[nxt.index[:5], "dest"] = "ZZZ"  # a destination no model has seen
    assert "ZZZ" not in model.categories["dest"]
    assert nxt[["wind_dir", "wind_gust"]].isna().any().all()
    proba = pickle.loads(pickle.dumps(model)).predict_proba(nxt)
    assert proba.shape == (len(nxt), 2) and np.isfinite(proba).all()
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(nxt["late"], proba[:, 1]) > 0.5
