"""
### Roll back a model: `rollback_<model>`

Moves the registry's `champion` alias back to the previous champion (or to the version
named in the trigger form) and writes an audit row saying who did it and why. The version
that was champion becomes `previous_champion`, so a rollback can itself be undone.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from costaware.app.dag_defaults import PARAM_SCHEMA, model_dag_kwargs, with_run_params
from costaware.config import ModelConfig, load_models_for_dags


def trigger_params() -> dict[str, Param]:
    """The trigger form of ``rollback_<model>``."""
    return {
        "target_version": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]*$",
            title="Target version",
            description="Registry version to make champion; empty = the previous champion.",
            **PARAM_SCHEMA,
        ),
        "reason": Param(
            "",
            type="string",
            title="Reason",
            description="Why (kept in the audit trail).",
            **PARAM_SCHEMA,
        ),
    }


def build_rollback_dag(cfg: ModelConfig) -> Any:
    model = cfg.name

    @dag(
        **model_dag_kwargs(cfg, "rollback"),
        doc_md=__doc__,
        description=f"roll {model}'s champion back to a previous version",
        schedule=None,
    )
    def rollback() -> None:
        @task
        def rollback_champion() -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from costaware.app.airflow_glue import step_context
            from costaware.errors import RegistryError
            from costaware.steps.promote import rollback as step

            context = get_current_context()
            params = context["params"]
            ctx = step_context(model, context, actor=f"airflow:rollback_{model}")
            try:
                return step(ctx, params.get("target_version") or None, params.get("reason") or "")
            except RegistryError as exc:  # nothing to roll back to, or the champion moved
                raise AirflowFailException(str(exc)) from exc

        rollback_champion()

    # The form's Params go on once the task exists: see with_run_params.
    return with_run_params(rollback(), trigger_params())


# A bad config is skipped here (and reported by costaware_model_configs.py), so it cannot
# hide the other models' DAGs.
for _cfg in load_models_for_dags().configs.values():
    globals()[f"rollback_{_cfg.name}"] = build_rollback_dag(_cfg)
