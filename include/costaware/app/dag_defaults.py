"""What every per-model costaware DAG shares, as plain values (no Airflow import here)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from costaware.config import ModelConfig

# Far in the past on purpose: a run's logical date is costaware's clock, and a replay runs
# the DAG at its data's time (Elec2: 1996, Weather: 1949). Airflow creates no task instances
# for a logical date before start_date; with catchup=False the scheduler never backfills.
START = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)

# Spread into each trigger-form ``Param``: the JSON Schema draft its schema is written in.
# Airflow checks a Param's schema against the draft's meta-schema every time it validates a
# value (each scheduled DAG's defaults on every parse, each run's conf in every task);
# draft 7's check takes 0.5 ms for the retrain form's 4 Params where the default, 2020-12,
# takes 1.4 ms (bench/README.md). Draft 7 has every keyword the forms use (type, a numeric
# exclusiveMinimum, pattern, title, description) with the same meaning; the UI's trigger
# form does not read ``$schema``, and the API server validates a trigger with it.
PARAM_SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema#"}


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


def finops_dag_kwargs(kind: str, retry_minutes: float, doc: str | None) -> dict[str, Any]:
    """``@dag(...)`` arguments (but the schedule) for the team-wide ``finops_<kind>`` DAGs: one
    run at a time, owned by ``finops``. The run's logical date is its clock, as in every
    costaware DAG (a replayed year of costs — Elec2: 1996 — is shown at its own time);
    catchup=False: nothing is backfilled."""
    return {
        "dag_id": f"finops_{kind}",
        "start_date": START,
        "catchup": False,
        "max_active_runs": 1,
        "doc_md": doc,
        "default_args": {
            "retries": 2,
            "retry_delay": dt.timedelta(minutes=retry_minutes),
            "owner": "finops",
        },
        "tags": ["costaware", "finops", kind],
    }


def with_run_params(dag: Any, params: dict[str, Any]) -> Any:
    """Give a built DAG its trigger-form ``params`` and return the DAG.

    Set once its tasks exist, on purpose. Airflow copies a DAG's params into every task made
    under it, and serializing the DAG (every parse of the file) re-checks each copy's JSON
    schema against the JSON-Schema meta-schema twice per task: serializing 100 retrain DAGs
    took 6.1 s with the copies and 1.1 s without, in one run (bench/results/scale.md). The
    copies add nothing: a task reads ``params`` from its run, the DAG's params overlaid with
    the run's conf (``airflow.sdk.definitions.param.process_params``), and the trigger form
    and its validation use the DAG's. Assigning runs Airflow's own converter and validator,
    so a scheduled DAG whose defaults fail their schema still fails to load.

    ``process_params`` keeps each value it validates in the Params it merged, now the DAG's
    own: several ``dag.test()`` runs of one DAG object in one process must each run a copy
    (``costaware.app.replay.run_dag_once``). A deployment parses the file in every task
    process, so no run sees another's values there."""
    dag.params = params
    return dag


def approval_timeout(cfg: ModelConfig) -> dt.timedelta:
    """How long an ``approve`` decision waits for a person before its default (Reject)."""
    return dt.timedelta(hours=cfg.airflow.approval_timeout_hours)
