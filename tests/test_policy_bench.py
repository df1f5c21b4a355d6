"""bench/policy_sim.py: the oracle is optimal and the policies replay what they decide."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from policy_sim import Matrix, never, oracle, periodic, simulate  # noqa: E402


def _stream(n: int, rows: int = 10):
    cfg = SimpleNamespace(
        name="toy",
        data=SimpleNamespace(batch_rows=rows, label_delay_batches=1),
        training=SimpleNamespace(min_train_rows=rows, window_batches=2),
    )
    from policy_sim import Stream

    return Stream(cfg, [np.zeros((rows, 1))] * n, [np.zeros(rows)] * n, [])


def _matrix(n: int, seed: int) -> Matrix:
    rng = np.random.default_rng(seed)
    err = np.full((n, n), np.nan)
    for s in range(n):
        for t in range(s, n):
            err[s, t] = rng.integers(0, 4) + (t - s)  # models go stale
    return Matrix(err, 0.0, n)


def _brute_force(stream, m, kappa):
    s0, n = stream.first_step, stream.n
    best = np.inf
    for plan in itertools.product([False, True], repeat=n - s0 - 1):
        born, cost = s0, m.err[s0, s0]
        for t, retrain in zip(range(s0 + 1, n), plan, strict=True):
            if retrain:
                born, cost = t, cost + kappa * stream.batch_rows
            cost += m.err[born, t]
        best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kappa", [0.05, 0.3])
def test_oracle_matches_brute_force(seed, kappa):
    stream, m = _stream(9), _matrix(9, seed)
    o = oracle(stream, m, kappa)
    assert o.total(kappa, stream.batch_rows) == pytest.approx(_brute_force(stream, m, kappa))


def test_every_policy_costs_at_least_the_oracle():
    stream, m = _stream(30), _matrix(30, 7)
    for kappa in (0.01, 0.2, 1.0):
        floor = oracle(stream, m, kappa).total(kappa, stream.batch_rows)
        for pol in [never(), *[periodic(k) for k in (1, 2, 5)]]:
            out = simulate(stream, m, "p", pol)
            assert out.total(kappa, stream.batch_rows) >= floor - 1e-9


def test_periodic_retrains_every_k_steps():
    stream, m = _stream(21), _matrix(21, 0)
    steps = stream.n - stream.first_step - 1
    assert simulate(stream, m, "p", periodic(1)).retrains == steps
    assert simulate(stream, m, "p", periodic(4)).retrains == steps // 4
    assert simulate(stream, m, "n", never()).retrains == 0
