"""Airflow glue of the ``finops_housekeeping`` DAG: AWS clients from an Airflow connection
(the Amazon provider's ``SageMakerHook`` and ``AwsBaseHook``), the price source, the run's
clock, and where the report is written. The logic is in ``costaware.costs.idle``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from costaware.costs.idle import HousekeepingReport, IdleLimits


@dataclass(frozen=True)
class AwsClients:
    sagemaker: Any
    cloudwatch: Any


def aws_clients(aws_conn_id: str, region: str | None = None) -> AwsClients:
    """SageMaker and CloudWatch clients built from the Airflow connection ``aws_conn_id``: its
    keys or role, region (unless ``region`` is given) and ``endpoint_url`` extras. A named
    connection that does not exist is a ConfigError (never a silent switch of account)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    from costaware.costs.builders import AWS_DEFAULT_CONN, _connection

    if aws_conn_id != AWS_DEFAULT_CONN:
        _connection(aws_conn_id, "aws_conn_id")
    kwargs = {"region_name": region} if region else {}
    sagemaker = SageMakerHook(aws_conn_id=aws_conn_id, **kwargs).conn
    cloudwatch = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="cloudwatch", **kwargs).conn
    return AwsClients(sagemaker, cloudwatch)


def limits_from_params(params: dict[str, Any]) -> IdleLimits:
    return IdleLimits(
        endpoint_idle_days=float(params["endpoint_idle_days"]),
        notebook_idle_hours=float(params["notebook_idle_hours"]),
        training_max_hours=float(params["training_max_hours"]),
    )


def price_source(name: str) -> Any:
    from costaware.costs import make_price_source
    from costaware.settings import Settings
    from costaware.store.ledger import Ledger

    return make_price_source(name, Ledger(Settings.from_env().db_url), {})


def _out(day: str, run_id: str) -> tuple[Any, str]:
    from costaware.settings import Settings
    from costaware.store import storage

    out = storage.ensure_dir(
        Settings.from_env().storage / "reports" / "finops" / "housekeeping" / day
    )
    return out, "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def write_report(report: HousekeepingReport, run_id: str) -> str:
    """``reports/finops/housekeeping/<day>/<run>.json`` and ``.txt`` under the storage root."""
    from costaware.store import storage

    out, stem = _out(report.checked_at[:10], run_id)
    storage.write_text(out / f"{stem}.json", json.dumps(report.as_dict(), indent=2, default=str))
    storage.write_text(out / f"{stem}.txt", report.text() + "\n")
    return storage.text(out / f"{stem}.json")


def write_actions(results: list[dict[str, Any]], who: str, day: str, run_id: str) -> str:
    """``<run>.actions.json`` beside the report: who approved, and each action's outcome."""
    from costaware.store import storage

    out, stem = _out(day, run_id)
    path = out / f"{stem}.actions.json"
    storage.write_text(path, json.dumps({"approved_by": who, "actions": results}, indent=2))
    return storage.text(path)


def approved_by(answer: dict[str, Any] | None) -> str | None:
    """Who approved, when a person chose Approve; None for Reject, the timeout's default
    (which carries no responder), or no answer."""
    answer = answer or {}
    user = answer.get("responded_by_user") or {}
    who = user.get("name") or user.get("id")
    return str(who) if answer.get("chosen_options") == ["Approve"] and who else None
