"""The local backend: real subprocesses, real SIGTERM interruptions, exact resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costaware.costs.prices import StaticPriceSource
from costaware.errors import UnknownBackendError
from costaware.models.scoring import load_model_file, score
from costaware.models.training import get_backend, run_to_end

from ... import factories
from .jobs import FEATURES
from .jobs import make_backend as _backend
from .jobs import make_job as _job


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parts = factories.batches("elec2")[:4]
    frame = pd.concat([p for _, p in parts])
    path = tmp_path_factory.mktemp("train") / "train.parquet"
    frame.to_parquet(path)
    return path


def test_interrupted_run_resumes_to_the_same_model(tmp_path: Path, train_file: Path) -> None:
    frame = pd.read_parquet(train_file)
    plain = run_to_end(_backend(0.0), _job(tmp_path, train_file, "plain"))
    hit = run_to_end(_backend(1.0, max_interruptions=2), _job(tmp_path, train_file, "hit"))
    assert plain.interruptions == 0 and plain.capacity == "spot"
    assert hit.interruptions == 2
    assert [a.capacity for a in hit.attempts] == ["spot", "spot", "on_demand"]
    assert hit.capacity == "mixed"
    # Progress is kept across attempts: each one starts where the previous stopped.
    assert all(
        b.start_chunk == a.end_chunk for a, b in zip(hit.attempts, hit.attempts[1:], strict=False)
    )
    a = score(load_model_file(plain.model_path), frame, FEATURES)
    b = score(load_model_file(hit.model_path), frame, FEATURES)
    np.testing.assert_array_equal(a, b)


def test_cost_is_priced_per_attempt(tmp_path: Path, train_file: Path) -> None:
    res = run_to_end(_backend(1.0, max_interruptions=1), _job(tmp_path, train_file, "cost"))
    prices = StaticPriceSource()
    expected = sum(
        a.billed_seconds / 3600 * prices.price("m5.xlarge", "us-east-1", a.capacity).usd_per_hour
        for a in res.attempts
    )
    assert res.usd == pytest.approx(expected)
    assert res.billed_s >= 2 * 5 * 60  # start-up overhead billed on each attempt
    assert "static price table" in res.price_source


@pytest.mark.parametrize("algorithm", ["sklearn_hgb", "sklearn_logreg"])
def test_sklearn_algorithms(tmp_path: Path, train_file: Path, algorithm: str) -> None:
    job = _job(tmp_path, train_file, algorithm, algorithm)
    params = {"max_depth": 4} if algorithm == "sklearn_hgb" else {"C": 0.5}
    res = run_to_end(_backend(0.0), dataclasses.replace(job, params=params))
    s = score(load_model_file(res.model_path), pd.read_parquet(train_file), FEATURES)
    assert s.shape == (4 * 336,) and np.isfinite(s).all()


def test_unknown_backend_lists_names() -> None:
    with pytest.raises(
        UnknownBackendError,
        match=r"unknown training backend 'k8s'; available: \['local', 'sagemaker', 'vertex'\]",
    ):
        get_backend("k8s")
