"""The simulation behind ``bench/policy.py``: one error matrix per (data set, seed), policies
replayed over it, and the hindsight oracle by dynamic programming.

Step ``t`` is the arrival of batch ``t``. Before predicting it, a policy may retrain; a model
"born" at step ``s`` is trained on the newest ``window_batches`` labelled batches, i.e. batches
``[s - d - W + 1, s - d]`` with ``d = label_delay_batches``. ``E[s, t]`` is the number of
misclassifications of the model born at ``s`` on batch ``t`` (for every ``s ≤ t``), so every
policy, the oracle and the probe are lookups into the same matrix: a probe at step ``t`` is the
model born at ``t - d`` (trained without the newest labelled batch) scored on that batch,
which is exactly what ``costaware.decide.gain.probe_gain`` gets from the pipeline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from costaware.app.replay import load_source, split_batches
from costaware.config import CostPolicy, ModelConfig


@dataclass
class Stream:
    """A model config's data set cut into batches: features, 0/1 labels, row counts."""

    cfg: ModelConfig
    x: list[np.ndarray]
    y: list[np.ndarray]
    frames: list[pd.DataFrame]  # features only, for the drift policy

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def batch_rows(self) -> int:
        return self.cfg.data.batch_rows

    @property
    def delay(self) -> int:
        return max(1, self.cfg.data.label_delay_batches)

    @property
    def first_step(self) -> int:
        """First step with enough labelled rows to train: the initial model (not counted)."""
        need = math.ceil(self.cfg.training.min_train_rows / self.batch_rows)
        return self.delay + min(need, self.cfg.training.window_batches) - 1

    def window(self, s: int) -> tuple[int, int]:
        """Batches [lo, hi] that train the model born at step s."""
        hi = s - self.delay
        return max(0, hi - self.cfg.training.window_batches + 1), hi


def load_stream(cfg: ModelConfig, root: Path, max_batches: int | None = None) -> Stream:
    frame = load_source(cfg, root)
    feats = cfg.feature_names
    xs, ys, frames = [], [], []
    for _, part in split_batches(cfg, frame):
        xs.append(part[feats].to_numpy(dtype=np.float32))
        ys.append((part[cfg.target.name] == cfg.target.positive).to_numpy(dtype=np.int8))
        frames.append(part[feats].reset_index(drop=True))
        if max_batches and len(xs) >= max_batches:
            break
    return Stream(cfg, xs, ys, frames)


def fit_model(stream: Stream, s: int, seed: int, rounds: int) -> object:
    """``costaware.decide.gain.fit_probe``: the config's own XGBoost parameters, fewer rounds, one
    thread (every model of the bench is a probe-sized model, retrains included)."""
    from costaware.decide.gain import fit_probe

    lo, hi = stream.window(s)
    x = np.concatenate(stream.x[lo : hi + 1])
    y = np.concatenate(stream.y[lo : hi + 1])
    return fit_probe(x, y, dict(stream.cfg.training.params), rounds, seed)


@dataclass
class Matrix:
    """E[s, t]: misclassifications of the model born at step s on batch t (NaN for t < s)."""

    err: np.ndarray
    fit_seconds: float
    fits: int
    scores: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (s, t) -> scores
    # Per-row mistakes of the model born at s on batches wrong_from[s]..n-1 (concatenated),
    # for paired standard errors of any two models on one batch.
    wrong: dict[int, np.ndarray] = field(default_factory=dict)
    wrong_from: dict[int, int] = field(default_factory=dict)
    bounds: np.ndarray | None = None

    def mistakes(self, s: int, t: int) -> np.ndarray:
        """0/1 mistakes, row by row, of the model born at step s on batch t."""
        assert self.bounds is not None
        off = self.bounds[self.wrong_from[s]]
        return self.wrong[s][self.bounds[t] - off : self.bounds[t + 1] - off]


def error_matrix(stream: Stream, seed: int, rounds: int, keep_ages: int = 8) -> Matrix:
    import xgboost as xgb

    n, d, s0 = stream.n, stream.delay, stream.first_step
    err = np.full((n, n), np.nan)
    x_all = np.concatenate(stream.x)
    y_all = np.concatenate(stream.y)
    bounds = np.cumsum([0, *[len(b) for b in stream.x]])
    fit_s, fits = 0.0, 0
    scores: dict[tuple[int, int], np.ndarray] = {}
    wrong_rows: dict[int, np.ndarray] = {}
    wrong_from: dict[int, int] = {}
    for s in range(s0, n):
        t0 = time.perf_counter()
        booster = fit_model(stream, s, seed, rounds)
        fit_s += time.perf_counter() - t0
        fits += 1
        # Score batches s - d .. n - 1 in one call (s - d is the probe's holdout batch).
        start = max(0, s - d)
        p = booster.predict(xgb.DMatrix(x_all[bounds[start] :]))
        wrong = (p >= 0.5).astype(np.int8) != y_all[bounds[start] :]
        wrong_rows[s], wrong_from[s] = wrong.astype(np.int8), start
        for t in range(start, n):
            a, b = bounds[t] - bounds[start], bounds[t + 1] - bounds[start]
            err[s, t] = wrong[a:b].sum()
            if t - s <= keep_ages:  # what the probe curve reads (models up to keep_ages old)
                scores[(s, t)] = p[a:b]
    return Matrix(err, fit_s / max(1, fits), fits, scores, wrong_rows, wrong_from, bounds)


