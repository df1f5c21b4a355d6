from __future__ import annotations

import dataclasses

import pytest

from costaware.config import CostPolicy
from costaware.decide.policy import CheckpointInputs, decide

POLICY = CostPolicy(
    max_usd_per_point_batch=0.02,
    auto_approve_usd=0.5,
    monthly_budget_usd=5.0,
    cooldown_hours=24,
    min_expected_gain_points=1.0,
)
BASE = CheckpointInputs(
    model="m",
    has_champion=True,
    labelled_rows=2000,
    min_train_rows=600,
    gain_points=3.0,
    gain_low=1.0,
    gain_high=5.0,
    gain_basis="test",
    cost_usd=0.03,
    cost_quality="estimated",
    cost_source="ledger",
    spent_this_month_usd=1.0,
    hours_since_last_retrain=100.0,
)


def _with(**kw) -> CheckpointInputs:
    return dataclasses.replace(BASE, **kw)


def test_worth_it_retrains_and_echoes_numbers() -> None:
    d = decide(BASE, POLICY)
    assert d.action == "retrain"
    assert d.numbers["$ per pt·batch"] == pytest.approx(0.01)
    assert d.thresholds["max_usd_per_point_batch"] == 0.02
    assert "$0.0100 per pt·batch ≤ $0.02" in d.reason
    table = d.table()
    assert "RETRAIN" in table and "threshold auto_approve_usd" in table


@pytest.mark.parametrize(
    ("change", "action", "words"),
    [
        ({"gain_points": 0.4}, "skip", "expected gain 0.40 pt·batches < minimum 1"),
        ({"cost_usd": 0.3}, "skip", "per pt·batch > limit $0.02 per pt·batch"),
        ({"hours_since_last_retrain": 3.0}, "skip", "cooldown: last retrain 3 h ago < 24 h"),
        ({"labelled_rows": 100}, "skip", "waiting for labels"),
        ({"has_champion": False}, "retrain", "no champion yet"),
        ({"force": True, "gain_points": 0.0}, "retrain", "forced"),
        ({"spent_this_month_usd": 4.99}, "approve", "exceeds the $0.0100 left"),
    ],
)
def test_decisions(change: dict, action: str, words: str) -> None:
    d = decide(_with(**change), POLICY)
    assert d.action == action
    assert words in d.reason


def test_above_auto_approve_asks_a_person() -> None:
    pol = POLICY.model_copy(update={"max_usd_per_point_batch": 1.0})
    d = decide(_with(cost_usd=0.9), pol)
    assert d.action == "approve"
    assert "auto-approve limit $0.5" in d.reason
    assert d.checks["within auto-approve limit"] is False


def test_run_override_of_limit() -> None:
    assert decide(_with(cost_usd=0.3), POLICY).action == "skip"
    assert decide(_with(cost_usd=0.3), POLICY, max_usd_per_point_batch=0.2).action == "retrain"


def test_zero_gain_is_infinite_cost_per_point() -> None:
    d = decide(_with(gain_points=0.0), POLICY.model_copy(update={"min_expected_gain_points": 0}))
    assert d.action == "skip"
    assert "∞" in d.table()


def test_unknown_spend_counts_against_the_budget_and_says_so() -> None:
    # $5 budget, $4.90 known: $0.10 left, enough for a $0.03 retrain...
    assert decide(_with(spent_this_month_usd=4.9), POLICY).action == "retrain"
    # ...but two attempts of unknown cost, each counted at $0.05, leave 5 - 4.9 - 0.1 = 0.
    d = decide(_with(spent_this_month_usd=4.9, spent_unknown=2, unknown_each_usd=0.05), POLICY)
    assert d.action == "approve"
    assert d.numbers["budget left this month ($)"] == pytest.approx(0.0)
    assert d.numbers["spent this month ($)"] == (
        "4.9000 + 2 charge(s) of unknown amount counted at $0.0500 each"
    )
    assert "(spend so far: $4.9000 + 2 charge(s) of unknown amount" in d.reason
    assert d.checks["within budget"] is False


def test_known_spend_is_a_plain_number() -> None:
    d = decide(_with(spent_this_month_usd=1.25), POLICY)
    assert d.numbers["spent this month ($)"] == 1.25
    assert d.numbers["budget left this month ($)"] == pytest.approx(3.75)
    assert "cost estimate" not in d.numbers


def test_a_fallback_estimate_is_the_first_thing_the_table_says() -> None:
    words = "FALLBACK: ledger prior — aws: Cost Explorer returned nothing for tags model=m"
    d = decide(_with(cost_fallback=words), POLICY)
    assert d.numbers["cost estimate"] == words
    lines = d.table().splitlines()
    assert lines[0].split()[0] == "decision" and lines[1].split()[0] == "why"
    assert lines[2].split(None, 2)[:2] == ["cost", "estimate"]
    assert lines[2].rstrip().endswith(words)
