"""Realized return (decide/realized.py): hand-worked cases of the realized gain of one retrain,
the shrunk running ratio, the dollars per point paid, and the correction of the next gain."""

from __future__ import annotations

import math

import pytest

from costaware.decide.policy import CheckpointInputs, decide
from costaware.decide.realized import (
    PRIOR_SD,
    BatchGain,
    Outcome,
    checkpoint_gain,
    correct,
    realized_gain,
    summarize,
)

from .. import factories


def _rejected(run: str, expected: float, usd: float | None = 0.02) -> Outcome:
    return Outcome(run, expected, 4, usd, promoted=False)


def test_realized_gain_is_the_mean_batch_gain_over_the_horizon_with_the_larger_error() -> None:
    """Gains 2 and 4 points (sampling error 1 each) on the two later batches seen so far,
    horizon 3: mean 3 × 3 = 9 pt·batches. Error of the mean: sampling √2 / 2 = 0.71, spread
    between the batches sd(2, 4) / √2 = 1.0 → the larger, 1.0, × 3 = 3."""
    o = Outcome("p", 6.0, 3, 0.02, True, (BatchGain("a", 2.0, 1.0), BatchGain("b", 4.0, 1.0)))
    assert realized_gain(o) == pytest.approx((9.0, 3.0))


def test_only_the_first_horizon_batches_count_and_undefined_ones_are_not_zero() -> None:
    """Horizon 2: the third batch (+30) is beyond it; a NaN batch (one class only) is no
    evidence and is skipped, not counted as 0."""
    o = Outcome(
        "p",
        5.0,
        2,
        None,
        True,
        (
            BatchGain("a", math.nan, None),
            BatchGain("b", 1.0),
            BatchGain("c", 3.0),
            BatchGain("d", 30.0),
        ),
    )
    got = realized_gain(o)
    assert got is not None and got[0] == pytest.approx(2 * (1.0 + 3.0) / 2)


def test_pending_promotions_and_unknown_horizons_are_not_counted() -> None:
    waiting = Outcome("p1", 5.0, 3, 0.02, True)  # no later batch labelled yet
    unknown = Outcome("p2", 5.0, None, 0.02, True, (BatchGain("a", 1.0, 0.5),))
    r = summarize([waiting, unknown])
    assert (r.counted, r.pending, r.ratio, r.ratio_se, r.raw_ratio) == (0, 2, 1.0, PRIOR_SD, None)
    assert "no retrain measured yet (2 pending)" in r.text()


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_retrains_that_never_pay_shrink_the_ratio_as_one_over_one_plus_n(n: int) -> None:
    """n rejected challengers, each promised the same gain and realized exactly 0. With the
    prior worth one retrain (prior 1 ± s, each outcome's variance at least s²), the posterior
    mean is (1·1 + n·0) / (1 + n) and its error s / √(1 + n), whatever s is."""
    r = summarize([_rejected(f"r{i}", 3.0) for i in range(n)])
    assert r.raw_ratio == 0.0 and r.realized_total == 0.0 and r.counted == n
    assert r.ratio == pytest.approx(1 / (1 + n))
    assert r.ratio_se == pytest.approx(PRIOR_SD / math.sqrt(1 + n))
    assert math.isinf(r.usd_per_point_paid or 0.0)
    assert r.usd_per_point_expected == pytest.approx(0.02 * n / (3.0 * n))


def test_outcomes_that_disagree_weigh_less_than_the_prior() -> None:
    """Two retrains promised 2 pt·batches each: one realized 0, one 2 (ratios 0 and 1).
    Raw ratio 2 / 4 = 0.5. Weighted spread of the ratios: (½·¼ + ½·¼) × 2/1 = 0.5 > s² =
    0.25, so each counts with variance 0.5; the mean's variance ¼·0.5 + ¼·0.5 = 0.25.
    Posterior: (1/0.25 · 1 + 1/0.25 · 0.5) / (4 + 4) = 0.75, error 1/√8."""
    paid = Outcome("p", 2.0, 2, 0.01, True, (BatchGain("a", 1.0, 0.1), BatchGain("b", 1.0, 0.1)))
    r = summarize([_rejected("r", 2.0, 0.01), paid])
    assert r.raw_ratio == pytest.approx(0.5)
    assert r.ratio == pytest.approx(0.75)
    assert r.ratio_se == pytest.approx(1 / math.sqrt(8))
    # $ per point: 0.02 paid for 2 realized points; 0.02 for 4 expected.
    assert r.usd_per_point_paid == pytest.approx(0.01)
    assert r.usd_per_point_expected == pytest.approx(0.005)


