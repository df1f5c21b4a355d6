"""The champion/challenger verdict: degenerate windows never promote, for every metric.

Expected numbers come from scikit-learn or are worked by hand, never from costaware's own
metric code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from costaware.config import EvaluationSpec
from costaware.decide.evaluation import Verdict, judge

SPEC = EvaluationSpec(bootstrap=200, confidence=0.9, min_gain_points=0.5, seed=0)
# The binary metrics this file checks by scikit-learn; macro F1, multiclass and regression
# metrics: tests/models/test_kinds.py.
METRICS = ("roc_auc", "accuracy", "log_loss")
PROBABILITY_METRICS = ("accuracy", "log_loss")
Window = tuple[np.ndarray, np.ndarray | None, np.ndarray]


def sk_points(y: np.ndarray, s: np.ndarray, metric: str) -> float:
    """The metric in points (higher is better) by scikit-learn."""
    if metric == "roc_auc":
        return 100 * roc_auc_score(y, s)
    if metric == "accuracy":
        return 100 * accuracy_score(y, s >= 0.5)
    return -100 * log_loss(y, s, labels=[0, 1])


def sk_chance(y: np.ndarray, metric: str) -> float:
    """Hand-worked: ROC AUC of a constant is 50; accuracy of always predicting the majority
    class; log loss of predicting the positive rate for every row (sklearn)."""
    p = y.mean()
    if metric == "roc_auc":
        return 50.0
    if metric == "accuracy":
        return 100 * max(p, 1 - p)
    return -100 * log_loss(y, np.full(len(y), p), labels=[0, 1])


def labels(n: int, seed: int = 0) -> np.ndarray:
    y = np.random.default_rng(seed).integers(0, 2, n)
    y[:2] = [0, 1]  # both classes, whatever the draw
    return y


def good(y: np.ndarray, seed: int = 1) -> np.ndarray:
    """A challenger that knows the labels up to small noise."""
    noise = np.random.default_rng(seed).normal(0, 0.1, len(y))
    return np.clip(y + noise, 0.02, 0.98)


def weak(y: np.ndarray, seed: int = 3) -> np.ndarray:
    """Better than chance, worse than ``good``."""
    noise = np.random.default_rng(seed).normal(0.35, 0.15, len(y))
    return np.clip(0.3 * y + noise, 0.02, 0.98)


def coin(n: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.02, 0.98, n)


def json_safe(v: Verdict) -> dict:
    """The step's dict goes to XCom and a JSON column: no NaN may reach it."""
    return json.loads(json.dumps(v.as_dict(), allow_nan=False))


# ---------------------------------------------------------------- positive controls


@pytest.mark.parametrize("metric", METRICS)
def test_clearly_better_challenger_is_promoted(metric: str) -> None:
    y = labels(200)
    champ, chall = coin(200), good(y)
    v = judge(y, champ, chall, metric, SPEC)
    assert v.verdict == "promote", v.reason
    assert all(v.guardrails.values()), v.guardrails
    want = sk_points(y, chall, metric) - sk_points(y, champ, metric)
    assert want > 10  # the construction really is clearly better
    assert v.gain == pytest.approx(want)
    assert v.challenger_points == pytest.approx(sk_points(y, chall, metric))
    assert v.champion_points == pytest.approx(sk_points(y, champ, metric))
    assert v.interval is not None and 0 < v.interval[0] <= want <= v.interval[1]
    assert v.resamples_drawn == SPEC.bootstrap
    out = json_safe(v)
    assert out["min_gain_points"] == 0.5 and out["min_rows"] == SPEC.min_rows


@pytest.mark.parametrize("metric", METRICS)
def test_challenger_below_chance_beating_a_worse_champion_is_promoted(metric: str) -> None:
    """A flipped concept on the held-out window: the champion is worse than a constant, the
    challenger less so. Keeping the champion would serve the worse model."""
    y = labels(300)
    champ, chall = 1.0 - good(y), 1.0 - weak(y)  # both anti-correlated, the champion more
    assert sk_points(y, champ, metric) < sk_points(y, chall, metric) < sk_chance(y, metric)
    v = judge(y, champ, chall, metric, SPEC)
    assert v.verdict == "promote", v.reason
    assert "both below the constant base-rate predictor" in v.reason
    assert "better than chance" not in v.guardrails


