"""How ``monitor_<model>`` asks ``retrain_<model>`` for a run: an Asset event.

A model whose ``monitor.on_degradation`` is ``retrain`` has its retrain DAG scheduled on its
``airflow.schedule`` *or* that Asset (``AssetOrTimeSchedule``), so a run the monitor requested
is an ordinary run: it takes the landing zone's batch and passes the cost checkpoint like any
other. Every other model keeps its schedule exactly as it was.
"""

from __future__ import annotations

from typing import Any

from costaware.config import ModelConfig


def retrain_request(model: str) -> Any:
    """The Asset whose events ask ``retrain_<model>`` for a run."""
    from airflow.sdk import Asset

    # A name and no URI on purpose: a URI with a scheme makes Airflow look up every
    # provider's URI normalizers, 0.6 s of imports (boto3...) on each parse of the DAG file.
    return Asset(name=f"costaware_retrain_request_{model}")


def retrain_schedule(cfg: ModelConfig) -> Any:
    """``schedule=`` of ``retrain_<model>``."""
    if cfg.monitor.on_degradation != "retrain":
        return cfg.airflow.schedule
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    asset = retrain_request(cfg.name)
    if cfg.airflow.schedule is None:
        return [asset]
    # What Airflow 3 makes of a cron string or preset by default (a trigger timetable).
    cron = CronTriggerTimetable(cfg.airflow.schedule, timezone="UTC")
    return AssetOrTimeSchedule(timetable=cron, assets=[asset])
