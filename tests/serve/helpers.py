"""Real Elec2 champions in a real registry, and a real `costaware serve` process."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from costaware.models.registry import CHAMPION, POINTS_TAG, REFERENCE_TAG, Registry

from .. import factories
from ..conftest import ROOT
from ..support.servers import wait_for_port

CFG = factories.model("elec2")
FEATURES = CFG.feature_names


@functools.cache
def _batches() -> list[tuple[str, pd.DataFrame]]:
    return factories.batches("elec2")


def weeks(first: int, last: int) -> pd.DataFrame:
    """Elec2 weeks first..last (inclusive) as one frame (event_id, event_time, features, class)."""
    parts = _batches()[first : last + 1]
    return pd.concat([p for _, p in parts], ignore_index=True)


def train(frame: pd.DataFrame, folder: Path, name: str, rounds: int = 60) -> Path:
    import xgboost as xgb

    y = (frame[CFG.target.name] == CFG.target.positive).astype(int)
    params = {**CFG.training.params, "objective": "binary:logistic", "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(frame[FEATURES], label=y), rounds)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ubj"
    booster.save_model(str(path))
    return path


def register(
    reg: Registry, model_path: Path, key: str, train_frame: pd.DataFrame, points: float | None
) -> str:
    """Register a trained booster with the tags the retrain DAG gives a version: its
    training data as the drift reference and (when promoted) its held-out points."""
    from costaware.batches.drift import SCORE_COLUMN
    from costaware.models.scoring import load_model_file, score

    ref = train_frame[FEATURES].copy()
    ref[SCORE_COLUMN] = score(load_model_file(model_path), train_frame, FEATURES)
    ref_path = model_path.with_suffix(".reference.parquet")
    ref.to_parquet(ref_path)
    tags = {"costaware.algorithm": "xgboost", REFERENCE_TAG: str(ref_path)}
    if points is not None:
        tags[POINTS_TAG] = str(points)
    return reg.register("elec2", model_path, "xgboost", key, params={}, metrics={}, tags=tags)


def champion(reg: Registry, version: str) -> None:
    reg.set_alias("elec2", CHAMPION, version)


def models_dir(folder: Path, **serving: Any) -> Path:
    """A copy of the shipped model configs with elec2's ``serving:``/``monitor:`` set."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for src in (ROOT / "include" / "models").glob("*.yaml"):
        data = yaml.safe_load(src.read_text())
        if data["name"] == "elec2":
            data["data"]["source"] = str(ROOT / data["data"]["source"])
            for key in ("serving", "monitor"):
                if key in serving:
                    data[key] = serving[key]
        (folder / src.name).write_text(yaml.safe_dump(data))
    return folder


@contextlib.contextmanager
def serve_process(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """`costaware serve elec2` as its own process; stopped with SIGTERM (and waited for)."""
    exe = Path(sys.executable).with_name("costaware")
    cmd = [str(exe), "serve", "elec2", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, "OMP_NUM_THREADS": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, 90, proc)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def rows(frame: pd.DataFrame) -> list[dict[str, float]]:
    return [{f: float(v) for f, v in zip(FEATURES, r, strict=True)} for r in frame[FEATURES].values]


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise TimeoutError(f"not true after {timeout} s: {check}")


def labels_of(frame: pd.DataFrame) -> np.ndarray:
    return (frame[CFG.target.name] == CFG.target.positive).astype(int).to_numpy()
