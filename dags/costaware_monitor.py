"""
### The live model between retrains: `monitor_<model>`

Hourly by default (the model's `monitor.schedule`). Reads the prediction log that
`costaware serve <model>` writes and the delayed labels posted to it:

* request volume and label coverage of each window, newest first;
* drift of the newest window's logged features and scores against the champion's training data;
* the champion's metric on each labelled window (rows, 90 % interval) and, where labels have
  not arrived, the label-free CBPE estimate;
* **silent degradation** (the metric below the champion's reference by more than
  `monitor.tolerance_points`, or `previous_champion` better on the same rows) → the model's
  `monitor.on_degradation`: `alert`, `rollback` (audit row), or `retrain` (an Asset event
  that `retrain_<model>` is scheduled on, so the run passes the cost checkpoint).

Each run is one `monitor_runs` row in the ledger with every number.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, get_current_context, task

from costaware.app.dag_defaults import model_dag_kwargs
from costaware.app.monitor_schedule import retrain_request
from costaware.config import ModelConfig, load_models_for_dags


def build_monitor_dag(cfg: ModelConfig) -> Any:
    model = cfg.name

    @dag(
        **model_dag_kwargs(cfg, "monitor"),
        schedule=cfg.monitor.schedule,
        doc_md=__doc__,
        description=f"watch {model}'s live champion: drift, labels, metric, decay",
    )
    def monitor() -> None:
        @task
        def check() -> dict[str, Any]:
            from costaware.app.airflow_glue import step_context
            from costaware.monitor.run import run_monitor

            context = get_current_context()
            ctx = step_context(model, context, actor=f"airflow:monitor_{model}")
            out = run_monitor(ctx)
            return {k: out.get(k) for k in ("verdict", "action", "reason", "champion_version")}

        @task.short_circuit
        def retrain_wanted(result: dict[str, Any]) -> bool:
            return bool(result["action"] == "retrain")

        @task(outlets=[retrain_request(model)])
        def request_retrain(result: dict[str, Any]) -> dict[str, Any]:
            return {"requested": True, "champion_version": result["champion_version"]}

        result = check()
        retrain_wanted(result) >> request_retrain(result)

    return monitor()


for _cfg in load_models_for_dags().configs.values():
    globals()[f"monitor_{_cfg.name}"] = build_monitor_dag(_cfg)
