"""MLflow model registry: versions and the aliases champion, challenger, previous_champion.

Registration is idempotent by run key (a model-version tag), so a retried Airflow task
finds the version it already registered instead of creating a second one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from costaware.errors import RegistryError

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
RUN_KEY_TAG = "costaware.run_key"
REFERENCE_TAG = "costaware.reference_path"  # the training data: the drift reference
POINTS_TAG = "costaware.reference_points"
BORN_TAG = "costaware.born_batch"  # the batch whose run trained the version
log = logging.getLogger(__name__)


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Registry:
    def __init__(self, tracking_uri: str, artifact_root: str | Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            _quiet_mlflow()
            import mlflow
            from mlflow import MlflowClient

            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True
                )
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            self._client = MlflowClient(self.tracking_uri, self.tracking_uri)
        return self._client

    def _experiment(self, model: str) -> str:
        name = f"costaware/{model}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return str(
            self.client.create_experiment(
                name, artifact_location=(self.artifact_root / model).resolve().as_uri()
            )
        )

    def find_version(self, model: str, run_key: str) -> str | None:
        try:
            versions = self.client.search_model_versions(f"name='{model}'")
        except Exception:
            return None
        for v in versions:
            if v.tags.get(RUN_KEY_TAG) == run_key:
                return str(v.version)
        return None

    def register(
        self,
        model: str,
        model_path: str | Path,
        algorithm: str,
        run_key: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
    ) -> str:
        """Log the trained model as an MLflow run and register it; return its version."""
        existing = self.find_version(model, run_key)
        if existing is not None:
            log.info("version %s of %s already registered for %s", existing, model, run_key)
            return existing
        import mlflow

        from costaware.models.scoring import load_model_file

        self.client  # noqa: B018 - configures mlflow's URIs
        obj = load_model_file(model_path)
        reqs = _requirements(algorithm)
        with mlflow.start_run(experiment_id=self._experiment(model), run_name=run_key[:200]) as run:
            mlflow.log_params({k: str(v)[:250] for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
            mlflow.set_tags({**tags, RUN_KEY_TAG: run_key})
            if algorithm == "xgboost":
                info = mlflow.xgboost.log_model(obj, name="model", pip_requirements=reqs)
            else:
                info = mlflow.sklearn.log_model(obj, name="model", pip_requirements=reqs)
            run_id = run.info.run_id
        try:
            self.client.get_registered_model(model)
        except Exception:
            self.client.create_registered_model(model, tags={"costaware": "true"})
        mv = self.client.create_model_version(
            model, info.model_uri, run_id=run_id, tags={**tags, RUN_KEY_TAG: run_key}
        )
        return str(mv.version)

    def alias(self, model: str, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(model, alias).version)
        except Exception:
            return None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model, alias, str(version))

    def delete_alias(self, model: str, alias: str) -> None:
        try:
            self.client.delete_registered_model_alias(model, alias)
        except Exception:
            log.debug("alias %s of %s was not set", alias, model)

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(model, str(version)).tags)

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(model, str(version), key, value)

    def versions(self, model: str) -> list[str]:
        try:
            found = self.client.search_model_versions(f"name='{model}'")
        except Exception:
            return []
        return sorted((str(v.version) for v in found), key=int)

    def promote(self, model: str, version: str) -> str | None:
        """champion ← version; previous_champion ← the old champion. Returns the old one."""
        old = self.alias(model, CHAMPION)
        if old == str(version):
            return old  # already done (a retried task): move nothing twice
        if old is not None:
            self.set_alias(model, PREVIOUS, old)
        self.set_alias(model, CHAMPION, version)
        if self.alias(model, CHALLENGER) == str(version):
            self.delete_alias(model, CHALLENGER)
        return old

    def rollback(self, model: str, to_version: str | None = None) -> tuple[str, str]:
        """champion ← ``to_version`` (default: previous_champion). Returns (from, to)."""
        current = self.alias(model, CHAMPION)
        if current is None:
            raise RegistryError(f"model {model!r} has no champion to roll back from")
        target = to_version or self.alias(model, PREVIOUS)
        if target is None:
            raise RegistryError(
                f"model {model!r} has no previous_champion; name a version to roll back to "
                f"(registered versions: {self.versions(model)})"
            )
        if str(target) not in self.versions(model):
            raise RegistryError(
                f"model {model!r} has no version {target!r}; "
                f"registered versions: {self.versions(model)}"
            )
        if str(target) == current:
            raise RegistryError(f"version {target} of {model!r} is already the champion")
        self.set_alias(model, CHAMPION, str(target))
        self.set_alias(model, PREVIOUS, current)
        return current, str(target)

    def load(self, model: str, version: str) -> Any:
        import mlflow

        self.client  # noqa: B018
        uri = f"models:/{model}/{version}"
        flavor = self.version_tags(model, version).get("costaware.algorithm", "xgboost")
        if flavor == "xgboost":
            return mlflow.xgboost.load_model(uri)
        return mlflow.sklearn.load_model(uri)


def _requirements(algorithm: str) -> list[str]:
    from importlib.metadata import version

    pkg = "xgboost" if algorithm == "xgboost" else "scikit-learn"
    return [f"{pkg}=={version(pkg)}"]
