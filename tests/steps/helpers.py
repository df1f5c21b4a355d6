"""Helpers for the trust regression tests: a step killed at a fault point, and registries.

``killed_at`` runs a step the way an Airflow task dies: in a process forked from the test,
with ``COSTAWARE_FAULTS`` naming one point, so the step SIGKILLs itself there (no cleanup, no
``finally``). The test then calls the step again in its own process — the retry — and
checks the state. A forked child must not share the parent's database connections: call
``fork_safe`` first (MLflow's SQLite store without a connection pool) and build the child's
``StepContext`` inside the child (``make_ctx``); a parent context's ledger is disposed
before the fork.

Creating an MLflow SQLite store runs its migrations (seconds), so two stores are made once
per session and copied into each test's home: an empty one, and one where ``elec2`` has
versions 1, 2, 3 (tiny XGBoost boosters on the Elec2 features; no aliases).
"""

from __future__ import annotations

import atexit
import datetime as dt
import multiprocessing
import os
import shutil
import signal
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from costaware import faults
from costaware.batches import data
from costaware.config import ModelConfig
from costaware.models.registry import Registry
from costaware.settings import Settings
from costaware.steps.context import StepContext
from costaware.store.ledger import Ledger

from .. import factories

MODEL = "elec2"
FEATURES = ["period", "nswdemand", "vicprice", "vicdemand", "transfer"]
CLOCK = dt.datetime(2024, 3, 15, 12, 0)
_FORK = multiprocessing.get_context("fork")
_TEMPLATES: dict[str, Path] = {}


def fork_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pooled MLflow connection survives into a forked child; no analytics threads."""
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def make_ctx(
    cfg: ModelConfig, settings: Settings, run_id: str, clock: dt.datetime = CLOCK
) -> StepContext:
    return StepContext(cfg, settings, run_id=run_id, actor="test", clock=clock)


def _child(point: str, faults_dir: str, fn: Callable[[], Any]) -> None:
    os.environ[faults.ENV] = point
    os.environ[faults.DIR_ENV] = faults_dir
    try:
        fn()
    except BaseException:  # noqa: BLE001 - the step failed before its fault point
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def killed_at(point: str, faults_dir: Path, fn: Callable[[], Any], timeout_s: float = 180) -> None:
    """Run ``fn`` in a forked child armed to die at ``point``; assert it died there."""
    faults_dir.mkdir(parents=True, exist_ok=True)
    proc = _FORK.Process(target=_child, args=(point, str(faults_dir), fn))
    proc.start()
    proc.join(timeout_s)
    if proc.is_alive():
        proc.kill()
        proc.join()
        pytest.fail(f"the step armed to die at {point!r} still ran after {timeout_s} s")
    assert proc.exitcode == -signal.SIGKILL, (
        f"the step armed to die at {point!r} ended with exit code {proc.exitcode} instead of "
        "being killed there (0: it never reached the point; 1: it raised first, see the "
        "captured stderr)"
    )
    assert (faults_dir / f"costaware-fault-{point}").exists()


def _booster_file(folder: Path, seed: int) -> Path:
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.random((200, len(FEATURES))), columns=FEATURES)
    y = (x["nswdemand"] + 0.3 * rng.normal(size=200) > 0.5).astype(int)
    booster = xgb.train({"max_depth": 2, "nthread": 1, "seed": seed}, xgb.DMatrix(x, label=y), 5)
    path = folder / f"model-{seed}.ubj"
    booster.save_model(str(path))
    return path


def _template(kind: str) -> Path:
    """A migrated MLflow SQLite store, made once per process: ``empty`` or ``versions``."""
    if kind not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix=f"costaware-mlflow-{kind}-"))
        atexit.register(shutil.rmtree, folder, True)
        if kind != "empty":  # start from a copy of the migrated empty store
            shutil.copyfile(_template("empty") / "mlflow.db", folder / "mlflow.db")
        reg = Registry(f"sqlite:///{folder / 'mlflow.db'}", folder / "mlartifacts")
        assert reg.alias(MODEL, "champion") is None  # creates the tables when they are not there
        if kind == "versions":
            for seed in (1, 2, 3):
                version = reg.register(
                    MODEL,
                    _booster_file(folder, seed),
                    "xgboost",
                    f"template/{seed}",
                    params={"max_depth": 2},
                    metrics={},
                    tags={"costaware.algorithm": "xgboost"},
                )
                assert version == str(seed)
        _TEMPLATES[kind] = folder
    return _TEMPLATES[kind]


def install_registry(settings: Settings, kind: str = "versions") -> Registry:
    """Copy a template store to ``settings``' MLflow location; the Registry on it."""
    settings.home.mkdir(parents=True, exist_ok=True)
    assert settings.mlflow_uri == f"sqlite:///{settings.home / 'mlflow.db'}"
    shutil.copyfile(_template(kind) / "mlflow.db", settings.home / "mlflow.db")
    return Registry(settings.mlflow_uri, settings.mlflow_artifacts)


def accept_weeks(settings: Settings, ledger: Ledger, names: list[str]) -> None:
    """Elec2's first weeks, in time order, recorded as accepted under ``names`` with their
    labels taken in: the state intake leaves (without running Great Expectations)."""
    weeks = factories.batches(MODEL)[: len(names)]
    frames = {name: part for name, (_, part) in zip(names, weeks, strict=True)}
    accept_frames(settings, ledger, factories.model(MODEL), frames)


def accept_frames(
    settings: Settings, ledger: Ledger, cfg: ModelConfig, frames: dict[str, pd.DataFrame]
) -> None:
    """``frames`` (batch id → rows with event ids, times, features and the target), in time
    order, recorded as ``cfg``'s accepted batches with their labels taken in — as intake leaves
    them (event ids of the labels as text), without running Great Expectations."""
    labels_dir = settings.labels(cfg.name)
    labels_dir.mkdir(parents=True, exist_ok=True)
    for name, part in frames.items():
        dest = settings.accepted(cfg.name) / f"{name}.parquet"
        dest.parent.mkdir(parents=True, exist_ok=True)
        part[["event_id", "event_time", *cfg.feature_names]].to_parquet(dest, index=False)
        start, end = data.time_bounds(part)
        ledger.record_batch(
            model=cfg.name,
            batch_id=name,
            path=str(dest),
            rows=len(part),
            sha256=data.sha256_file(dest),
            status="accepted",
            message="",
            start_ts=start,
            end_ts=end,
            run_id=f"intake-{name}",
        )
        labels = labels_dir / f"labels-{name}.parquet"
        taken = part[["event_id", cfg.target.name]].astype({"event_id": str})
        taken.to_parquet(labels, index=False)
        ledger.record_label_file(
            model=cfg.name,
            name=labels.name,
            sha256=data.sha256_file(labels),
            status="accepted",
            rows=len(part),
            path=str(labels),
            run_id=f"intake-{name}",
        )


def process_running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie, killed and not reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
