"""Airflow's environment for costaware's local state (used by the CLI, replay and tests).

Kept out of the DAG files: they must not read the environment at parse time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from costaware.settings import Settings


def airflow_env(settings: Settings) -> dict[str, str]:
    home = settings.airflow_home
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project_root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.project_root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        "COSTAWARE_HOME": str(settings.home),
        "COSTAWARE_PROJECT_ROOT": str(settings.project_root),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def apply_airflow_env(settings: Settings) -> None:
    """Point this process's Airflow at costaware's state (call before importing airflow)."""
    os.environ.update(airflow_env(settings))


def ensure_airflow_db(settings: Settings, quiet: bool = True) -> None:
    """Create or upgrade Airflow's metadata DB under the state folder (idempotent)."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".costaware-db-ready"
    if marker.exists():
        return
    env = {**os.environ, **airflow_env(settings)}
    airflow = Path(sys.executable).with_name("airflow")
    cmd = [str(airflow) if airflow.exists() else "airflow", "db", "migrate"]
    done = subprocess.run(cmd, env=env, capture_output=quiet, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`airflow db migrate` failed:\n{done.stdout}\n{done.stderr}")
    marker.write_text("ok")