# ── policies ────────────────────────────────────────────────────────────────────────────
# A policy is a function (step t, state) -> bool (retrain now?). State carries the deployed
# model's birth step and the history a real system would have at step t (labels ≤ t - d).


@dataclass
class State:
    born: int  # step the deployed model was trained at
    retrains: list[int] = field(default_factory=list)
    memo: dict = field(default_factory=dict)


Policy = Callable[[int, State], bool]


@dataclass
class Outcome:
    policy: str
    errors: float
    retrains: int
    steps: int
    extra_cost: float = 0.0  # e.g. probe compute, in misclassification units

    def total(self, kappa: float, batch_rows: int) -> float:
        return self.errors + kappa * batch_rows * self.retrains + self.extra_cost


def simulate(stream: Stream, m: Matrix, name: str, policy: Policy) -> Outcome:
    s0 = stream.first_step
    state = State(born=s0)
    errors = 0.0
    for t in range(s0, stream.n):
        if t > s0 and policy(t, state):
            state.born = t
            state.retrains.append(t)
        errors += m.err[state.born, t]
    return Outcome(name, errors, len(state.retrains), stream.n - s0, state.memo.get("extra", 0.0))


def periodic(k: int) -> Policy:
    return lambda t, st: t - st.born >= k


def never() -> Policy:
    return lambda t, st: False


def error_jump(stream: Stream, m: Matrix, jump_points: float = 5.0) -> Policy:
    """Retrain when the champion's error on the newest labelled batch is ``jump_points`` above
    its error on its first labelled batch."""
    d, b = stream.delay, stream.batch_rows

    def rule(t: int, st: State) -> bool:
        newest = t - d
        if newest <= st.born:
            return False
        ref = m.err[st.born, st.born] / b
        return 100 * (m.err[st.born, newest] / b - ref) >= jump_points

    return rule


def cara(stream: Stream, m: Matrix, kappa: float) -> Policy:
    """Cara-style cumulative staleness (Mahadevan & Mathioudakis, 2024): retrain when the
    champion's accumulated excess error over a freshly trained model reaches the cost of a
    retrain (κ × batch rows misclassifications). Without a probe, a fresh model's error is
    estimated as the median error past models had on their first labelled batch."""
    d, s0 = stream.delay, stream.first_step

    def rule(t: int, st: State) -> bool:
        newest = t - d
        if newest <= st.born:
            return False
        fresh = np.median([m.err[s, s] for s in range(s0, newest + 1)])
        excess = np.sum(m.err[st.born, st.born : newest + 1] - fresh)
        return excess >= kappa * stream.batch_rows

    return rule


def oracle(stream: Stream, m: Matrix, kappa: float) -> Outcome:
    """Hindsight optimum over keep/retrain at every step, by dynamic programming."""
    s0, n, c = stream.first_step, stream.n, kappa * stream.batch_rows
    best = {s0: m.err[s0, s0]}
    back: list[dict[int, tuple[int, bool]]] = [{}] * n
    for t in range(s0 + 1, n):
        prev_min_s = min(best, key=best.get)
        new = {s: v + m.err[s, t] for s, v in best.items()}
        new[t] = best[prev_min_s] + c + m.err[t, t]
        back[t] = {s: (s, False) for s in best} | {t: (prev_min_s, True)}
        best = new
    s = min(best, key=best.get)
    total = best[s]
    retrains = 0
    for t in range(n - 1, s0, -1):
        s, did = back[t][s]
        retrains += did
    errors = total - c * retrains
    return Outcome("oracle (hindsight)", errors, retrains, n - s0)


def bench_policy(kappa: float) -> CostPolicy:
    """The checkpoint's thresholds for the bench: no budget, approval or cooldown limits (the
    bench prices every retrain instead); the $-per-point limit comes from κ."""
    return CostPolicy(
        max_usd_per_metric_point=1.0,
        auto_approve_usd=1e12,
        monthly_budget_usd=1e12,
        cooldown_hours=0,
        min_expected_gain_points=0.0,
    )
