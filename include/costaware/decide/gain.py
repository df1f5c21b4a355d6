"""How much would a retrain win back? The expected gain Δ the checkpoint weighs.

Δ is counted in metric points × batches: the points a fresh model is expected to score above
the champion, summed over the batches it would serve. A point is the metric's own
(``config.METRIC_SPECS``): one hundredth of ROC AUC, accuracy, macro F1 or R², 0.01 of log
loss, one target unit of RMSE or MAE, always counted so that more is better (a lower RMSE
is a gain), so the checkpoint's cost / gain rule is the same for every metric. The DAG
(``steps.measure.measure_performance``) and the benchmark (``bench/policy.py``) both call
``estimate_gain_probe`` below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GainEstimate:
    points: float  # expected gain in metric points × batches (≥ 0)
    low: float
    high: float
    method: str
    basis: str
    horizon: int | None = None  # batches the gain is counted over (the best cycle), if known

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
# On small batches one regret measurement is mostly noise (a paired difference on 30 rows has
# a standard error of ~5 accuracy points; on 336 rows ~2): the estimator then pools over a
# fixed amount of evidence (rows, not runs) and over the champion's own past batches.

PROBE_AGES = 8  # probes kept: regret measured at ages 1..PROBE_AGES
PROBE_HALFLIFE = 3.0  # runs; chosen on Elec2's first half (bench/README.md)
PROBE_BLEND = 0.5  # weight of the champion's own measured regret vs the smoothed curve
PROBE_ROWS = 336  # rows per run where the half-life was tuned (Elec2's weekly batches)
PROBE_HORIZON = 104  # longest cycle considered when the champion is older than the curve
# Gain priced at regret − z × its standard error. z ∈ {0, 0.5, 1} compared on Elec2's first 67
# batches: 0 was best at every κ once the pooling below is on (a higher z spends less, for
# owners who want that); the standard error still sets the reported interval.
PROBE_Z = 0.0


def regret_curve(
    y: Any, probe_score: Any, older_scores: list[Any | None], metric: str
) -> list[float | None]:
    """Regret (metric points) of models of age 1..len(older_scores) on one labelled batch:
    the fresh probe's points minus each older probe's points (``None`` where no probe)."""
    from costaware.decide.performance import metric_points

    fresh = metric_points(y, probe_score, metric)
    return [None if s is None else fresh - metric_points(y, s, metric) for s in older_scores]


def regret_se(
    y: Any,
    probe_score: Any,
    older_scores: list[Any | None],
    metric: str,
    resamples: int = 200,
    seed: int = 0,
) -> list[float | None]:
    """Sampling standard error (points) of each ``regret_curve`` entry on the same rows.

    The comparison is paired (both models scored on the same rows), so its noise is that of
    the per-row difference: exact for metrics that are a mean over rows (accuracy, log loss,
    MAE: ``MetricSpec.per_row_mean``), a paired bootstrap for the others (ROC AUC, macro
    F1, RMSE, R²). It is what separates a real regret from luck: ~2 points on 336 rows, ~8
    on 30 (ROC AUC on Elec2)."""
    import numpy as np

    from costaware.config import METRIC_SPECS
    from costaware.decide.performance import _points_rows

    y_arr = np.asarray(y, dtype=float)
    fresh = np.asarray(probe_score, dtype=float)
    n = len(y_arr)
    out: list[float | None] = []
    for older in older_scores:
        if older is None or n < 2:
            out.append(None)
            continue
        old = np.asarray(older, dtype=float)
        if not METRIC_SPECS[metric].per_row_mean:
            idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
            ys = y_arr[idx]
            d = _points_rows(ys, fresh[idx], metric) - _points_rows(ys, old[idx], metric)
            d = d[~np.isnan(d)]
            out.append(float(d.std(ddof=1)) if d.size > 1 else None)
        else:  # a mean over rows: the standard error of the mean per-row difference
            rows = [_points_rows(y_arr[:, None], v[:, None], metric) for v in (fresh, old)]
            out.append(float((rows[0] - rows[1]).std(ddof=1) / np.sqrt(n)))
    return out


def champion_regret(
    y: Any, probe_score: Any, champion_score: Any, metric: str, seed: int = 0
) -> tuple[float, float | None]:
    """The serving champion's regret on one labelled window — the fresh probe's points minus
    the champion's, on the same rows — and its paired standard error: what
    ``estimate_gain_probe`` takes as ``regret`` / ``champion_se`` (``steps.measure`` and the
    backtest engine both call this)."""
    regret = regret_curve(y, probe_score, [champion_score], metric)[0]
    assert regret is not None  # a scored champion always has a regret
    return regret, regret_se(y, probe_score, [champion_score], metric, seed=seed)[0]


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
    *,
    curve_se: list[list[float | None]] | None = None,
    champion_se: float | None = None,
    champion_history: list[tuple[float, float | None]] | None = None,
    rows: int | None = None,
    z: float = PROBE_Z,
    extend: bool = False,
) -> GainEstimate:
    """Expected gain (metric points × batches) of retraining now, from probe regret curves.

    ``curves``: one ``regret_curve`` per past run, oldest first (the newest labelled batch
    last); ``champion_age``: batches the champion will have served at the next batch;
    ``champion_regret``: the champion's measured regret on the newest labelled batch (fresh
    probe minus champion, points), ``None`` when that batch was part of its training window.

    Noise-aware (all optional; without them the estimate is the plain, noise-blind one):
    ``rows`` (rows each regret is measured on) stretches the half-life so every estimate
    pools about as many rows as ``halflife`` runs of ``PROBE_ROWS`` do (30-row batches: ~34
    runs); ``champion_history``, the same champion's (regret, standard error) on the earlier
    labelled batches it served, oldest first, is pooled with its newest measurement, so one
    lucky batch no longer buys a retrain. ``curve_se`` (one ``regret_se`` per curve) and
    ``champion_se`` give the pooled regret's sampling standard error: it sets the reported
    interval, and with ``z > 0`` the gain is priced at regret − z × that error (a cautious
    owner's setting). ``extend``: when the champion is older than the curve, cycles up to its
    age are considered, the new model assumed to age as it did (slow drift needs long cycles).
    """
    if not curves:
        return GainEstimate(
            0.0, 0.0, 0.0, "probe", "no probe curve yet (need two labelled batches)"
        )
    if rows:
        halflife = halflife * max(1.0, PROBE_ROWS / rows)
    rho = smooth_curve(curves, halflife, ages)
    age = max(1, min(champion_age, ages))
    expected = rho[age]
    own_mean, own_se = _pooled_champion(
        champion_regret, champion_se, champion_history or [], halflife
    )
    regret = expected if own_mean is None else (1 - blend) * expected + blend * own_mean
    spread = _curve_spread(curves, age, halflife)
    se = None
    if curve_se is not None or own_se is not None:
        curve_part = (1.0 if own_mean is None else 1 - blend) * _smoothed_se(
            curves, curve_se, age, halflife
        )
        own_part = 0.0 if own_mean is None or own_se is None else blend * own_se
        se = math.hypot(curve_part, own_part)
    priced = max(0.0, regret - z * se) if se is not None else regret
    curve = _extend(rho, champion_age, priced) if extend else rho
    points, k = cycle_gain(priced, curve)
    width = spread if se is None else se  # the sampling error when known
    low, _ = cycle_gain(priced - width, curve)
    high, _ = cycle_gain(priced + width, curve)
    own = "n/a" if own_mean is None else f"{own_mean:+.2f}"
    noise = "" if se is None else f" ± {se:.2f} (sampling) → priced at {priced:.2f}"
    basis = (
        f"probe curve over {min(len(curves), int(4 * halflife) + 1)} run(s): a model of age "
        f"{age} loses {expected:.2f} pts (champion measured {own}) → regret {regret:.2f} pts"
        f"{noise}; best cycle {k} batch(es) → gain {points:.2f} pts×batches"
    )
    return GainEstimate(points, low, high, "probe", basis, horizon=k)


def _extend(rho: list[float], champion_age: int, regret: float) -> list[float]:
    """The curve beyond the measured ages: a new model is assumed to age like the champion
    did, reaching its regret at its age (linear from the last measured age)."""
    ages = len(rho) - 1
    horizon = min(champion_age, PROBE_HORIZON)
    if horizon <= ages or regret <= rho[-1]:
        return rho
    step = (regret - rho[-1]) / (horizon - ages)
    return rho + [rho[-1] + step * (a - ages) for a in range(ages + 1, horizon + 1)]


def _ewma(vals: list[tuple[float, float | None]], halflife: float) -> tuple[float, float | None]:
    """Exponentially weighted mean of (value, standard error) pairs (newest last) over the
    last 4 half-lives, and its standard error √Σw²σ² / Σw (``None`` if any σ is unknown)."""
    vals = vals[-int(4 * halflife) - 1 :]
    w = [0.5 ** ((len(vals) - 1 - i) / halflife) for i in range(len(vals))]
    den = sum(w)
    mean = sum(wi * v for wi, (v, _) in zip(w, vals, strict=True)) / den
    if any(e is None for _, e in vals):
        return mean, None
    var = sum((wi * e) ** 2 for wi, (_, e) in zip(w, vals, strict=True) if e is not None)
    return mean, math.sqrt(var) / den


def _pooled_champion(
    regret: float | None,
    se: float | None,
    history: list[tuple[float, float | None]],
    halflife: float,
) -> tuple[float | None, float | None]:
    if regret is None:
        return None, None
    return _ewma([*history, (regret, se)], halflife)


def _smoothed_se(
    curves: list[list[float | None]],
    curve_se: list[list[float | None]] | None,
    age: int,
    halflife: float,
) -> float:
    """Sampling standard error of ``smooth_curve`` at ``age`` (0 without ``curve_se``)."""
    if curve_se is None:
        return 0.0
    n = min(int(4 * halflife) + 1, len(curves), len(curve_se))  # aligned on the newest run
    pairs: list[tuple[float, float | None]] = []
    for row, row_se in zip(curves[len(curves) - n :], curve_se[len(curve_se) - n :], strict=True):
        v = row[age - 1] if len(row) >= age else None
        e = row_se[age - 1] if row_se is not None and len(row_se) >= age else None
        if v is not None and v == v:
            pairs.append((v, e if e is not None and e == e else 0.0))
    return (_ewma(pairs, halflife)[1] or 0.0) if pairs else 0.0


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
