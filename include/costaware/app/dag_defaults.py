"""What every per-model costaware DAG shares, as plain values (no Airflow import here)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from costaware.config import ModelConfig

# Far in the past on purpose: a run's logical date is costaware's clock, and a replay runs
# the DAG at its data's time (Elec2: 1996, Weather: 1949). Airflow creates no task instances
# for a logical date before start_date; with catchup=False the scheduler never backfills.
START = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)


def model_dag_kwargs(cfg: ModelConfig, kind: str, **overrides: Any) -> dict[str, Any]:
    """``@dag(...)`` arguments for the ``<kind>_<model>`` DAG: one run at a time, retries
    (the model's ``airflow:`` section), the owning team, and tags to find every DAG of a
    model or team in the UI."""
    return {
        "dag_id": f"{kind}_{cfg.name}",
        "start_date": START,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {
            "retries": cfg.airflow.retries,
            "retry_delay": dt.timedelta(seconds=cfg.airflow.retry_delay_seconds),
            "owner": cfg.tags.team,
        },
        "tags": ["costaware", kind, cfg.name, cfg.tags.team],
        **overrides,
    }


def approval_timeout(cfg: ModelConfig) -> dt.timedelta:
    """How long an ``approve`` decision waits for a person before its default (Reject)."""
    return dt.timedelta(hours=cfg.airflow.approval_timeout_hours)
