"""Where costaware keeps its state. One place so the CLI, the DAGs and the tests agree.

Files (the landing zone, labels, accepted data, quarantine, reports, probes, drift references,
training work) live under one root URL, ``COSTAWARE_STORAGE``: by default the folder
``COSTAWARE_HOME`` (``.costaware`` in the project folder), or ``s3://bucket/prefix`` /
``gs://bucket/prefix`` with credentials from the Airflow connection
``COSTAWARE_STORAGE_CONN_ID`` (see ``store/storage.py``). ``COSTAWARE_HOME`` keeps what is
local to one machine: the default SQLite ledger and MLflow registry, Airflow's own home, logs.

The ledger is ``COSTAWARE_DB_URL``, or the database of the Airflow connection
``COSTAWARE_LEDGER_CONN_ID`` (so its password lives where Airflow keeps secrets), or SQLite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from costaware.store import storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    home: Path
    project_root: Path
    explicit_db_url: str | None
    mlflow_uri: str
    models_path: Path | None = None  # COSTAWARE_MODELS_DIR: configs outside the project
    storage_url: str = ""  # COSTAWARE_STORAGE; "" = the folder ``home``
    storage_conn_id: str | None = None  # COSTAWARE_STORAGE_CONN_ID
    ledger_conn_id: str | None = None  # COSTAWARE_LEDGER_CONN_ID

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        root = Path(env.get("COSTAWARE_PROJECT_ROOT", PROJECT_ROOT)).resolve()
        home = Path(env.get("COSTAWARE_HOME", root / ".costaware")).resolve()
        mlflow_uri = env.get("COSTAWARE_MLFLOW_URI") or f"sqlite:///{home / 'mlflow.db'}"
        models = env.get("COSTAWARE_MODELS_DIR")
        return cls(
            home=home,
            project_root=root,
            explicit_db_url=env.get("COSTAWARE_DB_URL") or None,
            mlflow_uri=mlflow_uri,
            models_path=Path(models).resolve() if models else None,
            storage_url=env.get("COSTAWARE_STORAGE", ""),
            storage_conn_id=env.get("COSTAWARE_STORAGE_CONN_ID") or None,
            ledger_conn_id=env.get("COSTAWARE_LEDGER_CONN_ID") or None,
        )

    @property
    def db_url(self) -> str:
        """The ledger's SQLAlchemy URL. Resolved when used, not when DAG files are parsed."""
        if self.explicit_db_url:
            return self.explicit_db_url
        if self.ledger_conn_id:
            from costaware.store.connections import ledger_url_from_connection

            return ledger_url_from_connection(self.ledger_conn_id)
        return f"sqlite:///{self.home / 'ledger.db'}"

    @cached_property
    def storage(self) -> Any:
        """The root of every data location: a Path, or an ObjectStoragePath (``storage.Loc``);
        built once per Settings (every path below is derived from it)."""
        return storage.root(self.storage_url or str(self.home), self.storage_conn_id)

    @property
    def remote(self) -> bool:
        return not storage.is_local(self.storage)

    def scratch(self, *parts: str) -> Path:
        """A local folder for work that must sit on this machine's disk (a training worker's
        files): the storage folder itself when storage is local, else under the temp dir,
        synced with its copy on object storage by whoever uses it."""
        if not self.remote:
            path = Path(self.storage).joinpath(*parts)
        else:
            import tempfile

            path = Path(tempfile.gettempdir(), "costaware-scratch", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # Folder layout. Each model has its own sub-folder in each of these.
    @property
    def models_dir(self) -> Path:
        return self.models_path or self.project_root / "include" / "models"

    @property
    def gx_dir(self) -> Path:
        return self.project_root / "great_expectations"

    # Each of these is a storage.Loc (a Path when storage is local).
    def landing(self, model: str) -> Any:
        return self.storage / "landing" / model

    def labels_landing(self, model: str) -> Any:
        return self.storage / "landing" / model / "labels"

    def accepted(self, model: str) -> Any:
        return self.storage / "data" / model / "batches"

    def labels(self, model: str) -> Any:
        return self.storage / "data" / model / "labels"

    def probes(self, model: str) -> Any:
        return self.storage / "data" / model / "probes"

    def references(self, model: str) -> Any:
        """Drift references: each challenger's training data and its scores on them."""
        return self.storage / "data" / model / "reference"

    def quarantine(self, model: str) -> Any:
        """Quarantined batches, one folder each (``labels_quarantine`` for label files)."""
        return self.storage / "quarantine" / model / "batches"

    def labels_quarantine(self, model: str) -> Any:
        return self.storage / "quarantine" / model / "labels"

    def reports(self, model: str) -> Any:
        return self.storage / "reports" / model

    def work(self, model: str) -> Any:
        return self.storage / "work" / model

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"
