"""Absent is not error: a registry that is briefly unreachable never reads as "no champion".

The registry here is a real ``mlflow server`` reached over HTTP through a proxy that can be
switched off. The code before this fix turned any exception from ``get_model_version_by_alias``
and ``search_model_versions`` into None: with the server unreachable the checkpoint saw "no
champion yet" (retrain with no cost check, promote on guardrails alone) and a retried
training task, not finding its version, registered a second one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from costaware.errors import RegistryUnavailable
from costaware.models.registry import CHAMPION, PREVIOUS, Registry
from costaware.settings import Settings
from costaware.steps.context import StepContext
from costaware.steps.measure import measure_drift

from .. import factories
from ..conftest import ROOT
from ..support.servers import OutageProxy, mlflow_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, OutageProxy]]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(folder) as url:
        proxy = OutageProxy(int(url.rsplit(":", 1)[1]))
        try:
            yield url, proxy
        finally:
            proxy.close()


@pytest.fixture(autouse=True)
def no_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow retries a failed request with backoff for minutes by default; two quick tries
    # are enough to see the outage (Airflow's task retry is the retry that matters) and to
    # ride over a pooled keep-alive connection the server closed.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


def _booster(folder: Path, seed: int) -> Path:
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + rng.normal(size=200) > 0).astype(int)
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=y), 5)
    path = folder / f"model-{seed}.ubj"
    booster.save_model(str(path))
    return path


def _register(reg: Registry, model: str, path: Path, key: str) -> str:
    tags = {"costaware.algorithm": "xgboost"}
    return reg.register(model, path, "xgboost", key, params={}, metrics={}, tags=tags)


def test_outage_fails_loudly_and_retry_registers_once(server, tmp_path: Path) -> None:
    _, proxy = server
    reg = Registry(f"http://127.0.0.1:{proxy.port}", tmp_path / "unused")
    model = "outage_model"
    v1 = _register(reg, model, _booster(tmp_path, 1), "run-1")
    reg.set_alias(model, CHAMPION, v1)
    assert reg.alias(model, CHAMPION) == v1
    # The registry's own "does not exist" answers are absences, not errors.
    assert reg.alias(model, PREVIOUS) is None
    assert reg.alias("never_registered", CHAMPION) is None
    assert reg.versions("never_registered") == []

    proxy.down()
    with pytest.raises(RegistryUnavailable, match="could not answer"):
        reg.alias(model, CHAMPION)
    with pytest.raises(RegistryUnavailable):
        reg.find_version(model, "run-2")
    with pytest.raises(RegistryUnavailable):  # the training task fails; nothing registered
        _register(reg, model, _booster(tmp_path, 2), "run-2")

    proxy.up()
    v2 = _register(reg, model, _booster(tmp_path, 2), "run-2")  # Airflow's retry
    again = _register(reg, model, _booster(tmp_path, 2), "run-2")  # and one more
    assert again == v2
    assert reg.versions(model) == [v1, v2] == ["1", "2"]
    assert reg.alias(model, CHAMPION) == v1


def test_a_step_fails_instead_of_seeing_no_champion(server, tmp_path: Path) -> None:
    """measure_drift used to answer "no champion yet: nothing to compare with"."""
    _, proxy = server
    settings = Settings.from_env(
        {
            "COSTAWARE_HOME": str(tmp_path / "home"),
            "COSTAWARE_PROJECT_ROOT": str(ROOT),
            "COSTAWARE_MLFLOW_URI": f"http://127.0.0.1:{proxy.port}",
        }
    )
    assert settings.mlflow_uri.startswith("http://")
    ctx = StepContext(factories.model("elec2"), settings, run_id="r-outage")
    proxy.down()
    try:
        with pytest.raises(RegistryUnavailable):
            measure_drift(ctx, {"batch_id": "b1", "path": str(tmp_path / "none.parquet")})
    finally:
        proxy.up()
    # Reachable again, the same step answers from the registry: elec2 has no model there.
    out = measure_drift(ctx, {"batch_id": "b1", "path": str(tmp_path / "none.parquet")})
    assert out["skipped"].startswith("no champion yet")