@pytest.mark.parametrize("metric", METRICS)
def test_worse_challenger_is_rejected_with_its_numbers(metric: str) -> None:
    y = labels(200)
    champ, chall = good(y), weak(y)
    assert sk_points(y, chall, metric) > sk_chance(y, metric)  # only the comparison fails
    v = judge(y, champ, chall, metric, SPEC)
    assert v.verdict == "reject" and "needs ≥ 0.5 pts" in v.reason, v.reason
    assert all(v.guardrails.values())
    assert v.gain == pytest.approx(sk_points(y, chall, metric) - sk_points(y, champ, metric))
    assert v.gain is not None and v.gain < 0


@pytest.mark.parametrize("metric", METRICS)
def test_first_model_is_promoted_when_better_than_chance(metric: str) -> None:
    y = labels(200)
    y[:150] = 1  # imbalanced: the majority rate is far from 50 %
    v = judge(y, None, good(y), metric, SPEC)
    assert v.verdict == "promote", v.reason
    assert v.chance_points == pytest.approx(sk_chance(y, metric))
    assert v.gain is None and v.interval is None and v.champion_points is None
    json_safe(v)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["inverted", "constant base rate"])
def test_first_model_no_better_than_chance_is_rejected(metric: str, kind: str) -> None:
    y = labels(200)
    y[:150] = 1
    chall = 1 - good(y) if kind == "inverted" else np.full(200, y.mean())
    v = judge(y, None, chall, metric, SPEC)
    assert v.verdict == "reject" and "better than chance" in v.reason, v.reason
    assert v.guardrails["better than chance"] is False


def test_accuracy_chance_is_the_majority_rate_not_fifty() -> None:
    """75 % positives: a model right on 70 % of rows beats a coin but not "always 1"."""
    y = np.r_[np.ones(150), np.zeros(50)].astype(int)
    chall = np.where(np.arange(200) < 140, 0.9, 0.1)  # 140 right, 10 + 50 = 60 wrong... see below
    # rows 0-139: positive, scored 0.9 (right); 140-149: positive, 0.1 (wrong);
    # 150-199: negative, 0.1 (right) → 190/200 right = 95 %, above 75 %: promote.
    assert judge(y, None, chall, "accuracy", SPEC).verdict == "promote"
    chall = np.where(np.arange(200) < 100, 0.9, 0.1)  # 100 + 50 right = 75 %: ties → reject
    v = judge(y, None, chall, "accuracy", SPEC)
    assert v.challenger_points == pytest.approx(75.0) and v.chance_points == pytest.approx(75.0)
    assert v.verdict == "reject"


# ---------------------------------------------------------------- degenerate windows


def _all_nan(y: np.ndarray) -> Window:
    return y, coin(len(y)), np.full(len(y), np.nan)


def _inf_challenger(y: np.ndarray) -> Window:
    s = good(y)
    s[3] = np.inf
    return y, coin(len(y)), s


def _nan_champion(y: np.ndarray) -> Window:
    c = coin(len(y))
    c[5] = np.nan
    return y, c, good(y)


def _minus_inf_champion(y: np.ndarray) -> Window:
    c = coin(len(y))
    c[0] = -np.inf
    return y, c, good(y)


def _all_positive(y: np.ndarray) -> Window:
    y = np.ones_like(y)
    return y, coin(len(y)), good(y)


def _all_negative(y: np.ndarray) -> Window:
    y = np.zeros_like(y)
    return y, coin(len(y)), good(y)


def _tiny(y: np.ndarray) -> Window:
    y = y[:12]
    return y, coin(12), good(y)


def _empty(y: np.ndarray) -> Window:
    e = np.array([], dtype=float)
    return e.astype(int), e, e


def _identical(y: np.ndarray) -> Window:
    s = good(y)
    return y, s.copy(), s


def _rare_class(y: np.ndarray) -> Window:
    """40 rows, one positive: (39/40)^40 ≈ 36 % of resamples miss it (hand-worked)."""
    y = np.zeros(40, dtype=int)
    y[7] = 1
    return y, coin(40), np.where(y == 1, 0.95, 0.05)


