"""Stopping or deleting idle SageMaker capacity a person approved (``idle.find_idle`` found it).

``apply_actions`` looks again before it acts: a resource that came back to life since the
report (an endpoint called, a notebook restarted, a job that finished) is left alone, and one
already in the state its action leads to counts as done, so a retried task converges to a
clean run's state. Only approved resources are ever touched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from costaware.costs.base import PriceSource
from costaware.costs.idle import ACTIONS, IdleLimits, find_idle
from costaware.errors import CostSourceError

# The state each action leads to: a resource found there again counts as done (as does one
# that no longer exists: nothing of it is left running).
DONE_STATES: dict[str, set[str]] = {
    "endpoint": {"Deleting", "(gone)"},
    "notebook": {"Stopping", "Stopped", "Deleting", "(gone)"},
    "training_job": {"Stopping", "Stopped", "(gone)"},
}


@dataclass(frozen=True)
class ActionResult:
    kind: str
    name: str
    action: str
    outcome: str  # done | already done | not idle any more (...): left alone

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def apply_actions(
    sagemaker: Any,
    cloudwatch: Any,
    prices: PriceSource,
    approved: Iterable[dict[str, Any]],
    now: dt.datetime,
    limits: IdleLimits | None = None,
) -> list[ActionResult]:
    """Stop or delete the ``approved`` resources (``IdleResource.as_dict()`` rows from the
    report a person approved) that are still idle at ``now``. A resource found in the state
    its action leads to is ``already done`` (a retry after a partial first try). Failures of
    single actions are collected; if any, ``CostSourceError`` names them all after the others
    were tried, so Airflow's retry finishes the rest."""
    from botocore.exceptions import BotoCoreError, ClientError

    wanted = [(r["kind"], r["name"]) for r in approved]
    still_idle = {
        (r.kind, r.name) for r in find_idle(sagemaker, cloudwatch, prices, now, limits).idle
    }
    results, failed = [], []
    for kind, name in wanted:
        action = ACTIONS[kind]
        try:
            state = _state(sagemaker, kind, name)
            if state in DONE_STATES[kind]:
                outcome = "already done"
            elif (kind, name) not in still_idle:
                outcome = f"not idle any more ({state}): left alone"
            else:
                getattr(sagemaker, action)(**{_NAME_ARG[kind]: name})
                outcome = "done"
        except (ClientError, BotoCoreError) as exc:
            outcome = f"failed: {type(exc).__name__}: {exc}"
            failed.append(f"{action}({name}): {exc}")
        results.append(ActionResult(kind, name, action, outcome))
    if failed:
        raise CostSourceError("housekeeping actions failed: " + "; ".join(failed))
    return results


_NAME_ARG = {
    "endpoint": "EndpointName",
    "notebook": "NotebookInstanceName",
    "training_job": "TrainingJobName",
}


def _state(sm: Any, kind: str, name: str) -> str:
    """The resource's current status; ``(gone)`` when SageMaker says it does not exist."""
    from botocore.exceptions import ClientError

    try:
        if kind == "endpoint":
            return str(sm.describe_endpoint(EndpointName=name)["EndpointStatus"])
        if kind == "notebook":
            return str(
                sm.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"]
            )
        return str(sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"])
    except ClientError as exc:
        # SageMaker answers a missing resource with ValidationException "Could not find ...".
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if "Could not find" in message or "does not exist" in message:
            return "(gone)"
        raise
