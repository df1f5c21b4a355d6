"""Where costaware keeps its state. One place so the CLI, the DAGs and the tests agree.

Everything lives under ``COSTAWARE_HOME`` (default ``.costaware`` in the project folder):
the landing zone, accepted data, quarantine, reports, the ledger (SQLite unless
``COSTAWARE_DB_URL`` names another database), MLflow's registry and Airflow's own home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    home: Path
    project_root: Path
    db_url: str
    mlflow_uri: str
    models_path: Path | None = None  # COSTAWARE_MODELS_DIR: configs outside the project

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        root = Path(env.get("COSTAWARE_PROJECT_ROOT", PROJECT_ROOT)).resolve()
        home = Path(env.get("COSTAWARE_HOME", root / ".costaware")).resolve()
        db_url = env.get("COSTAWARE_DB_URL") or f"sqlite:///{home / 'ledger.db'}"
        mlflow_uri = env.get("COSTAWARE_MLFLOW_URI") or f"sqlite:///{home / 'mlflow.db'}"
        models = env.get("COSTAWARE_MODELS_DIR")
        return cls(
            home=home,
            project_root=root,
            db_url=db_url,
            mlflow_uri=mlflow_uri,
            models_path=Path(models).resolve() if models else None,
        )

    # Folder layout. Each model has its own sub-folder in each of these.
    @property
    def models_dir(self) -> Path:
        return self.models_path or self.project_root / "include" / "models"

    @property
    def gx_dir(self) -> Path:
        return self.project_root / "great_expectations"

    def landing(self, model: str) -> Path:
        return self.home / "landing" / model

    def labels_landing(self, model: str) -> Path:
        return self.home / "landing" / model / "labels"

    def accepted(self, model: str) -> Path:
        return self.home / "data" / model / "batches"

    def labels(self, model: str) -> Path:
        return self.home / "data" / model / "labels"

    def quarantine(self, model: str) -> Path:
        """Quarantined batches, one folder each (``labels_quarantine`` for label files)."""
        return self.home / "quarantine" / model / "batches"

    def labels_quarantine(self, model: str) -> Path:
        return self.home / "quarantine" / model / "labels"

    def reports(self, model: str) -> Path:
        return self.home / "reports" / model

    def work(self, model: str) -> Path:
        return self.home / "work" / model

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"
