"""The shared budget's allocation (pure): hand-worked windows, in dollars that are exact in
binary floating point so every sum below is the one written in the comment."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from costaware.decide.shared_budget import Candidate, allocate, window_closed, window_key

ROC = 0.0075  # $ per pt·batch: elec2's limit, shared here by every roc_auc model


def cand(model: str, gain: float, cost: float, seq: int, **kw: object) -> Candidate:
    args: dict[str, object] = {"limit_usd": ROC, "metric": "roc_auc", "run_id": "r1"} | kw
    return Candidate(model, gain_points=gain, cost_usd=cost, seq=seq, **args)  # type: ignore[arg-type]


def test_best_gain_per_dollar_first_and_the_others_told_why() -> None:
    # $1 a month, $0.25 spent: $0.75 left. pt·batch per $: weather 8/0.25 = 32,
    # elec2 10/0.5 = 20, solar 1.5/0.125 = 12. weather ($0.25) then elec2 ($0.50) use it all.
    cands = [cand("elec2", 10, 0.5, 0), cand("solar", 1.5, 0.125, 1), cand("weather", 8, 0.25, 2)]
    a = allocate("team", "2026-W48", 1.0, 0.25, cands)
    assert [c.model for c in a.funded] == ["weather", "elec2"]
    assert a.left_usd == 0.0 and a.reserved_usd == 0.0
    verdict, why = a.verdict("solar/r1")
    assert verdict == "outbid"
    assert why == (
        "outbid by weather: 32.0 vs 12.0 pt·batch per $; also funded first: elec2; "
        "retrain $0.1250 > $0.0000 left of shared budget team's $1 this month"
    )
    verdict, why = a.verdict("weather/r1")
    assert verdict == "funded" and "32.0 pt·batch of roc_auc per $" in why
    assert "$0.0000 of $1 left" in why  # after every funded one of the window


def test_a_cheaper_lower_ranked_retrain_still_fits_where_a_better_one_does_not() -> None:
    # $0.50 left: big (20 pt/$, $0.75) cannot be paid; small (16 pt/$, $0.25) can.
    a = allocate("team", "w", 1.0, 0.5, [cand("big", 15, 0.75, 0), cand("small", 4, 0.25, 1)])
    assert [c.model for c in a.funded] == ["small"]
    assert a.verdict("big/r1") == (
        "short",
        "retrain $0.7500 > $0.5000 left of shared budget team's $1 this month",
    )
    assert a.left_usd == 0.25


def test_funded_earlier_keeps_its_money_until_its_cost_is_recorded() -> None:
    # storms was funded earlier in the window ($0.50, 4 pt/$); weather (32 pt/$) comes later.
    storms = cand("storms", 2, 0.5, 0, verdict="funded")
    weather = cand("weather", 16, 0.5, 1)
    a = allocate("team", "w", 1.0, 0.25, [storms, weather])  # 1 − 0.25 − 0.5 reserved = 0.25
    assert a.reserved_usd == 0.5 and [c.model for c in a.funded] == ["storms"]
    verdict, why = a.verdict("weather/r1")
    assert verdict == "short"
    assert why.startswith("budget taken earlier in w by storms (4.0): retrain $0.5000 > $0.2500")
    # Once storms' retrain cost is recorded it is in the spend (0.25 + its actual 0.125) and no
    # longer reserved: weather fits in the $0.625 left.
    settled = cand("storms", 2, 0.5, 0, verdict="funded", settled=True)
    b = allocate("team", "w", 1.0, 0.375, [settled, weather])
    assert b.reserved_usd == 0.0 and b.verdict("weather/r1")[0] == "funded"
    assert b.left_usd == 0.125


def test_models_of_different_metrics_are_ranked_by_what_their_own_limit_says_a_point_is_worth() -> (
    None
):
    # elec2: 40 ROC AUC pt·batch for $0.25 = 160/$, at $0.0075 each: worth 1.2× the cost.
    # hotel_rates: 37.5 RMSE pt·batch for $0.25 = 150/$, at $0.0092 each: worth 1.38×.
    elec2 = cand("elec2", 40, 0.25, 0)
    hotel = cand("hotel_rates", 37.5, 0.25, 1, limit_usd=0.0092, metric="rmse")
    a = allocate("team", "w", 1.0, 0.75, [elec2, hotel])
    assert [c.model for c in a.funded] == ["hotel_rates"]
    assert a.verdict("elec2/r1")[1].startswith(
        "outbid by hotel_rates: 150.0 vs 160.0 pt·batch per $ (rmse vs roc_auc; ranked by gain "
        "valued at each model's limit: 1.38× vs 1.20× the cost)"
    )


def test_the_allocation_does_not_depend_on_the_order_rows_are_read() -> None:
    cands = [
        cand("a", 6, 0.25, 0),
        cand("b", 6, 0.25, 1),  # ties with a: the earlier post first
        cand("c", 3, 0.125, 2),  # ties with a and b in pt/$ too
        cand("d", 1, 0.5, 3),
    ]
    # $0.5 left: a and b (seq 0, 1), nothing else fits after them.
    first = allocate("t", "w", 1.0, 0.5, cands)
    assert [c.model for c in first.funded] == ["a", "b"]
    for perm in itertools.permutations(cands):
        again = allocate("t", "w", 1.0, 0.5, perm)
        assert again.funded == first.funded and again.refused == first.refused


def test_passes_are_not_candidates_and_earlier_refusals_stand() -> None:
    cands = [
        cand("a", 0.1, 0.25, 0, verdict="pass"),
        cand("b", 8, 0.25, 1, verdict="outbid"),
        cand("c", 1, 0.25, 2, verdict="pending"),
    ]
    a = allocate("t", "w", 1.0, 0.0, cands)
    assert [c.model for c in a.funded] == ["c"]
    assert a.verdict("b/r1")[0] == "outbid" and "a/r1" not in a.verdicts()


def test_one_run_posts_once_but_run_ids_repeat_across_models() -> None:
    same_id = [
        cand("a", 1, 0.25, 0, run_id="scheduled__x"),
        cand("b", 1, 0.25, 1, run_id="scheduled__x"),
    ]
    assert len(allocate("t", "w", 1.0, 0.0, same_id).funded) == 2
    with pytest.raises(ValueError, match="posted twice"):
        allocate("t", "w", 1.0, 0.0, [cand("a", 1, 0.25, 0), cand("a", 2, 0.25, 1)])


@pytest.mark.parametrize(
    ("clock", "window", "key"),
    [
        (dt.datetime(2026, 11, 26, 23, 59), "@weekly", "2026-W48"),  # `date +%G-W%V`
        (dt.datetime(2027, 1, 1), "@weekly", "2026-W53"),  # ISO year ≠ calendar year
        (dt.datetime(2024, 12, 30), "@weekly", "2025-W01"),
        (dt.datetime(2026, 11, 26, 23, 59), "@daily", "2026-11-26"),
        (dt.datetime(2026, 11, 26), "@monthly", "2026-11"),
    ],
)
def test_window_keys(clock: dt.datetime, window: str, key: str) -> None:
    assert window_key(clock, window) == key


def test_unknown_window_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown budget window '@hourly'; allowed: \['@daily'"):
        window_key(dt.datetime(2026, 1, 1), "@hourly")


def test_the_window_closes_when_everyone_posted_or_the_wait_is_over() -> None:
    t0 = dt.datetime(2026, 11, 23, 0, 5)
    models = ["elec2", "weather", "storms"]
    assert window_closed(["elec2", "weather", "storms"], models, t0, t0, 60)
    assert not window_closed(["elec2", "weather"], models, t0, t0 + dt.timedelta(minutes=59), 60)
    assert window_closed(["elec2", "weather"], models, t0, t0 + dt.timedelta(minutes=60), 60)
    assert window_closed(["elec2"], models, t0, t0, 0)  # no wait: ranked among those posted
