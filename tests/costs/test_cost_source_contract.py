"""One battery for every CostSource: a new source added to COST_SOURCES must join CASES and
pass all of it. What every source promises:

- it is a ``CostSource`` with a ``name``; records are ``CostRecord``s in the asked window, for
  the asked purpose, carrying the asked tags;
- never a $0 record (no spend is no record; "free" is never inferred);
- a figure from the last 48 hours is never reported as reconciled;
- a narrower window gives a subset; an unknown tag is an error or nothing, never free money.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from costs_helpers import NOW, TODAY, ce_day, ce_result, queue_ce

from costaware.costs import COST_SOURCES, CostRecord, CostSource, make_cost_source
from costaware.costs.aws import AwsCostExplorerSource
from costaware.costs.cache import ResponseCache
from costaware.costs.focus import FocusCostSource
from costaware.costs.gcp import GcpBillingExportSource
from costaware.errors import ConfigError, CostSourceError

START, END = dt.date(2026, 10, 1), TODAY + dt.timedelta(days=1)
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "focus"


def _ledger_case(request: pytest.FixtureRequest) -> tuple[CostSource, dict[str, str]]:
    ledger = request.getfixturevalue("ledger")
    tags = {"model": "elec2", "team": "forecasting", "env": "prod"}
    for i, (day, usd, purpose) in enumerate(
        [(3, 0.42, "retrain"), (12, 0.55, "retrain"), (40, 0.30, "retrain"), (49, 0.2, "serve")]
    ):
        ledger.record_cost(
            model="elec2",
            run_id=f"run-{i}",
            purpose=purpose,
            usd=usd,
            capacity="spot",
            instance_type="m5.xlarge",
            runtime_s=900.0,
            interruptions=0,
            price_source="static",
            usage_date=dt.datetime(2026, 10, 1) + dt.timedelta(days=day),
            tags={**tags, "purpose": purpose},
        )
    return make_cost_source("ledger", ledger), tags


def _aws_case(request: pytest.FixtureRequest) -> tuple[CostSource, dict[str, str]]:
    moto = request.getfixturevalue("moto")
    client = request.getfixturevalue("aws_client")("ce")
    spot = ("retrain", "Spot Instances")
    queue_ce(
        moto,
        [
            ce_result(
                [
                    ce_day(dt.date(2026, 10, 4), {spot: 1.2}),
                    ce_day(dt.date(2026, 10, 13), {spot: 0.8}),
                ]
            ),
            ce_result(
                [
                    ce_day(dt.date(2026, 11, 6), {spot: 0.9}),
                    ce_day(dt.date(2026, 11, 19), {spot: 0.4}, estimated=True),
                ]
            ),
        ],
    )
    ledger = request.getfixturevalue("ledger")
    src = AwsCostExplorerSource(client, ResponseCache(ledger), clock=lambda: NOW)
    return src, {"model": "elec2", "team": "forecasting", "env": "prod"}


def _focus_case(request: pytest.FixtureRequest) -> tuple[CostSource, dict[str, str]]:
    return FocusCostSource(FIXTURES / "costs.csv", clock=lambda: NOW), {
        "model": "elec2",
        "team": "forecasting",
        "env": "prod",
    }


def _gcp_case(request: pytest.FixtureRequest) -> tuple[CostSource, dict[str, str]]:
    from test_gcp_sources import LABELS, TABLE, bq_client, fake_bigquery

    gcloud = request.getfixturevalue("gcloud")
    gcloud.bq_answer = fake_bigquery
    return GcpBillingExportSource(bq_client(gcloud.url), TABLE, clock=lambda: NOW), LABELS


CASES: dict[str, Callable[[pytest.FixtureRequest], tuple[CostSource, dict[str, str]]]] = {
    "ledger": _ledger_case,
    "aws": _aws_case,
    "focus": _focus_case,
    "gcp": _gcp_case,
}


def test_every_registered_cost_source_is_in_the_battery() -> None:
    assert set(CASES) == set(COST_SOURCES)


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[CostSource, dict[str, str]]:
    return CASES[request.param](request)


def test_contract(case: tuple[CostSource, dict[str, str]]) -> None:
    source, tags = case
    assert isinstance(source, CostSource) and isinstance(source.name, str) and source.name

    records = source.costs(tags, START, END, purpose="retrain")
    assert records, f"{source.name}: the case has retrain history"
    for r in records:
        assert isinstance(r, CostRecord)
        assert START <= r.usage_date < END
        assert r.purpose == "retrain"
        assert r.usd != 0, f"{source.name}: a $0 record"
        assert isinstance(r.reconciled, bool)
        assert all(r.tags.get(k) == v for k, v in tags.items())
        if r.usage_date >= TODAY - dt.timedelta(days=1):
            assert not r.reconciled, f"{source.name}: {r.usage_date} is within the billing lag"

    narrow = source.costs(tags, dt.date(2026, 11, 1), END, purpose="retrain")
    assert {(r.usage_date, r.usd) for r in narrow} <= {(r.usage_date, r.usd) for r in records}
    assert all(r.usage_date >= dt.date(2026, 11, 1) for r in narrow)

    try:
        unknown = source.costs({**tags, "model": "no_such_model"}, START, END)
    except CostSourceError as exc:
        assert "no_such_model" in str(exc)
    else:
        assert unknown == [], f"{source.name}: an unknown tag must not produce costs"


def test_registered_builders_reject_unknown_options(ledger: Any) -> None:
    for name in sorted(set(COST_SOURCES) - {"ledger"}):
        with pytest.raises(ConfigError, match=r"unknown .* option\(s\) \['no_such_option'\]"):
            make_cost_source(name, ledger, {"no_such_option": 1})
