"""Shared constants and Cost Explorer helpers for the cost tests (a uniquely named module, so
it cannot be confused with another folder's conftest)."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pytest
import requests

# One fixed "now" for every cost test: billing lag and month boundaries stay deterministic.
NOW = dt.datetime(2026, 11, 20, 12, 0, 0)
TODAY = NOW.date()


def queue_ce(moto_url: str, results: list[dict[str, Any]]) -> None:
    """Queue Cost Explorer answers in moto, consumed one per distinct request, in order."""
    resp = requests.post(
        f"{moto_url}/moto-api/static/ce/cost-and-usage-results",
        json={"results": results},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text


def ce_day(
    day: dt.date,
    groups: dict[tuple[str, str], float],
    estimated: bool = False,
    metric: str = "UnblendedCost",
) -> dict[str, Any]:
    """One ``ResultsByTime`` entry grouped by (purpose tag, purchase type)."""
    return {
        "TimePeriod": {
            "Start": day.isoformat(),
            "End": (day + dt.timedelta(days=1)).isoformat(),
        },
        "Total": {},
        "Groups": [
            {
                "Keys": [f"purpose${purpose}", purchase],
                "Metrics": {metric: {"Amount": f"{usd:.10f}", "Unit": "USD"}},
            }
            for (purpose, purchase), usd in groups.items()
        ],
        "Estimated": estimated,
    }


def ce_result(days: list[dict[str, Any]], next_token: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"ResultsByTime": days, "DimensionValueAttributes": []}
    if next_token:
        out["NextPageToken"] = next_token
    return out


def use_aws_connection(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str = "aws_default",
    login: str = "testing",
    password: str = "testing",
    **extra: Any,
) -> None:
    """Define the Airflow connection ``conn_id`` the way a deployment may, as
    ``AIRFLOW_CONN_<ID>`` in Airflow's JSON form, and unset every ``AWS_*`` variable: only the
    connection can then supply keys, region and endpoint (moto: ``endpoint_url=...``)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    conn = {"conn_type": "aws", "login": login, "password": password, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
