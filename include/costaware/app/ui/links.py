"""The "Costaware report" link on a retrain run's ``cost_checkpoint`` task in Airflow's UI.

Registered as a *global* operator extra link (``plugins/costaware_ui.py``): the checkpoint is a
TaskFlow task, not an operator class of ours, and a global link needs no change to how the DAG
builds it. Airflow asks every task for it; it answers only for ``cost_checkpoint`` of a
``retrain_<model>`` DAG, and an empty answer hides the button. The link is relative (same
origin: the UI opens it in place) and goes through the plugin's ``/runs/...`` route, which finds
the run's batch in the ledger and redirects to its report (read through the storage layer).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

from costaware.app.ui.page import PREFIX

CHECKPOINT_TASK = "cost_checkpoint"


def report_link(dag_id: str, task_id: str, run_id: str) -> str:
    """The page's URL for a run's report, or "" when the task is not a retrain checkpoint."""
    if task_id != CHECKPOINT_TASK or not dag_id.startswith("retrain_"):
        return ""
    model = dag_id.removeprefix("retrain_")
    return f"{PREFIX}/runs/{quote(model, safe='')}/{quote(run_id, safe='')}"


class CostawareReportLink(BaseOperatorLink):
    name = "Costaware report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return report_link(ti_key.dag_id, ti_key.task_id, ti_key.run_id)
