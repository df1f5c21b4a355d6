"""What the DAG files share at run time: a step's context from Airflow's task context.

Imported inside tasks only (never at DAG-parse time). No Airflow import here either: the
task context is passed in, so the library stays importable without Airflow."""

from __future__ import annotations

from typing import Any

from costaware.steps.context import StepContext


def run_clock(context: Any) -> Any:
    """costaware's one clock for this run: the logical date, or — for a manual run that has
    none (Airflow 3) — when the run was triggered (``run_after``)."""
    dag_run = context["dag_run"]
    return (
        context.get("logical_date") or getattr(dag_run, "logical_date", None) or dag_run.run_after
    )


def step_context(model: str, context: Any, actor: str | None = None) -> StepContext:
    dag_run = context["dag_run"]
    run_type = getattr(dag_run, "run_type", "run")
    actor = actor or f"airflow:{dag_run.dag_id}/{getattr(run_type, 'value', run_type)}"
    return StepContext.for_model(
        model, run_id=context["run_id"], actor=actor, clock=run_clock(context)
    )
