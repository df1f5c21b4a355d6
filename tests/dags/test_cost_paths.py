"""The cost paths through the real retrain DAG (``dag.test()`` on Elec2 weeks) with the model's
cost source switched to AWS Cost Explorer — boto3 over HTTP to moto's server — by a config copy
in ``COSTAWARE_MODELS_DIR``:

(a) Cost Explorer answers: the decision's cost comes from aws, reconciled;
(b) Cost Explorer has no data for the model's tags: the estimate is the ledger prior, and the
    decision in the ledger and the run's report say FALLBACK and why, in the source's words;
(c) ``on_source_error: fail``: estimate_cost fails (after Airflow's retries) and no decision
    is recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from costaware.app.replay import arrival_time, land_batch, land_labels
from costaware.costs.aws import NO_DATA_HINT

from ..conftest import ROOT, make_settings
from .harness import WEEKS, Harness

pytestmark = pytest.mark.airflow  # runs the real retrain DAG with dag.test()


def _reset(moto_url: str, results: list[dict[str, Any]] | None = None) -> None:
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    if results:
        resp = requests.post(
            f"{moto_url}/moto-api/static/ce/cost-and-usage-results",
            json={"results": results},
            timeout=10,
        )
        assert resp.status_code == 201, resp.text


def _day(day: dt.date, usd: float) -> dict[str, Any]:
    """One Cost Explorer day: ``usd`` of spot retraining and $1 of serving."""
    groups = [(("retrain", "Spot Instances"), usd), (("serve", "On Demand Instances"), 1.0)]
    return {
        "TimePeriod": {"Start": day.isoformat(), "End": (day + dt.timedelta(days=1)).isoformat()},
        "Total": {},
        "Groups": [
            {
                "Keys": [f"purpose${p}", purchase],
                "Metrics": {"UnblendedCost": {"Amount": f"{amount:.10f}", "Unit": "USD"}},
            }
            for (p, purchase), amount in groups
        ],
        "Estimated": False,
    }


def _state(obj: Any) -> str:
    return str(getattr(obj.state, "value", obj.state))


class CostHarness(Harness):
    models: Path

    def set_cost_policy(self, **changes: Any) -> None:
        path = self.models / "elec2.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["cost_policy"].update(changes)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def harness(airflow_home: Path, tmp_path_factory: Any, moto_url: str) -> Iterator[CostHarness]:
    home = tmp_path_factory.mktemp("cost-paths")
    models = home / "models"
    shutil.copytree(ROOT / "include" / "models", models)
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_HOME", str(home))
    mp.setenv("COSTAWARE_MODELS_DIR", str(models))
    mp.delenv("COSTAWARE_DB_URL", raising=False)
    # Keys and moto's address come from the aws_default connection only (issue 8).
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        mp.delenv(key)
    conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
    conn["extra"] = {"endpoint_url": moto_url}
    mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    h = CostHarness(make_settings(home))
    h.models = models
    # No response cache: each case's Cost Explorer answers are its own.
    h.set_cost_policy(cost_source="aws", cost_source_options={"cache": False})
    yield h
    mp.undo()


def test_aws_answers_and_the_decision_is_priced_from_the_bill(
    harness: CostHarness, moto_url: str
) -> None:
    # Week 0 lands on 1996-05-14 (the run's clock): a 90-day lookback asks Cost Explorer for
    # February, March, April and May 1-15, in that order; May 1-15 is also this month's spend.
    assert arrival_time(harness.cfg, WEEKS[0][1]).date() == dt.date(1996, 5, 14)
    _reset(
        moto_url,
        [
            {"ResultsByTime": [], "DimensionValueAttributes": []},
            {"ResultsByTime": [_day(dt.date(1996, 3, 12), 0.05)]},
            {"ResultsByTime": [_day(dt.date(1996, 4, 9), 0.02)]},
            {"ResultsByTime": [_day(dt.date(1996, 5, 7), 0.03)]},
        ],
    )
    assert harness.week(0) == "success"
    d = harness.decision(0)
    assert d is not None and d["action"] == "skip"  # no labels yet; the cost is still shown
    cost, numbers = d["details"]["cost"], d["details"]["numbers"]
    assert cost["source"].startswith("aws + static price table")
    assert cost["fallback"] is False and cost["fallback_reason"] is None
    # Three retrain days billed $0.05, $0.02, $0.03 (final bills): median $0.03; May: $0.03.
    assert cost["usd"] == pytest.approx(0.03) and cost["history_runs"] == 3
    assert cost["quality"] == "reconciled"
    assert numbers["cost quality"].startswith("reconciled (aws + ")
    assert numbers["spent this month ($)"] == pytest.approx(0.03)
    assert "cost estimate" not in numbers


def test_no_data_for_the_tag_is_a_fallback_shown_in_the_decision_and_the_report(
    harness: CostHarness, moto_url: str
) -> None:
    _reset(moto_url)  # Cost Explorer knows nothing about these tags
    assert harness.week(1) == "success"
    d = harness.decision(1)
    assert d is not None
    cost, numbers = d["details"]["cost"], d["details"]["numbers"]
    assert cost["fallback"] is True and cost["fallback_used"] == "ledger prior"
    assert cost["fallback_reason"].startswith("aws: Cost Explorer returned nothing for tags ")
    assert NO_DATA_HINT in cost["fallback_reason"]
    assert cost["quality"] == "static"  # no retrain in the ledger yet: the static prior
    # The decision's numbers open with the fallback, in the source's own words.
    assert list(numbers)[0] == "cost estimate"
    assert numbers["cost estimate"] == f"FALLBACK: ledger prior — {cost['fallback_reason']}"
    # elec2's static prior: (4 + 6) min at the m5.2xlarge spot list price of $0.148/h.
    assert cost["usd"] == pytest.approx(10 / 60 * 0.148, abs=1e-6)  # stored to 6 places
    report = harness.settings.reports("elec2") / WEEKS[1][0]
    page = (report / "index.html").read_text()
    assert "FALLBACK: ledger prior — aws: Cost Explorer returned nothing" in page
    assert json.loads((report / "summary.json").read_text())["cost"]["fallback"] is True


def test_on_source_error_fail_fails_estimate_cost_and_decides_nothing(
    harness: CostHarness, moto_url: str
) -> None:
    _reset(moto_url)
    harness.set_cost_policy(on_source_error="fail")
    task = harness.dag.task_dict["estimate_cost"]
    delay = task.retry_delay
    # Airflow retries the task (a CostSourceError is retryable); wait 1 s, not 30, between tries.
    task.retry_delay = dt.timedelta(seconds=1)
    name, part = WEEKS[2]
    try:
        land_batch(harness.settings, harness.cfg, name, part)
        land_labels(harness.settings, harness.cfg, *WEEKS[1])
        defaults = {k: harness.dag.params[k] for k in harness.dag.params.keys()}
        dr = harness.dag.test(run_conf=defaults, logical_date=arrival_time(harness.cfg, part))
    finally:
        task.retry_delay = delay
    assert _state(dr) == "failed"
    states = {ti.task_id: _state(ti) for ti in dr.get_task_instances()}
    assert states["estimate_cost"] == "failed"
    tries = {ti.task_id: ti.try_number for ti in dr.get_task_instances()}
    assert tries["estimate_cost"] == 1 + task.retries == 3  # retried by Airflow, then failed
    assert states["cost_checkpoint"] == states["publish_report"] == "upstream_failed"
    assert harness.decision(2) is None
    assert not (harness.settings.reports("elec2") / name / "index.html").exists()