CASES: dict[str, tuple[Callable[[np.ndarray], Window], list[str]]] = {
    "all-NaN challenger": (
        _all_nan,
        ["challenger scores are finite", "challenger metric is defined"],
    ),
    "inf in challenger": (_inf_challenger, ["challenger scores are finite"]),
    "NaN in champion": (_nan_champion, ["champion scores are finite"]),
    "-inf in champion": (_minus_inf_champion, ["champion scores are finite"]),
    "all positive": (_all_positive, ["both classes in the held-out window"]),
    "all negative": (_all_negative, ["both classes in the held-out window"]),
    "tiny window": (_tiny, ["enough rows"]),
    "empty window": (_empty, ["enough rows", "both classes in the held-out window"]),
    "identical models": (_identical, ["challenger differs from champion"]),
    "rare class": (_rare_class, ["bootstrap resamples defined"]),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_window_is_rejected_naming_the_guardrail(case: str, metric: str) -> None:
    build, names = CASES[case]
    y, champ, chall = build(labels(200))
    v = judge(y, champ, chall, metric, SPEC)
    assert v.verdict == "reject"
    for name in names:
        assert v.guardrails[name] is False, v.guardrails
        assert name in v.reason, v.reason
    json_safe(v)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", ["all-NaN challenger", "inf in challenger", "all positive"])
def test_degenerate_first_model_is_rejected(case: str, metric: str) -> None:
    build, names = CASES[case]
    y, _, chall = build(labels(200))
    v = judge(y, None, chall, metric, SPEC)
    assert v.verdict == "reject" and v.reason.startswith("first model failed guardrails")
    assert all(name in v.reason for name in names), v.reason
    json_safe(v)


def test_one_class_window_makes_roc_auc_undefined_on_both_sides() -> None:
    y, champ, chall = _all_positive(labels(200))
    v = judge(y, champ, chall, "roc_auc", SPEC)
    assert v.challenger_points is None and v.champion_points is None and v.gain is None
    assert "challenger metric is defined" in v.reason and "champion metric is defined" in v.reason


@pytest.mark.parametrize("metric", PROBABILITY_METRICS)
@pytest.mark.parametrize("side", ["challenger", "champion"])
@pytest.mark.parametrize("bad", [1.5, -0.2])
def test_scores_outside_unit_interval_are_rejected(metric: str, side: str, bad: float) -> None:
    y = labels(200)
    champ, chall = coin(200), good(y)
    (chall if side == "challenger" else champ)[10] = bad
    v = judge(y, champ, chall, metric, SPEC)
    assert v.verdict == "reject"
    assert f"{side} scores are probabilities in [0, 1]" in v.reason, v.reason


def test_roc_auc_only_ranks_so_any_finite_scores_are_accepted() -> None:
    """ROC AUC reads scores as ranks: a margin (a logit) is a valid input."""
    y = labels(200)
    chall = 10 * good(y) - 5
    v = judge(y, coin(200), chall, "roc_auc", SPEC)
    assert v.verdict == "promote", v.reason
    assert v.challenger_points == pytest.approx(100 * roc_auc_score(y, chall))


def test_min_rows_is_the_configured_floor() -> None:
    y = labels(200)[:20]
    spec = SPEC.model_copy(update={"min_rows": 20})
    assert judge(y, None, good(y), "roc_auc", spec).guardrails["enough rows"] is True
    spec = SPEC.model_copy(update={"min_rows": 21})
    v = judge(y, None, good(y), "roc_auc", spec)
    assert v.verdict == "reject" and "20 held-out rows < min_rows 21" in v.reason


def test_bad_inputs_are_errors_not_verdicts() -> None:
    y = labels(50)
    with pytest.raises(ValueError, match="50 labels, 49 challenger"):
        judge(y, None, good(y)[:49], "roc_auc", SPEC)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        judge(y * 2, None, good(y), "roc_auc", SPEC)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        judge(y, None, good(y), "f1", SPEC)


# ---------------------------------------------------------------- property


@st.composite
def windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, str, int]:
    n = draw(st.integers(0, 60))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    y = {
        "random": rng.integers(0, 2, n),
        "ones": np.ones(n, dtype=int),
        "zeros": np.zeros(n, dtype=int),
        "rare": (np.arange(n) == rng.integers(0, max(n, 1))).astype(int),
    }[draw(st.sampled_from(["random", "random", "ones", "zeros", "rare"]))]
    champ = rng.uniform(0, 1, n)
    chall = {
        "good": np.clip(y + rng.normal(0, 0.15, n), 0, 1),
        "random": rng.uniform(0, 1, n),
        "constant": np.full(n, 0.5),
    }[draw(st.sampled_from(["good", "good", "random", "constant"]))]
    if draw(st.integers(0, 3)) == 0:
        champ = chall.copy()  # identical models
    for _ in range(draw(st.sampled_from([0, 0, 1, 3])) if n else 0):
        target = chall if draw(st.booleans()) else champ
        target[draw(st.integers(0, n - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1.5, -0.2])
        )
    has_champion = draw(st.booleans())
    return (
        y,
        champ if has_champion else None,
        chall,
        draw(st.sampled_from(METRICS)),
        draw(st.sampled_from([2, 10, 30])),
    )


