"""How much would a retrain win back? The expected gain Δ the checkpoint weighs.

Δ is counted in metric points × batches: the points a fresh model is expected to score above
the champion, summed over the batches it would serve. The DAG (``pipeline.measure_performance``)
and the benchmark (``bench/policy.py``) both call ``estimate_gain_probe`` below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GainEstimate:
    points: float  # expected gain in metric points × batches (≥ 0)
    low: float
    high: float
    method: str
    basis: str

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


# ── the probe-curve estimator ─────────────────────────────────────────────────────────────
# Comparing the champion with itself at promotion time makes a hard week look like decay and
# an easy week hide it. The probe curve compares models on the *same* newest labelled batch:
# a cheap "probe" trained on the labelled window without that batch (what a retrain would
# have produced one batch ago) against the probes of earlier runs. Probe (age 0) minus the
# probe of ``a`` batches ago is the regret of a model of age ``a`` right now; smoothed over
# recent runs it says how fast models go stale in the current regime, and the champion's own
# regret says how stale it is. The gain of retraining now is then the best cycle a retrain
# can buy: holding the champion's regret for k batches versus the new model's regret
# accumulating along the curve (the "marginal ≥ average cost" rule of renewal theory, written
# so that decide()'s cost / gain ≤ limit applies unchanged).

PROBE_AGES = 8  # probes kept: regret measured at ages 1..PROBE_AGES
PROBE_HALFLIFE = 3.0  # runs; chosen on Elec2's first half (bench/README.md)
PROBE_BLEND = 0.5  # weight of the champion's own measured regret vs the smoothed curve


def regret_curve(
    y: Any, probe_score: Any, older_scores: list[Any | None], metric: str
) -> list[float | None]:
    """Regret (metric points) of models of age 1..len(older_scores) on one labelled batch:
    the fresh probe's points minus each older probe's points (``None`` where no probe)."""
    from costaware.performance import metric_points

    fresh = metric_points(y, probe_score, metric)
    return [None if s is None else fresh - metric_points(y, s, metric) for s in older_scores]


def smooth_curve(
    curves: list[list[float | None]], halflife: float = PROBE_HALFLIFE, ages: int = PROBE_AGES
) -> list[float]:
    """Exponentially weighted mean of recent regret curves (newest last), made non-negative and
    non-decreasing in age; ages never measured take the last measured value."""
    import numpy as np

    if not curves:
        return [0.0] * (ages + 1)
    rows = curves[-int(4 * halflife) - 1 :]
    c = np.full((len(rows), ages + 1), np.nan)
    c[:, 0] = 0.0
    for i, row in enumerate(rows):
        for a, v in enumerate(row[:ages], start=1):
            if v is not None and v == v:
                c[i, a] = v
    w = 0.5 ** (np.arange(len(rows))[::-1] / halflife)
    seen = ~np.isnan(c)
    den = (seen * w[:, None]).sum(0)
    rho = np.where(den > 0, np.nansum(c * w[:, None], 0) / np.maximum(den, 1e-12), np.nan)
    last = rho[~np.isnan(rho)][-1]
    rho = np.where(np.isnan(rho), last, rho)
    return [float(v) for v in np.maximum.accumulate(np.maximum(rho, 0.0))]


def cycle_gain(regret_now: float, curve: list[float]) -> tuple[float, int]:
    """max over k of k × regret_now − Σ_{a<k} curve[a]: what a retrain now saves over the best
    k-batch cycle (in metric points × batches), and that k."""
    best, best_k, acc = -float("inf"), 1, 0.0
    for k in range(1, len(curve)):
        acc += curve[k - 1]
        g = k * regret_now - acc
        if g > best:
            best, best_k = g, k
    return max(0.0, best), best_k


def estimate_gain_probe(
    curves: list[list[float | None]],
    champion_age: int,
    champion_regret: float | None,
    halflife: float = PROBE_HALFLIFE,
    blend: float = PROBE_BLEND,
    ages: int = PROBE_AGES,
) -> GainEstimate:
    """Expected gain (metric points × batches) of retraining now, from probe regret curves.

    ``curves``: one ``regret_curve`` per past run, oldest first (the newest labelled batch
    last); ``champion_age``: batches the champion will have served at the next batch;
    ``champion_regret``: the champion's measured regret on the newest labelled batch (fresh
    probe minus champion, points), ``None`` when that batch was part of its training window.
    """
    if not curves:
        return GainEstimate(
            0.0, 0.0, 0.0, "probe", "no probe curve yet (need two labelled batches)"
        )
    rho = smooth_curve(curves, halflife, ages)
    age = max(1, min(champion_age, ages))
    expected = rho[age]
    regret = (
        expected if champion_regret is None else (1 - blend) * expected + blend * champion_regret
    )
    spread = _curve_spread(curves, age, halflife)
    points, k = cycle_gain(regret, rho)
    low, _ = cycle_gain(regret - spread, rho)
    high, _ = cycle_gain(regret + spread, rho)
    own = "n/a" if champion_regret is None else f"{champion_regret:+.2f}"
    basis = (
        f"probe curve over {min(len(curves), int(4 * halflife) + 1)} run(s): a model of age "
        f"{age} loses {expected:.2f} pts (champion measured {own}) → regret {regret:.2f} pts; "
        f"best cycle {k} batch(es) → gain {points:.2f} pts×batches"
    )
    return GainEstimate(points, low, high, "probe", basis)


def _curve_spread(curves: list[list[float | None]], age: int, halflife: float) -> float:
    """Standard deviation of the recent regret measurements at ``age`` (the estimate's noise)."""
    import statistics

    vals: list[float] = [
        v
        for row in curves[-int(4 * halflife) - 1 :]
        if len(row) >= age and (v := row[age - 1]) is not None
    ]
    return statistics.pstdev(vals) if len(vals) > 1 else 0.0


def fit_probe(x: Any, y: Any, params: dict[str, Any], rounds: int = 50, seed: int = 0) -> Any:
    """The cheap probe: XGBoost with the model's own parameters, few rounds, one thread."""
    import xgboost as xgb

    full = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "nthread": 1,
        "seed": seed,
        "verbosity": 0,
        **params,
    }
    return xgb.train(full, xgb.DMatrix(x, label=y), num_boost_round=rounds)