def test_a_noisy_realized_gain_counts_with_its_own_sampling_error() -> None:
    """One promotion, expected 6, realized 9 ± 3 (ratio 1.5 ± 0.5): variance 0.25 — equal
    to the prior's, so the posterior is halfway: 1.25."""
    o = Outcome("p", 6.0, 3, 0.02, True, (BatchGain("a", 2.0, 1.0), BatchGain("b", 4.0, 1.0)))
    assert summarize([o]).ratio == pytest.approx(1.25)
    noisier = Outcome("p", 6.0, 3, 0.02, True, (BatchGain("a", 2.0, 4.0), BatchGain("b", 4.0, 4.0)))
    # Sampling error √32 / 2 × 3 = 8.49 → ratio variance (8.49 / 6)² = 2: weight 0.5 vs 4.
    assert summarize([noisier]).ratio == pytest.approx((4 * 1 + 0.5 * 1.5) / 4.5)


def test_an_unknown_cost_is_unknown_not_free() -> None:
    r = summarize([_rejected("r1", 2.0), _rejected("r2", 2.0, usd=None)])
    assert r.cost_total is None and r.usd_per_point_paid is None
    assert "unknown (a cost is unknown)" in r.text()


def test_forced_retrains_promise_nothing_and_teach_nothing() -> None:
    forced = Outcome("f", 0.0, 1, 0.02, True, (BatchGain("a", -5.0, 1.0),))
    r = summarize([forced])
    assert r.counted == 0 and r.ratio == 1.0
    assert r.outcomes[0]["note"] == "not counted: no gain was expected"


def test_correction_scales_the_gain_and_leaves_it_alone_without_evidence() -> None:
    none_yet = summarize([])
    c = correct(5.0, 2.0, 8.0, none_yet)
    assert (c.points, c.low, c.high) == (5.0, 2.0, 8.0)
    two = summarize([_rejected("r1", 3.0), _rejected("r2", 3.0)])  # 1/3 ± 0.5/√3
    c = correct(6.0, 3.0, 9.0, two)
    se = 0.5 / math.sqrt(3)
    assert c.points == pytest.approx(2.0)
    assert c.low == pytest.approx(3.0 * (1 / 3 - se))
    assert c.high == pytest.approx(9.0 * (1 / 3 + se))
    hurt = summarize([Outcome("p", 2.0, 1, 0.02, True, (BatchGain("a", -40.0, 1.0),))])
    assert hurt.ratio < 0 and correct(6.0, 3.0, 9.0, hurt).points == 0.0  # never negative


def test_the_checkpoint_skips_what_the_estimator_alone_would_retrain() -> None:
    """The shipped Weather policy ($0.006 per pt·batch): a $0.012 retrain needs 2 pt·batches.
    The estimator says 3 (retrain); after three retrains that realized nothing the ratio is
    1/4 → 0.75 pt·batches, $0.016 per pt·batch: skip, with the numbers in the memo."""
    cfg = factories.model("weather")
    gain = {"points": 3.0, "low": 1.0, "high": 5.0}
    realized = summarize([_rejected(f"r{i}", 3.0, 0.012) for i in range(3)]).as_dict()
    base = {
        "model": "weather",
        "has_champion": True,
        "labelled_rows": 720,
        "min_train_rows": 300,
        "gain_basis": "probe",
        "cost_usd": 0.012,
        "cost_quality": "estimated",
        "cost_source": "ledger",
        "spent_this_month_usd": 0.0,
        "hours_since_last_retrain": 100.0,
        "metric": "roc_auc",
    }
    raw = decide(CheckpointInputs(**base, **checkpoint_gain(gain, None)), cfg.cost_policy)
    assert raw.action == "retrain"
    fixed = decide(CheckpointInputs(**base, **checkpoint_gain(gain, realized)), cfg.cost_policy)
    assert fixed.action == "skip" and "per pt·batch" in fixed.reason
    assert fixed.numbers["expected gain (pt·batches)"] == pytest.approx(0.75)
    assert fixed.numbers["estimator's gain before realized correction (pt·batches)"] == 3.0
    assert fixed.numbers["realized / expected ratio (shrunk)"] == "0.25 ± 0.25"
    assert "3 retrain(s) measured" in fixed.numbers["realized return"]