def violations(
    y: np.ndarray, champ: np.ndarray | None, chall: np.ndarray, metric: str, min_rows: int
) -> list[str]:
    """Guardrail violations worked out from the inputs alone."""
    found = []
    if len(y) < min_rows:
        found.append("rows")
    if len(set(y.tolist())) < 2:
        found.append("one class")
    for s in [chall] + ([] if champ is None else [champ]):
        if not np.isfinite(s).all():
            found.append("non-finite")
        elif metric in PROBABILITY_METRICS and ((s < 0) | (s > 1)).any():
            found.append("not a probability")
    if champ is not None and np.array_equal(champ, chall, equal_nan=True):
        found.append("identical")
    return found


@settings(max_examples=120, deadline=None)
@given(windows())
def test_no_degenerate_window_is_ever_promoted(case) -> None:
    y, champ, chall, metric, min_rows = case
    spec = EvaluationSpec(bootstrap=50, confidence=0.9, min_gain_points=0.5, min_rows=min_rows)
    v = judge(y, champ, chall, metric, spec)
    json_safe(v)  # never a NaN in the result, whatever the input
    if violations(y, champ, chall, metric, min_rows):
        assert v.verdict == "reject", (v.reason, v.guardrails)
        return
    if v.verdict != "promote":
        return
    # Promoted: everything checked again by scikit-learn.
    assert all(v.guardrails.values())
    chall_pts = sk_points(y, chall, metric)
    assert math.isfinite(chall_pts)
    if champ is None:
        assert chall_pts > sk_chance(y, metric)
    else:
        gain = chall_pts - sk_points(y, champ, metric)
        assert gain >= spec.min_gain_points - 1e-9
        assert v.interval is not None and v.interval[0] > 0
        assert v.resamples_defined is not None and v.resamples_defined >= 0.9 * 50


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(30, 80),
    seed=st.integers(0, 2**16),
    champion=st.sampled_from(["good", "weak", "coin"]),
    challenger=st.sampled_from(["good", "weak", "coin"]),
    metric=st.sampled_from(METRICS),
)
def test_a_promotion_on_a_clean_window_is_a_real_gain(
    n: int, seed: int, champion: str, challenger: str, metric: str
) -> None:
    """Well-formed windows: whatever the verdict, a promotion is a gain scikit-learn confirms,
    and a clearly better challenger (good over coin) is promoted."""
    y = labels(n, seed)
    make = {"good": good, "weak": weak, "coin": lambda y, s: coin(len(y), s)}
    champ, chall = make[champion](y, seed + 1), make[challenger](y, seed + 2)
    spec = EvaluationSpec(bootstrap=100, confidence=0.9, min_gain_points=0.5)
    v = judge(y, champ, chall, metric, spec)
    gain = sk_points(y, chall, metric) - sk_points(y, champ, metric)
    assert v.gain == pytest.approx(gain)
    if v.verdict == "promote":
        assert gain >= 0.5
        assert v.interval is not None and v.interval[0] > 0
    if challenger == "good" and champion == "coin" and min(y.sum(), n - y.sum()) >= 5:
        assert v.verdict == "promote", v.reason
