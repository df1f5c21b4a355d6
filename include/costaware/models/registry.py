"""MLflow model registry: versions and the aliases champion, challenger, previous_champion.

Registration is idempotent by run key (a model-version tag), so a retried Airflow task
finds the version it already registered instead of creating a second one.

Absent is not error: only MLflow's own ``RESOURCE_DOES_NOT_EXIST`` answer means "no such
model"; any other failure (server down, timeout, a locked store) raises
``RegistryUnavailable`` and the task fails (Airflow retries it). Alias moves are
compare-and-set (``move_champion``): they name the champion they expect to replace.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

from costaware import faults
from costaware.errors import ChampionMoved, RegistryError, RegistryUnavailable

MODEL_NAME = re.compile(r"[a-z][a-z0-9_]{1,40}")  # as config.ModelConfig.name allows
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
RUN_KEY_TAG = "costaware.run_key"
RUN_KEY_SHA_TAG = "costaware.run_key_sha"  # the run key, safe inside an MLflow filter string
MODEL_URI_TAG, MODEL_ID_TAG = "costaware.model_uri", "costaware.model_id"
REFERENCE_TAG = "costaware.reference_path"  # the training data: the drift reference
POINTS_TAG = "costaware.reference_points"
BORN_TAG = "costaware.born_batch"  # the batch whose run trained the version
# How the version was logged: "pyfunc" (a costaware Model with its input encoding, every
# algorithm and target kind); absent on versions logged before, which load by algorithm.
FLAVOR_TAG = "costaware.flavor"
log = logging.getLogger(__name__)


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _does_not_exist(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _unavailable(what: str, exc: BaseException) -> RegistryUnavailable:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return RegistryUnavailable(
        f"the model registry could not answer {what}: {type(exc).__name__}: {first} "
        "(nothing was changed; the task can be retried once the registry is reachable)"
    )


class Registry:
    def __init__(self, tracking_uri: str, artifact_root: str | Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            _quiet_mlflow()
            from mlflow import MlflowClient

            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True
                )
            self._client = MlflowClient(self.tracking_uri, self.tracking_uri)
        self._activate()
        return self._client

    def _activate(self) -> None:
        """Point MLflow's process-wide (fluent) API at this registry: ``start_run``,
        ``log_model`` and ``load_model`` use it, and another Registry may have moved it."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def _experiment(self, model: str) -> str:
        name = f"costaware/{model}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        if self.tracking_uri.startswith(("http://", "https://")):
            # A tracking server keeps artifacts where it was told to (``--artifacts-destination``,
            # e.g. S3) and serves them: every worker loads models through it, needing no local
            # path and no S3 credentials of its own.
            return str(self.client.create_experiment(name))
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return str(
            self.client.create_experiment(
                name, artifact_location=(self.artifact_root / model).resolve().as_uri()
            )
        )

    def find_version(self, model: str, run_key: str) -> str | None:
        for v in self._search_versions(model):
            if v.tags.get(RUN_KEY_TAG) == run_key:
                return str(v.version)
        return None

    def _search_versions(self, model: str) -> list[Any]:
        # The name goes into an MLflow filter string: only a config-valid name may.
        if not MODEL_NAME.fullmatch(model):
            raise RegistryError(f"not a model name: {model!r}; allowed: {MODEL_NAME.pattern}")
        try:
            return list(self.client.search_model_versions(f"name='{model}'"))
        except Exception as exc:
            if _does_not_exist(exc):
                return []
            raise _unavailable(f"which versions {model!r} has", exc) from exc

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
        experiment = self._experiment(model)
        run_id, model_uri, model_id = self._logged_model(experiment, run_key) or self._log_model(
            experiment, model_path, algorithm, run_key, params, metrics, tags
        )
        flavor = self._flavor_of(run_id)
        if self._registered_model(model) is None:
            try:
                self.client.create_registered_model(model, tags={"costaware": "true"})
            except Exception as exc:  # another worker may have created it just now
                if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise _unavailable(f"creating the registered model {model!r}", exc) from exc
        faults.point("train_challenger.model_logged")
        # A tracking server checks that a models:/ source names its logged model (MLflow 3).
        mv = self.client.create_model_version(
            model,
            model_uri,
            run_id=run_id,
            tags={**tags, RUN_KEY_TAG: run_key, **({FLAVOR_TAG: flavor} if flavor else {})},
            model_id=model_id,
        )
        return str(mv.version)

    def _logged_model(self, experiment: str, run_key: str) -> tuple[str, str, str] | None:
        """The model an earlier try of this run logged but did not register yet: (run id,
        model URI, model id). A run of this key that died while logging is marked deleted."""
        try:
            found = self.client.search_runs(
                [experiment], filter_string=f"tags.`{RUN_KEY_SHA_TAG}` = '{_sha(run_key)}'"
            )
        except Exception as exc:
            raise _unavailable(f"which runs logged {run_key!r}", exc) from exc
        for run in found:
            t = run.data.tags
            if MODEL_URI_TAG in t and t.get(RUN_KEY_TAG) == run_key:
                log.info("reusing the model run %s logged by an earlier try", run.info.run_id)
                return run.info.run_id, t[MODEL_URI_TAG], t[MODEL_ID_TAG]
            self.client.delete_run(run.info.run_id)  # partial: no model was logged
        return None

    def _log_model(
        self,
        experiment: str,
        model_path: str | Path,
        algorithm: str,
        run_key: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
    ) -> tuple[str, str, str]:
        import mlflow

        from costaware.models.scoring import load_model_file

        self.client  # noqa: B018 - points mlflow's fluent API here
        obj = load_model_file(model_path)
        reqs = _requirements(algorithm)
        with mlflow.start_run(experiment_id=experiment, run_name=run_key[:200]) as run:
            mlflow.set_tags({**tags, RUN_KEY_TAG: run_key, RUN_KEY_SHA_TAG: _sha(run_key)})
            mlflow.log_params({k: str(v)[:250] for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
            if hasattr(obj, "scores"):  # a costaware Model: every algorithm and kind
                from costaware.models.pyfunc import CostawarePyfunc

                mlflow.set_tag(FLAVOR_TAG, "pyfunc")
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=CostawarePyfunc(obj), pip_requirements=reqs
                )
            elif algorithm == "xgboost":
                info = mlflow.xgboost.log_model(obj, name="model", pip_requirements=reqs)
            else:
                info = mlflow.sklearn.log_model(obj, name="model", pip_requirements=reqs)
            # Last: a run with this tag has its model (see ``_logged_model``).
            mlflow.set_tags({MODEL_URI_TAG: info.model_uri, MODEL_ID_TAG: info.model_id})
            return run.info.run_id, info.model_uri, info.model_id

    def _flavor_of(self, run_id: str) -> str | None:
        run = self._call(f"run {run_id}", self.client.get_run, run_id)
        return run.data.tags.get(FLAVOR_TAG)

    def _registered_model(self, model: str) -> Any | None:
        try:
            return self.client.get_registered_model(model)
        except Exception as exc:
            if _does_not_exist(exc):
                return None
            raise _unavailable(f"about model {model!r}", exc) from exc

    def aliases(self, model: str) -> dict[str, str]:
        """Every alias of ``model`` → its version; empty when the model does not exist."""
        found = self._registered_model(model)
        return {} if found is None else {str(k): str(v) for k, v in found.aliases.items()}

    def alias(self, model: str, alias: str) -> str | None:
        """The version behind ``alias``; None only when the registry says it is not set."""
        return self.aliases(model).get(alias)

    def set_alias(self, model: str, alias: str, version: str) -> None:
        try:
            self.client.set_registered_model_alias(model, alias, str(version))
        except Exception as exc:
            raise _unavailable(f"setting {alias}={version} on {model!r}", exc) from exc

    def delete_alias(self, model: str, alias: str) -> None:
        try:
            self.client.delete_registered_model_alias(model, alias)
        except Exception as exc:
            if not _does_not_exist(exc) and alias in self.aliases(model):
                raise _unavailable(f"removing {alias} from {model!r}", exc) from exc

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        """Call the MLflow client: "does not exist" → RegistryError, any other failure →
        RegistryUnavailable (retryable)."""
        try:
            return fn(*args)
        except Exception as exc:
            if _does_not_exist(exc):
                raise RegistryError(f"the model registry has no {what}") from exc
            raise _unavailable(what, exc) from exc

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        mv = self._call(
            f"version {version} of {model!r}", self.client.get_model_version, model, str(version)
        )
        return dict(mv.tags)

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._call(
            f"version {version} of {model!r}",
            self.client.set_model_version_tag,
            model,
            str(version),
            key,
            value,
        )

    def versions(self, model: str) -> list[str]:
        return sorted((str(v.version) for v in self._search_versions(model)), key=int)

    def move_champion(self, model: str, expected: str | None, target: str) -> str | None:
        """champion ← ``target``, previous_champion ← ``expected``, only if the champion is still
        ``expected`` (None: no champion yet). Hold ``Ledger.model_lock(model)`` around it.

        Safe to repeat: when an earlier try already moved the aliases (champion is ``target``
        and previous_champion is ``expected``), nothing moves again. Any other champion raises
        ``ChampionMoved``. Returns ``expected``."""
        target = str(target)
        aliases = self.aliases(model)
        current, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
        if current == target and (expected is None or previous == expected):
            return expected  # done by an earlier try of this operation
        if current != expected:
            raise ChampionMoved(
                f"{model}: refusing to make v{target} champion: the decision was made against "
                f"champion {_v(expected)}, but the champion is now {_v(current)} "
                f"(previous_champion {_v(previous)}); a rollback or another run moved it. "
                "Trigger a new run to evaluate against the current champion."
            )
        if expected is not None:
            self.set_alias(model, PREVIOUS, expected)
        faults.point("move_champion.previous_set")
        self.set_alias(model, CHAMPION, target)
        return expected

    def promote(self, model: str, version: str, expected: str | None) -> str | None:
        """champion ← ``version`` if the champion is still ``expected``; the challenger alias
        is cleared once it is the champion. Returns the old champion."""
        old = self.move_champion(model, expected, version)
        if self.alias(model, CHALLENGER) == str(version):
            self.delete_alias(model, CHALLENGER)
        return old

    def rollback_target(self, model: str, to_version: str | None = None) -> tuple[str, str]:
        """(current champion, the version a rollback would make champion), checked."""
        aliases = self.aliases(model)
        current = aliases.get(CHAMPION)
        if current is None:
            raise RegistryError(f"model {model!r} has no champion to roll back from")
        target = to_version or aliases.get(PREVIOUS)
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
        return current, str(target)

    def load(self, model: str, version: str) -> Any:
        import mlflow

        self.client  # noqa: B018
        uri = f"models:/{model}/{version}"
        tags = self.version_tags(model, version)
        what = f"model files of version {version} of {model!r}"
        if tags.get(FLAVOR_TAG) == "pyfunc":
            loaded = self._call(what, mlflow.pyfunc.load_model, uri)
            return loaded.unwrap_python_model().model
        flavor = tags.get("costaware.algorithm", "xgboost")
        loader = mlflow.xgboost.load_model if flavor == "xgboost" else mlflow.sklearn.load_model
        return self._call(what, loader, uri)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _v(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


def _requirements(algorithm: str) -> list[str]:
    from importlib.metadata import version

    pkgs = {"xgboost": ["xgboost"], "lightgbm": ["lightgbm"]}.get(algorithm, ["scikit-learn"])
    return [f"{pkg}=={version(pkg)}" for pkg in [*pkgs, "pandas", "numpy"]]
