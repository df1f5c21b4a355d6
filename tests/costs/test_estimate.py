"""The retrain cost estimate: attempts re-priced at their own capacity, unknown amounts carried
as unknown (never $0), and a refusing cost or price source shown as a fallback — or failing
the task when ``cost_policy.on_source_error: fail``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from costs_helpers import ce_day, ce_result, queue_ce, use_aws_connection

from costaware.config import ModelConfig, load_model_config
from costaware.costs import make_cost_source
from costaware.costs.aws import NO_DATA_HINT
from costaware.costs.base import Spend
from costaware.costs.estimate import estimate_retrain_cost, retrain_cost_now
from costaware.costs.prices import StaticPriceSource
from costaware.errors import ConfigError, CostSourceError
from costaware.store.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(1996, 6, 20)
# Round prices so the expected numbers are worked by hand: on-demand $0.40/h, spot $0.10/h.
TABLE = {"m5.2xlarge": (0.40, 0.10)}
TAGS = {"model": "elec2", "team": "energy-forecasting", "env": "dev", "purpose": "retrain"}


def elec2(**cost_policy: Any) -> ModelConfig:
    cfg = load_model_config(ROOT / "include" / "models" / "elec2.yaml")
    data = cfg.model_dump()
    data["cost_policy"] = {**data["cost_policy"], **cost_policy}
    return ModelConfig.model_validate(data)


def attempt(
    ledger: Ledger,
    run: str,
    n: int,
    capacity: str,
    hours: float | None,
    usd: float | None,
    day: dt.date = dt.date(1996, 6, 10),
    status: str = "final",
) -> None:
    ledger.record_cost(
        model="elec2",
        run_id=run,
        purpose="retrain",
        attempt=f"job-{run}/{n}",
        usd=usd,
        status=status,
        capacity=capacity,
        instance_type="m5.2xlarge",
        runtime_s=None if hours is None else hours * 3600,
        interruptions=0,
        price_source="static",
        usage_date=dt.datetime.combine(day, dt.time(12)),
        tags=TAGS,
    )


def test_spend_never_shows_unknown_as_zero() -> None:
    assert Spend.of([0.1, None, 0.2]).text() == "$0.3000 + 1 unknown"
    assert Spend.of([None, None]).text() == "unknown (2 charges)"
    assert Spend.of([0.05]).text() == "$0.0500"
    assert Spend.of([]).text() == "$0.0000"  # no charge at all: nothing was spent
    total = Spend.of([0.1]) + Spend.of([None])
    assert (total.known_usd, total.unknown, total.count) == (0.1, 1, 2)


def test_ledger_source_passes_unknown_amounts_through(ledger: Ledger) -> None:
    attempt(ledger, "r1", 1, "spot", None, None, status="lost")
    attempt(ledger, "r1", 2, "on_demand", 0.25, 0.1)
    recs = make_cost_source("ledger", ledger).costs(TAGS, dt.date(1996, 6, 1), dt.date(1996, 7, 1))
    assert [(r.usd, r.usage_hours, r.status, r.attempt) for r in recs] == [
        (None, None, "lost", "job-r1/1"),
        (0.1, 0.25, "final", "job-r1/2"),
    ]


def test_each_attempt_is_repriced_at_its_own_capacity(ledger: Ledger) -> None:
    # Run A: a spot attempt reclaimed after 30 min, then 15 min on the on-demand fallback.
    attempt(ledger, "A", 1, "spot", 0.5, 0.9)  # billed amounts at old prices: not used
    attempt(ledger, "A", 2, "on_demand", 0.25, 0.9)
    # Run B: one spot attempt of 24 min. Run C: two spot attempts of 18 min each.
    attempt(ledger, "B", 1, "spot", 0.4, 0.9)
    attempt(ledger, "C", 1, "spot", 0.3, 0.9)
    attempt(ledger, "C", 2, "spot", 0.3, 0.9)
    est = estimate_retrain_cost(
        elec2(), make_cost_source("ledger", ledger), StaticPriceSource(TABLE), TODAY
    )
    # A = 0.5 h x $0.10 + 0.25 h x $0.40 = 0.15; B = 0.4 x 0.10 = 0.04; C = 0.6 x 0.10 = 0.06.
    # (All hours at the spot price would make A 0.075: the on-demand fallback undercounted.)
    assert est.history_runs == 3
    assert est.usd == pytest.approx(0.06)
    assert est.low == pytest.approx(0.04)
    assert est.high == pytest.approx(0.15)
    assert est.quality == "estimated"  # our own runtime x a price, not a bill
    assert "$0.1000/h spot" in est.basis and "$0.4000/h on_demand" in est.basis
    assert not est.fallback and est.unknown_attempts == 0


def test_a_run_with_an_unknown_attempt_is_left_out_and_counted(ledger: Ledger) -> None:
    attempt(ledger, "A", 1, "spot", 0.4, 0.04)
    attempt(ledger, "B", 1, "spot", 0.6, 0.06)
    # Run D: its first attempt's process died unpriced and nobody saw how long it ran; its
    # second is known. D's total is unknown: neither 0.02 nor "free".
    attempt(ledger, "D", 1, "spot", None, None, status="lost")
    attempt(ledger, "D", 2, "spot", 0.2, 0.02)
    # Run E: lost, but its runtime is known: re-priced like any other attempt.
    attempt(ledger, "E", 1, "on_demand", 0.5, None, status="lost")
    est = estimate_retrain_cost(
        elec2(), make_cost_source("ledger", ledger), StaticPriceSource(TABLE), TODAY
    )
    # Runs A 0.04, B 0.06, E 0.5 x 0.40 = 0.20 -> median 0.06; D is out.
    assert est.history_runs == 3
    assert (est.usd, est.low, est.high) == pytest.approx((0.06, 0.04, 0.20))
    assert est.unknown_attempts == 1
    assert "1 run(s) left out: 1 attempt(s) of unknown cost" in est.basis


def test_only_unknown_history_is_the_static_prior_and_says_so(ledger: Ledger) -> None:
    attempt(ledger, "D", 1, "spot", None, None, status="lost")
    est = estimate_retrain_cost(
        elec2(), make_cost_source("ledger", ledger), StaticPriceSource(TABLE), TODAY
    )
    # elec2: 4 min expected + 6 min billing overhead = 1/6 h at the spot $0.10/h.
    assert est.history_runs == 0 and est.quality == "static"
    assert est.usd == pytest.approx(0.10 / 6)
    # Worst case: on-demand, and two interruptions add half a run each: 1/6 x 0.40 x 2.
    assert est.high == pytest.approx(0.40 / 6 * 2)
    assert est.unknown_attempts == 1 and "attempt(s) of unknown cost" in est.basis


def test_month_spend_carries_unknown_attempts(ledger: Ledger) -> None:
    attempt(ledger, "A", 1, "spot", 0.4, 0.04, day=dt.date(1996, 6, 3))
    attempt(ledger, "D", 1, "spot", None, None, day=dt.date(1996, 6, 12), status="lost")
    attempt(ledger, "old", 1, "spot", 0.4, 0.5, day=dt.date(1996, 5, 30))  # last month
    got = retrain_cost_now(elec2(), ledger, TODAY)
    assert (got.month.known_usd, got.month.unknown) == (pytest.approx(0.04), 1)
    assert got.month.text() == "$0.0400 + 1 unknown"
    assert got.month_source == "ledger" and not got.estimate.fallback


# -- a refusing source -------------------------------------------------------------------
@pytest.fixture
def aws_env(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and moto's address come from the ``aws_default`` connection only."""
    use_aws_connection(monkeypatch, endpoint_url=moto)


