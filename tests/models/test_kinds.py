"""Target kinds and metrics: the config schema, every metric against scikit-learn, the
champion/challenger verdict per kind with the metric's direction, and the gain's unit.

Expected numbers come from scikit-learn or are worked by hand, never from costaware's own
metric code.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from costaware.config import METRIC_SPECS, EvaluationSpec
from costaware.decide.evaluation import judge
from costaware.decide.gain import regret_se
from costaware.decide.performance import metric_points, metric_value, paired_bootstrap
from costaware.decide.policy import point_text
from costaware.errors import ConfigError

from . import kinds_data as kd

SPEC = EvaluationSpec(bootstrap=200, confidence=0.9, min_gain_points=0.5, seed=0)
RNG = np.random.default_rng(7)


def _multiclass(n: int = 300, k: int = 3, skill: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    y = np.random.default_rng(1).integers(0, k, n)
    p = np.random.default_rng(2).dirichlet(np.ones(k), n)
    p[np.arange(n), y] += skill
    return y, p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- config schema


def test_shipped_configs_still_load() -> None:
    from costaware.config import load_all

    from ..conftest import ROOT

    cfgs = load_all(ROOT / "include" / "models")
    assert {"elec2", "weather"} <= set(cfgs)
    assert all(c.target.kind == "binary" and c.metric == "roc_auc" for c in cfgs.values())


@pytest.mark.parametrize(
    ("kind", "metric", "needle"),
    [
        ("regression", "roc_auc", "metric 'roc_auc' does not apply to a regression target"),
        ("binary", "rmse", "allowed for binary: ['roc_auc', 'accuracy', 'log_loss', 'macro_f1']"),
        ("multiclass", "r2", "allowed for multiclass"),
    ],
)
def test_metric_must_fit_the_target_kind(kind: str, metric: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        kd.config(kind, metric=metric)


def test_bad_combinations_are_clear_errors(tmp_path) -> None:
    import yaml

    from costaware.config import load_model_config

    base = kd.config("multiclass").model_dump(mode="json", exclude={"source_file"})
    cases = {
        "target.classes": {"target": {"name": "y", "kind": "multiclass", "classes": ["a", "b"]}},
        "only for kind: multiclass": {"target": {"name": "y", "classes": ["a", "b", "c"]}},
        "needs training.estimator": {"training": {"algorithm": "sklearn"}},
        "needs training.entry_point": {"training": {"algorithm": "custom"}},
        "entry_point": {"training": {"algorithm": "custom", "entry_point": "no-colon"}},
        "is categorical: min/max": {
            "features": [{"name": "a", "type": "categorical", "min": 0, "max": 1}]
        },
        "compares numbers, but 'a' is categorical": {
            "features": [{"name": "a", "type": "categorical"}],
            "drift": {"columns": {"a": {"method": "wasserstein", "threshold": 0.1}}},
        },
        "trains binary targets only": {"training": {"algorithm": "sklearn_hgb"}},
    }
    for needle, change in cases.items():
        path = tmp_path / "kinds_multiclass.yaml"
        path.write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(ConfigError) as err:
            load_model_config(path)
        assert str(path) in str(err.value) and needle in str(err.value), (needle, str(err.value))


def test_categorical_column_never_inherits_a_numeric_only_drift_method() -> None:
    cfg = kd.config("binary")
    data = cfg.model_dump()
    data["drift"] = {"method": "wasserstein", "threshold": 0.1}
    cfg = type(cfg).model_validate(data)
    assert cfg.drift_for("period").method == "wasserstein"
    assert cfg.drift_for("demand_band").method == "psi"


# ---------------------------------------------------------------- metrics vs scikit-learn


def test_every_metric_matches_scikit_learn() -> None:
    n = 250
    yb = RNG.integers(0, 2, n)
    sb = np.clip(0.35 * yb + RNG.uniform(0.05, 0.65, n), 0.01, 0.99)
    ym, pm = _multiclass(n)
    yr = RNG.normal(10, 3, n)
    pr = yr + RNG.normal(0, 1.5, n)
    want = {
        ("binary", "roc_auc"): skm.roc_auc_score(yb, sb),
        ("binary", "accuracy"): skm.accuracy_score(yb, sb >= 0.5),
        ("binary", "log_loss"): skm.log_loss(yb, sb),
        ("binary", "macro_f1"): skm.f1_score(yb, sb >= 0.5, average="macro"),
        ("multiclass", "roc_auc"): skm.roc_auc_score(ym, pm, multi_class="ovr"),
        ("multiclass", "accuracy"): skm.accuracy_score(ym, pm.argmax(1)),
        ("multiclass", "log_loss"): skm.log_loss(ym, pm),
        ("multiclass", "macro_f1"): skm.f1_score(ym, pm.argmax(1), average="macro"),
        ("regression", "rmse"): skm.root_mean_squared_error(yr, pr),
        ("regression", "mae"): skm.mean_absolute_error(yr, pr),
        ("regression", "r2"): skm.r2_score(yr, pr),
    }
    data = {"binary": (yb, sb), "multiclass": (ym, pm), "regression": (yr, pr)}
    assert {m for _, m in want} == set(METRIC_SPECS)
    for (kind, metric), expected in want.items():
        y, s = data[kind]
        pts = metric_points(y, s, metric)
        assert metric_value(pts, metric) == pytest.approx(expected, rel=1e-9), (kind, metric)
        # Points: more is better whatever the metric (a lower RMSE is more points).
        sign = 1 if metric in ("roc_auc", "accuracy", "macro_f1", "r2") else -1
        assert np.sign(pts) == sign * np.sign(expected)


def test_undefined_metrics_are_nan() -> None:
    y = np.full(40, 3.0)
    assert np.isnan(metric_points(y, y + 1, "r2"))  # constant target
    ym, pm = _multiclass(60)
    keep = ym != 2  # a class missing: multiclass ROC AUC is undefined, as sklearn refuses
    assert np.isnan(metric_points(ym[keep], pm[keep], "roc_auc"))
    assert np.isfinite(metric_points(ym[keep], pm[keep], "accuracy"))


# ---------------------------------------------------------------- verdicts per kind


def test_lower_rmse_challenger_wins_and_higher_loses() -> None:
    y = RNG.normal(50, 10, 200)
    worse = y + RNG.normal(0, 6, 200)
    better = y + RNG.normal(0, 2, 200)
    v = judge(y, worse, better, "rmse", SPEC)
    assert v.verdict == "promote", v.reason
    rmse_better = skm.root_mean_squared_error(y, better)
    rmse_worse = skm.root_mean_squared_error(y, worse)
    assert v.as_dict()["challenger_value"] == pytest.approx(rmse_better)
    assert v.gain == pytest.approx(rmse_worse - rmse_better)  # target units, positive
    assert v.as_dict()["higher_is_better"] is False
    flipped = judge(y, better, worse, "rmse", SPEC)
    assert flipped.verdict == "reject" and flipped.gain is not None and flipped.gain < 0


@pytest.mark.parametrize("metric", ["mae", "r2"])
def test_regression_verdicts(metric: str) -> None:
    y = RNG.normal(0, 1, 150)
    good, bad = y + RNG.normal(0, 0.3, 150), y + RNG.normal(0, 1.0, 150)
    assert judge(y, bad, good, metric, SPEC).verdict == "promote"
    assert judge(y, good, bad, metric, SPEC).verdict == "reject"


def test_first_regression_model_must_beat_predicting_the_mean() -> None:
    y = RNG.normal(5, 2, 120)
    noise = RNG.normal(5, 2, 120)  # unrelated to y: worse than the mean
    v = judge(y, None, noise, "rmse", SPEC)
    assert v.verdict == "reject" and not v.guardrails["better than chance"]
    # The mean predictor's RMSE is the target's population standard deviation.
    assert metric_value(v.chance_points, "rmse") == pytest.approx(np.std(y))
    assert judge(y, None, y + RNG.normal(0, 0.5, 120), "rmse", SPEC).verdict == "promote"


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "log_loss", "macro_f1"])
def test_multiclass_verdicts(metric: str) -> None:
    y, good = _multiclass(300, skill=1.5)
    _, weak = _multiclass(300, skill=0.2)
    v = judge(y, weak, good, metric, SPEC)
    assert v.verdict == "promote", v.reason
    assert judge(y, good, weak, metric, SPEC).verdict == "reject"
    shares = np.bincount(y, minlength=3) / len(y)
    if metric == "log_loss":  # chance: the class shares for every row (hand-worked entropy)
        assert v.chance_points == pytest.approx(100 * np.sum(shares * np.log(shares)))
    with pytest.raises(ValueError, match="class indices 0..2"):
        judge(y + 1, weak, good, metric, SPEC)


def test_multiclass_window_with_one_class_is_rejected() -> None:
    y, good = _multiclass(100, skill=1.5)
    one = np.zeros_like(y)
    v = judge(one, None, good, "accuracy", SPEC)
    assert v.verdict == "reject"
    assert v.guardrails["two or more classes in the held-out window"] is False


def test_paired_bootstrap_direction_for_rmse() -> None:
    y = RNG.normal(0, 1, 200)
    a, b = y + RNG.normal(0, 1, 200), y + RNG.normal(0, 0.5, 200)
    cmp = paired_bootstrap(y, a, b, "rmse", 300, 0.9, 0)
    assert cmp.low > 0  # b has the lower RMSE: a positive gain, interval above zero
    assert cmp.resamples == 300  # regression resamples are always defined


def test_regret_se_per_row_metric_is_exact() -> None:
    """MAE is a mean over rows: the paired standard error is that of the per-row difference
    (hand-worked formula, not the bootstrap)."""
    y = RNG.normal(0, 1, 80)
    fresh, old = y + RNG.normal(0, 0.3, 80), y + RNG.normal(0, 0.8, 80)
    d = np.abs(old - y) - np.abs(fresh - y)
    assert regret_se(y, fresh, [old], "mae")[0] == pytest.approx(d.std(ddof=1) / np.sqrt(80))


def test_gain_unit_is_said_in_the_checkpoint() -> None:
    assert point_text("rmse") == (
        "rmse: 1 point = one unit of the target; lower rmse is more points"
    )
    assert point_text("roc_auc") == "roc_auc: 1 point = 1/100 of roc_auc"


def test_checkpoint_table_names_the_metric() -> None:
    from costaware.decide.policy import CheckpointInputs, decide

    cfg = kd.config("regression")
    inputs = CheckpointInputs(
        model=cfg.name,
        has_champion=True,
        labelled_rows=1000,
        min_train_rows=10,
        gain_points=2.0,
        gain_low=1.0,
        gain_high=3.0,
        gain_basis="test",
        cost_usd=0.01,
        cost_quality="static",
        cost_source="static",
        spent_this_month_usd=0.0,
        hours_since_last_retrain=None,
        metric="rmse",
    )
    d = decide(inputs, cfg.cost_policy)
    assert d.action == "retrain"  # $0.005 per point ≤ $0.01: the RMSE gain is positive
    assert "lower rmse is more points" in d.table()
