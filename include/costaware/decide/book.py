"""The book: every model a policy could deploy on one stream, fitted once and scored once.

``Book`` draws the windows of step ``t`` as ``batches.data.split_windows`` does, fits the
challenger and the probe of every step through a ``Kit`` and keeps their scores, and answers
what the steps compute at step ``t`` (the gate's verdict, the regret curves, the champion's
regret, the drift verdict, a retrain's paired gain on a later batch). The replay that reads
it is ``costaware.decide.backtest``; ``costaware.app.backtest`` gives the real ``Kit``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from costaware.config import METRIC_SPECS, ModelConfig
from costaware.decide.evaluation import Verdict, judge
from costaware.decide.gain import (
    PROBE_AGES,
    PROBE_HALFLIFE,
    PROBE_ROWS,
    champion_regret,
    regret_curve,
    regret_se,
)
from costaware.decide.performance import _points_rows, metric_points
from costaware.decide.realized import BatchGain
from costaware.errors import ConfigError


class Kit(Protocol):
    """How models are fitted and scored, and the drift verdict (the steps' own functions)."""

    def fit(self, frame: Any, cfg: ModelConfig) -> Any: ...  # the challenger
    def fit_probe(self, frame: Any, cfg: ModelConfig) -> Any: ...
    def scores(self, model: Any, frame: Any) -> np.ndarray: ...
    def encode(self, frame: Any, cfg: ModelConfig) -> np.ndarray: ...
    def drifted(self, model: Any, reference: Any, current: Any, cfg: ModelConfig) -> bool: ...


class Book:
    """Every model a policy could deploy on one stream, fitted once and scored once.

    ``batches``: the data set's batches in time order (features and target), ``usd``: what one
    retrain costs, ``worker_usd_per_s``: what the worker that fits the probes costs."""

    def __init__(
        self,
        cfg: ModelConfig,
        batches: list[Any],
        kit: Kit,
        usd: float,
        worker_usd_per_s: float = 0.0,
        start: int = 0,
        stop: int | None = None,
        arrivals: list[Any] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg, self.batches, self.kit, self.usd = cfg, batches, kit, usd
        self.worker_usd_per_s = worker_usd_per_s
        self.n = len(batches) if stop is None else min(stop + 1, len(batches))
        self.start_at = start
        self.arrivals = arrivals
        self.progress = progress or (lambda _m: None)
        self.d = cfg.data.label_delay_batches
        self.h = cfg.evaluation.holdout_batches
        self.w = cfg.training.window_batches
        self.metric = cfg.metric
        spec = METRIC_SPECS[cfg.metric]
        self.perfect = float(spec.points(1.0 if spec.higher_is_better else 0.0))
        self._y: dict[int, np.ndarray] = {}
        self._models: dict[int, Any] = {}
        self._scores: dict[int, dict[int, np.ndarray]] = {}  # challenger s -> batch -> scores
        self._probe_scores: dict[int, dict[int, np.ndarray]] = {}
        self._judge: dict[tuple[int | None, int], Verdict] = {}
        self._regret: dict[tuple[int, int], tuple[float, float | None]] = {}
        self._drift: dict[tuple[int, int], bool] = {}
        self._paired: dict[tuple[int, int, int], BatchGain | None] = {}
        self.points: np.ndarray | None = None  # P[s, t]: challenger s's points on batch t
        self.probe_seconds: list[float] = []
        self.fit_seconds: list[float] = []
        self._built = False

    # ── windows, as batches.data.split_windows draws them at step t ────────────────────
    def newest(self, t: int) -> int:
        return t - self.d

    def hold(self, t: int) -> list[int]:
        return list(range(max(0, t - self.d - self.h + 1), t - self.d + 1))

    def train(self, t: int) -> list[int]:
        hi = t - self.d - self.h
        return list(range(max(0, hi - self.w + 1), hi + 1)) if hi >= 0 else []

    def train_rows(self, t: int) -> int:
        return sum(len(self.batches[i]) for i in self.train(t))

    def can_train(self, t: int) -> bool:
        return bool(self.train(t)) and self.train_rows(t) >= self.cfg.training.min_train_rows

    def y(self, t: int) -> np.ndarray:
        if t not in self._y:
            self._y[t] = self.kit.encode(self.batches[t], self.cfg)
        return self._y[t]

    def y_hold(self, t: int) -> np.ndarray:
        return np.concatenate([self.y(i) for i in self.hold(t)])

    def _frame(self, idx: list[int]) -> Any:
        import pandas as pd

        if idx and idx == list(range(idx[0], idx[-1] + 1)):  # a run of batches: one slice
            if not hasattr(self, "_all"):
                self._all = pd.concat(self.batches[: self.n], ignore_index=True)
                self._at = np.cumsum([0, *[len(b) for b in self.batches[: self.n]]])
            return self._all.iloc[self._at[idx[0]] : self._at[idx[-1] + 1]]
        return pd.concat([self.batches[i] for i in idx], ignore_index=True)

    # ── models ───────────────────────────────────────────────────────────────────────
    def build(self) -> Book:
        """Fit the challenger and the probe of every step from the warm-up on, score them."""
        if self._built:
            return self
        first = next((t for t in range(self.n) if self.can_train(t)), None)
        if first is None:
            raise ConfigError(
                f"{self.cfg.name}: no step up to batch {self.n - 1} has "
                f"{self.cfg.training.min_train_rows} labelled training rows "
                f"(training.min_train_rows) before its held-out window; replay more batches"
            )
        self.first = max(first, self.start_at)
        # Probes from early enough that the estimator's smoothing window is full at the start,
        # as for a DAG that had been running before (``warm_start`` steps back).
        rows = max(1, sum(len(self.batches[i]) for i in self.hold(self.first)))
        halflife = PROBE_HALFLIFE * max(1.0, PROBE_ROWS / rows)
        self.probe_from = max(
            next(t for t in range(self.n) if self.train(t)),
            self.first - int(4 * halflife) - 1 - PROBE_AGES,
        )
        last_shown = time.perf_counter()
        for s in range(self.probe_from, self.n):
            if self.train(s):
                self._fit_probe(s)
            if s >= self.first and self.can_train(s):
                self._fit_challenger(s)
            if time.perf_counter() - last_shown > 20:
                self.progress(f"{self.cfg.name}: fitted models up to batch {s} of {self.n - 1}")
                last_shown = time.perf_counter()
        self._points_matrix()
        self._built = True
        return self

    def _fit_probe(self, s: int) -> None:
        t0 = time.perf_counter()
        probe = self.kit.fit_probe(self._frame(self.train(s)), self.cfg)
        self.probe_seconds.append(time.perf_counter() - t0)
        # Scored on the held-out windows of the steps that will read it (ages 0..PROBE_AGES).
        idx = sorted({i for a in range(PROBE_AGES + 1) for i in self.hold(s + a) if i < self.n})
        s_all = np.asarray(self.kit.scores(probe, self._frame(idx)))
        self._probe_scores[s] = _split(s_all, [len(self.batches[i]) for i in idx], idx)

    def _fit_challenger(self, s: int) -> None:
        t0 = time.perf_counter()
        model = self.kit.fit(self._frame(self.train(s)), self.cfg)
        self.fit_seconds.append(time.perf_counter() - t0)
        self._models[s] = model
        idx = list(range(self.train(s)[0], self.n))
        s_all = np.asarray(self.kit.scores(model, self._frame(idx)), dtype=np.float32)
        self._scores[s] = _split(s_all, [len(self.batches[i]) for i in idx], idx)

    def scores(self, s: int, batches: list[int]) -> np.ndarray:
        return np.concatenate([self._scores[s][i] for i in batches]).astype(float)

    def _points_matrix(self) -> None:
        """P[s, t] for t ≥ s: the points challenger s scores on batch t (NaN elsewhere)."""
        p = np.full((self.n, self.n), np.nan)
        for s in self._scores:
            ts = list(range(s, self.n))
            sizes = {len(self.batches[t]) for t in ts}
            if len(sizes) == 1:  # equal batches (replay's split): one vectorised call
                ys = np.stack([self.y(t) for t in ts]).astype(float)
                ss = np.stack([self._scores[s][t] for t in ts]).astype(float)
                p[s, s:] = _points_rows(ys, ss, self.metric)
            else:
                for t in ts:
                    p[s, t] = metric_points(self.y(t), self._scores[s][t], self.metric)
        self.points = p
        # A batch on which the metric is undefined for some model (ROC AUC of a batch with
        # one class) counts for no policy.
        self.valid = np.array(
            [
                bool(np.isfinite(p[[s for s in self._scores if s <= t], t]).all())
                for t in range(self.n)
            ]
        )

    # ── what the steps compute at step t ─────────────────────────────────────────────
    def verdict(self, champion: int | None, t: int) -> Verdict:
        """``evaluation.judge`` of the challenger trained at t against the champion born at
        ``champion`` on step t's held-out window (``steps.evaluate``)."""
        key = (champion, t)
        if key not in self._judge:
            hold = self.hold(t)
            champ = None if champion is None else self.scores(champion, hold)
            self._judge[key] = judge(
                self.y_hold(t), champ, self.scores(t, hold), self.metric, self.cfg.evaluation
            )
        return self._judge[key]

    def probe_hold(self, s: int, t: int) -> np.ndarray | None:
        got = self._probe_scores.get(s)
        if got is None or any(i not in got for i in self.hold(t)):
            return None
        return np.concatenate([got[i] for i in self.hold(t)]).astype(float)

    def curves(self) -> tuple[dict[int, list[float | None]], dict[int, list[float | None]]]:
        """Each step's regret curve and its standard errors (``measure_performance``)."""
        if not hasattr(self, "_curves"):
            curves, ses = {}, {}
            seed = self.cfg.evaluation.seed
            for t in range(self.probe_from, self.n):
                probe = self.probe_hold(t, t)
                if probe is None:
                    continue
                y = self.y_hold(t)
                older = [self.probe_hold(t - a, t) for a in range(1, PROBE_AGES + 1)]
                curves[t] = regret_curve(y, probe, older, self.metric)
                ses[t] = regret_se(y, probe, older, self.metric, seed=seed)
            self._curves, self._ses = curves, ses
        return self._curves, self._ses

    def champion_regret(self, champion: int, t: int) -> tuple[float, float | None]:
        """Fresh probe minus champion on step t's held-out window, and its standard error."""
        key = (champion, t)
        if key not in self._regret:
            probe = self.probe_hold(t, t)
            assert probe is not None
            self._regret[key] = champion_regret(
                self.y_hold(t),
                probe,
                self.scores(champion, self.hold(t)),
                self.metric,
                seed=self.cfg.evaluation.seed,
            )
        return self._regret[key]

    def drifted(self, champion: int, t: int) -> bool:
        """The drift step's verdict on batch t against the champion's training data."""
        key = (champion, t)
        if key not in self._drift:
            ref = self._frame(self.train(champion))
            self._drift[key] = self.kit.drifted(
                self._models[champion], ref, self.batches[t], self.cfg
            )
        return self._drift[key]

    def point(self, s: int, b: int) -> float:
        """Model s's points on batch b (b may precede s's own step: a later-labelled batch)."""
        assert self.points is not None
        if b >= s:
            return float(self.points[s, b])
        return float(metric_points(self.y(b), self.scores(s, [b]), self.metric))

    def paired_gain(self, new: int, old: int, b: int) -> BatchGain | None:
        """Model ``new`` minus model ``old`` on batch b, with the pair's sampling error, as
        ``steps.realized`` records it (None: the metric is undefined there, no evidence)."""
        key = (new, old, b)
        if key not in self._paired:
            new_p, old_p = self.point(new, b), self.point(old, b)
            got = None
            if math.isfinite(new_p) and math.isfinite(old_p):
                se = regret_se(
                    self.y(b),
                    self.scores(new, [b]),
                    [self.scores(old, [b])],
                    self.metric,
                    seed=self.cfg.evaluation.seed,
                )[0]
                got = BatchGain(str(b), new_p - old_p, se)
            self._paired[key] = got
        return self._paired[key]

    def hours_between(self, a: int, b: int) -> float | None:
        if self.arrivals is None:
            return None
        return (self.arrivals[b] - self.arrivals[a]).total_seconds() / 3600

    def month(self, t: int) -> Any:
        return None if self.arrivals is None else (self.arrivals[t].year, self.arrivals[t].month)


def _split(values: np.ndarray, sizes: list[int], idx: list[int]) -> dict[int, np.ndarray]:
    out, at = {}, 0
    for i, size in zip(idx, sizes, strict=True):
        out[i] = values[at : at + size]
        at += size
    return out