def test_no_data_for_the_tag_is_a_fallback_that_says_why(
    moto: str, aws_env: None, ledger: Ledger
) -> None:
    attempt(ledger, "A", 1, "spot", 0.4, 0.04, day=dt.date(1996, 6, 3))
    attempt(ledger, "D", 1, "spot", None, None, day=dt.date(1996, 6, 12), status="lost")
    cfg = elec2(cost_source="aws")
    got = retrain_cost_now(cfg, ledger, TODAY)
    est = got.estimate
    assert est.fallback is True and est.fallback_used == "ledger prior"
    assert est.fallback_reason is not None and est.fallback_reason.startswith("aws: ")
    assert NO_DATA_HINT in est.fallback_reason and "model=elec2" in est.fallback_reason
    assert est.fallback_text() == f"FALLBACK: ledger prior — {est.fallback_reason}"
    assert est.quality != "reconciled"
    # The ledger prior: run A at today's static spot price for m5.2xlarge (0.4 h x $0.148).
    assert est.usd == pytest.approx(0.4 * 0.148)
    d = est.as_dict()
    assert d["fallback"] is True and d["fallback_reason"] == est.fallback_reason
    # This month's spend then comes from the ledger too, unknown attempt included.
    assert got.month.text() == "$0.0400 + 1 unknown" and got.month_source == "ledger (fallback)"


def test_aws_answering_is_no_fallback(moto: str, aws_env: None, ledger: Ledger) -> None:
    spot = ("retrain", "Spot Instances")
    # A 90-day lookback from June 20 asks for March, April, May and June 1-20.
    queue_ce(
        moto,
        [
            ce_result([]),
            ce_result([ce_day(dt.date(1996, 4, 9), {spot: 0.05})]),
            ce_result([ce_day(dt.date(1996, 5, 14), {spot: 0.02})]),
            ce_result([ce_day(dt.date(1996, 6, 4), {spot: 0.03})]),
        ],
    )
    cfg = elec2(cost_source="aws")
    got = retrain_cost_now(cfg, ledger, TODAY)
    est = got.estimate
    assert not est.fallback and est.fallback_reason is None and est.fallback_text() is None
    # Billed days without hours keep their dollars: median of 0.05, 0.02, 0.03.
    assert est.usd == pytest.approx(0.03) and est.history_runs == 3
    assert est.quality == "reconciled"  # 1996's bills are long final
    assert est.source.startswith("aws + static price table")
    assert got.month.text() == "$0.0300" and got.month_source == "aws"


def test_on_source_error_fail_raises_a_clear_retryable_error(
    moto: str, aws_env: None, ledger: Ledger
) -> None:
    cfg = elec2(cost_source="aws", on_source_error="fail")
    with pytest.raises(CostSourceError) as err:
        retrain_cost_now(cfg, ledger, TODAY)
    words = str(err.value)
    assert words.startswith("elec2: the cost source 'aws' could not answer: ")
    assert NO_DATA_HINT in words and "on_source_error is 'fail'" in words


def test_a_failing_price_source_falls_back_to_the_static_table(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger
) -> None:
    attempt(ledger, "A", 1, "spot", 0.5, 0.9, day=dt.date(1996, 6, 3))
    attempt(ledger, "A", 2, "on_demand", 0.25, 0.9, day=dt.date(1996, 6, 3))
    # Nothing listens on port 9: every EC2 / Pricing request is refused.
    use_aws_connection(monkeypatch, "aws_nowhere", endpoint_url="http://127.0.0.1:9")
    cfg = elec2(price_source="aws", price_source_options={"aws_conn_id": "aws_nowhere"})
    est = retrain_cost_now(cfg, ledger, TODAY).estimate
    assert est.fallback is True and est.fallback_used == "static price table"
    assert est.fallback_reason is not None
    assert est.fallback_reason.startswith("aws prices: spot price history for m5.2xlarge")
    assert "Could not connect" in est.fallback_reason
    # Static m5.2xlarge: 0.5 h x $0.148 spot + 0.25 h x $0.384 on-demand.
    assert est.usd == pytest.approx(0.5 * 0.148 + 0.25 * 0.384)
    assert est.quality == "estimated" and est.price is not None
    assert est.price.source.startswith("static price table")


def test_both_sources_refusing(
    moto: str, aws_env: None, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection naming a profile that does not exist: boto3 refuses to make the session
    # when the first price is asked for.
    use_aws_connection(monkeypatch, "aws_no_profile", profile_name="no_such_profile")
    cfg = elec2(
        cost_source="aws",
        price_source="aws",
        price_source_options={"aws_conn_id": "aws_no_profile"},
    )
    est = retrain_cost_now(cfg, ledger, TODAY).estimate
    assert est.fallback_used == "ledger prior + static price table"
    assert est.fallback_reason is not None
    assert "aws: Cost Explorer returned nothing" in est.fallback_reason
    assert (
        "aws prices: spot price history for m5.2xlarge in us-east-1: "
        "The config profile (no_such_profile) could not be found"
    ) in est.fallback_reason
    assert est.quality == "static" and est.history_runs == 0


def test_a_bad_option_is_a_config_error_not_a_fallback(ledger: Ledger) -> None:
    cfg = elec2(cost_source="aws", cost_source_options={"endpoint": "typo"})
    with pytest.raises(ConfigError, match=r"unknown aws cost source option\(s\) \['endpoint'\]"):
        retrain_cost_now(cfg, ledger, TODAY)


def test_the_static_table_as_configured_source_fails_plainly(ledger: Ledger) -> None:
    cfg = elec2(price_source_options={"table": {"m5.large": [0.1, 0.03]}})
    with pytest.raises(CostSourceError, match="no static price for instance type 'm5.2xlarge'"):
        retrain_cost_now(cfg, ledger, TODAY)


def test_checkpoint_records_the_fallback_and_counts_unknown_spend(
    moto: str, aws_env: None, settings: Any
) -> None:
    from costaware.steps.checkpoint import cost_checkpoint, estimate_cost
    from costaware.steps.context import StepContext

    cfg = elec2(cost_source="aws")
    ctx = StepContext(cfg, settings, run_id="run-1", clock=dt.datetime(1996, 6, 20, 9))
    attempt(ctx.ledger, "A", 1, "spot", 0.4, 0.04, day=dt.date(1996, 6, 3))
    attempt(ctx.ledger, "D", 1, "spot", None, None, day=dt.date(1996, 6, 12), status="lost")
    validated = {"batch_id": "b1", "status": "pass", "end": "1996-06-19T23:30:00"}
    cost = estimate_cost(ctx, validated)
    assert cost["fallback"] is True and cost["fallback_text"].startswith(
        "FALLBACK: ledger prior — aws: Cost Explorer returned nothing for tags"
    )
    assert (cost["spent_this_month_usd"], cost["spent_this_month_unknown"]) == (0.04, 1)
    assert cost["spent_this_month_text"] == "$0.0400 + 1 unknown"
    perf = {
        "champion_version": "1",
        "train_rows": 2000,
        "gain": {"points": 50.0, "low": 40.0, "high": 60.0, "basis": "test"},
    }
    out = cost_checkpoint(ctx, validated, {}, perf, cost)
    row = ctx.ledger.decision("elec2", "run-1")
    assert row is not None and row["action"] == out["action"]
    numbers = row["details"]["numbers"]
    assert list(numbers)[0] == "cost estimate"
    assert numbers["cost estimate"] == cost["fallback_text"]
    assert NO_DATA_HINT in numbers["cost estimate"]
    assert row["details"]["cost"]["fallback_reason"].startswith("aws: ")
    assert numbers["cost quality"].startswith("estimated (ledger + static price table")
    # The unknown attempt counts at the estimate's high: run A re-priced, 0.4 h x $0.148.
    assert numbers["spent this month ($)"] == (
        "0.0400 + 1 charge(s) of unknown amount counted at $0.0592 each"
    )
    assert numbers["budget left this month ($)"] == pytest.approx(5.0 - 0.04 - 0.0592)
