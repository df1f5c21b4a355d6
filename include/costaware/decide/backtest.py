"""Backtest: replay a model's batches under a retraining policy, through the DAG's own decisions.

One engine for ``costaware backtest`` and ``bench/policy.py``. At step ``t`` batch ``t``
arrives and the labels of batch ``t - d`` (``data.label_delay_batches``); as in the DAG
(``batches.data.split_windows``) the newest ``evaluation.holdout_batches`` labelled batches
are held out and the ``training.window_batches`` before them train both the probe
(``measure_performance``) and the challenger (``train_challenger``). Then, for every policy:

* **costaware** — ``gain.regret_curve`` / ``regret_se`` of the probe against the probes of
  earlier steps, the champion's regret and its history, ``gain.estimate_gain_probe`` and
  ``policy.decide`` with the model's ``cost_policy`` (the $-per-point·batch limit may be
  overridden), exactly the calls of ``steps.measure`` and ``steps.checkpoint``, the gain
  corrected by the realized return of its own past retrains as ``steps.realized`` measures
  it (see below);
* **periodic:K** — a retrain every K batches; **drift** — a retrain when the drift step's
  verdict on the batch against the champion's training data is "dataset drift";
  **never** — the first model serves throughout.

Every retrain goes through the same promotion gate, ``evaluation.judge`` on the held-out
window (what ``steps.evaluate`` and ``steps.promote`` do): a rejected challenger costs the
retrain and changes nothing. The champion then serves batch ``t``; what it loses there is
its shortfall from a perfect score in the configured metric's points (100 − ROC AUC × 100,
RMSE in target units, 100 × log loss…), whatever the kind of model.

The realized return (costaware only; the other policies do not decide on gain): every
retrain through the gate is a ``decide.realized.Outcome`` (the estimator's uncorrected gain
when it was decided, the retrain's $, the verdict; a rejected one realized exactly 0). While a
promoted challenger is champion, each step records its gain over the model it replaced on
every batch labelled since, later than its own held-out window (the two models' points on
the batch's rows, and ``gain.regret_se`` of the pair); once it is replaced its record stops
growing. ``decide.realized.summarize`` and ``checkpoint_gain`` then scale the next expected
gain, as ``steps.measure`` and ``steps.checkpoint`` do from the ledger.

The hindsight oracle deploys the same challengers (the model a retrain at step ``s`` trains is
the same whatever the policy) at the steps that minimise limit × shortfall + retrain $,
by dynamic programming, without the gate; every gated policy's path is one it could have
chosen, so it bounds every policy from below.

No I/O and no model library here: fitting, scoring and the drift test come from a ``Kit``
(``costaware.app.backtest`` gives the real one: ``models.algorithms`` and ``batches.drift``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from costaware.config import METRIC_SPECS, ModelConfig
from costaware.decide.evaluation import Verdict, judge
from costaware.decide.gain import (
    PROBE_AGES,
    PROBE_HALFLIFE,
    PROBE_ROWS,
    champion_regret,
    estimate_gain_probe,
    regret_curve,
    regret_se,
)
from costaware.decide.performance import _points_rows, metric_points
from costaware.decide.policy import CheckpointInputs, decide
from costaware.decide.realized import (
    BatchGain,
    Outcome,
    Realized,
    checkpoint_gain,
    gated,
    summarize,
)
from costaware.errors import ConfigError

PolicyKind = Literal["costaware", "periodic", "drift", "never"]
KINDS: tuple[str, ...] = ("costaware", "periodic:K", "drift", "never")


class Kit(Protocol):
    """How models are fitted and scored, and the drift verdict (the steps' own functions)."""

    def fit(self, frame: Any, cfg: ModelConfig) -> Any: ...  # the challenger
    def fit_probe(self, frame: Any, cfg: ModelConfig) -> Any: ...
    def scores(self, model: Any, frame: Any) -> np.ndarray: ...
    def encode(self, frame: Any, cfg: ModelConfig) -> np.ndarray: ...
    def drifted(self, model: Any, reference: Any, current: Any, cfg: ModelConfig) -> bool: ...


@dataclass(frozen=True)
class PolicySpec:
    kind: PolicyKind
    k: int = 0

    @property
    def name(self) -> str:
        return f"periodic:{self.k}" if self.kind == "periodic" else self.kind

    @classmethod
    def parse(cls, text: str) -> PolicySpec:
        """``costaware``, ``periodic:K`` (K ≥ 1 batches), ``drift`` or ``never``."""
        raw = text.strip().lower()
        if raw in ("costaware", "drift", "never"):
            return cls(raw)  # type: ignore[arg-type]
        if raw.startswith("periodic:"):
            k = raw.split(":", 1)[1]
            if k.isdigit() and int(k) >= 1:
                return cls("periodic", int(k))
            raise ConfigError(
                f"--policy {text!r}: K in periodic:K must be a whole number of batches ≥ 1, "
                "e.g. periodic:4"
            )
        raise ConfigError(f"--policy {text!r} is not a policy; allowed: {list(KINDS)}")


@dataclass(frozen=True)
class Event:
    step: int
    decision: str  # retrain | approve | skip (costaware's words; other policies: retrain)
    verdict: str  # promote | reject | "" (no retrain)
    reason: str


@dataclass
class Result:
    """What a policy spent and lost from ``start`` (its first champion) to ``stop``."""

    policy: str
    limit: float  # $ per metric point × batch
    steps: int
    retrains: int
    promotions: int
    rejections: int
    approvals: int
    retrain_usd: float
    probe_usd: float
    shortfall: float  # metric points × batches below a perfect score, summed over batches
    mean_points: float
    events: list[Event] = field(default_factory=list)
    served: list[int] = field(default_factory=list)  # birth step of the model serving each step
    # costaware only: the realized return of its retrains at the end (``Realized.as_dict()``),
    # the outcomes it rests on (run_id: the step that retrained) and the shrunk ratio each
    # step's checkpoint read (step → ratio).
    realized: dict[str, Any] | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    ratios: dict[int, float] = field(default_factory=dict)

    @property
    def spend(self) -> float:
        return self.retrain_usd + self.probe_usd

    def total(self, limit: float | None = None) -> float:
        """Total cost in $: the shortfall priced at ``limit`` $/point·batch, plus spend."""
        return (self.limit if limit is None else limit) * self.shortfall + self.spend


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


def configured_limit(cfg: ModelConfig) -> float:
    """The model's $ per metric point × batch (the key's new name or, before it, the old)."""
    policy = cfg.cost_policy
    return float(
        getattr(policy, "max_usd_per_point_batch", None) or policy.max_usd_per_metric_point
    )


def first_champion(book: Book) -> tuple[int, list[Event]]:
    """The DAG's first model: the first step that can train, retried until a model passes
    the gate against chance. The same for every policy, so it is not counted."""
    book.build()
    events = []
    for t in range(book.first, book.n):
        if not book.can_train(t):
            continue
        v = book.verdict(None, t)
        events.append(Event(t, "retrain", v.verdict, "no champion yet: " + v.reason))
        if v.verdict == "promote":
            return t, events
    raise ConfigError(
        f"{book.cfg.name}: no first model passed the promotion gate between batch "
        f"{book.first} and {book.n - 1}; nothing to backtest"
    )


class _Returns:
    """The realized return of one policy's retrains, kept as ``steps.realized`` keeps it in
    the ledger (outcomes by retrain, batch gains by promotion), on the book's scores."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self._gated: list[tuple[int, dict[str, Any], bool]] = []  # (step, gain, promoted)
        self._batches: list[list[BatchGain]] = []
        self._replaced: dict[int, tuple[int, int]] = {}  # champion → (its outcome, replaced)
        self._seen: dict[int, int] = {}  # champion → newest batch looked at

    def measure(self, champion: int, t: int) -> Realized:
        """``track_realized`` at step t: the champion's gain on each batch labelled since the
        last step (later than its promotion's held-out window), then the running summary."""
        got = self._replaced.get(champion)
        if got is not None:
            i, replaced = got
            lo = self._seen.get(champion, max(self.book.hold(champion)))
            for b in range(lo + 1, self.book.newest(t) + 1):
                gain = self.book.paired_gain(champion, replaced, b)
                if gain is not None:
                    self._batches[i].append(gain)
            self._seen[champion] = max(lo, self.book.newest(t))
        return self.summary()

    def gate(self, t: int, champion: int, gain: dict[str, Any], verdict: str) -> None:
        """A retrain at step t went through the gate against ``champion``."""
        self._gated.append((t, gain, verdict == "promote"))
        self._batches.append([])
        if verdict == "promote":
            self._replaced[t] = (len(self._gated) - 1, champion)

    def outcomes(self) -> list[Outcome]:
        return [
            gated(str(t), gain, self.book.usd, promoted, tuple(batches))
            for (t, gain, promoted), batches in zip(self._gated, self._batches, strict=True)
        ]

    def summary(self) -> Realized:
        return summarize(self.outcomes())


def run(book: Book, policy: PolicySpec, limit: float | None = None, correct: bool = True) -> Result:
    """Replay ``policy`` from the first champion to the last batch of ``book``. ``correct``:
    costaware's gain is corrected by its realized return, as in the DAG (False: the raw
    estimate decides; the realized figures are still measured)."""
    book.build()
    limit = configured_limit(book.cfg) if limit is None else limit
    champion, events = first_champion(book)
    start = champion
    curves, ses = book.curves() if policy.kind == "costaware" else ({}, {})
    curve_steps = sorted(curves)
    history: dict[int, list[tuple[float, float | None]]] = {}
    retrains = promotions = rejections = approvals = 0
    last_attempt = start
    spent: dict[Any, float] = {}
    probe_each = (
        float(np.mean(book.probe_seconds)) * book.worker_usd_per_s if book.probe_seconds else 0.0
    )
    probe_usd = 0.0
    returns = _Returns(book) if policy.kind == "costaware" else None
    ratios: dict[int, float] = {}
    gain: dict[str, Any] = {}
    assert book.points is not None
    shortfall = book.perfect - book.points[champion, start] if book.valid[start] else 0.0
    pts = [book.points[champion, start]] if book.valid[start] else []
    served = [champion]
    for t in range(start + 1, book.n):
        want, decision, reason = False, "retrain", ""
        if policy.kind == "periodic":
            want = t - last_attempt >= policy.k
        elif policy.kind == "drift":
            want = book.drifted(champion, t)
        elif policy.kind == "costaware":
            probe_usd += probe_each
            assert returns is not None
            realized = returns.measure(champion, t)
            ratios[t] = realized.ratio
            decision, reason, gain = _checkpoint(
                book,
                t,
                champion,
                curves,
                ses,
                curve_steps,
                history,
                spent,
                last_attempt,
                limit,
                realized.as_dict() if correct else None,
            )
            want = decision in ("retrain", "approve")
            approvals += decision == "approve"
        if want and book.can_train(t):
            retrains += 1
            last_attempt = t
            month = book.month(t)
            spent[month] = spent.get(month, 0.0) + book.usd
            v = book.verdict(champion, t)
            if returns is not None:
                returns.gate(t, champion, gain, v.verdict)
            events.append(
                Event(t, decision, v.verdict, v.reason if not reason else f"{reason} → {v.reason}")
            )
            if v.verdict == "promote":
                champion = t
                promotions += 1
            else:
                rejections += 1
        served.append(champion)
        if book.valid[t]:
            shortfall += book.perfect - book.points[champion, t]
            pts.append(book.points[champion, t])
    return Result(
        policy=policy.name,
        limit=limit,
        steps=book.n - start,
        retrains=retrains,
        promotions=promotions,
        rejections=rejections,
        approvals=approvals,
        retrain_usd=retrains * book.usd,
        probe_usd=probe_usd,
        shortfall=float(shortfall),
        mean_points=float(np.mean(pts)) if pts else math.nan,
        events=events,
        served=served,
        realized=None if returns is None else returns.summary().as_dict(),
        outcomes=[] if returns is None else returns.outcomes(),
        ratios=ratios,
    )


def _checkpoint(
    book: Book,
    t: int,
    champion: int,
    curves: dict[int, list[float | None]],
    ses: dict[int, list[float | None]],
    curve_steps: list[int],
    history: dict[int, list[tuple[float, float | None]]],
    spent: dict[Any, float],
    last_attempt: int,
    limit: float,
    realized: dict[str, Any] | None,
) -> tuple[str, str, dict[str, Any]]:
    """``measure_performance`` + ``cost_checkpoint`` at step t: the decision, its reason and
    the estimator's uncorrected gain (``GainEstimate.as_dict()``, what the ledger keeps);
    ``realized``: the running ``Realized.as_dict()`` that corrects it (None: no correction)."""
    cfg = book.cfg
    if t not in curves:
        gain = {"points": 0.0, "low": 0.0, "high": 0.0, "basis": "no probe"}
    else:
        upto = [s for s in curve_steps if s <= t]
        regret, se = book.champion_regret(champion, t)
        past = history.setdefault(champion, [])
        estimate = estimate_gain_probe(
            [curves[s] for s in upto],
            t - champion,
            regret,
            curve_se=[ses[s] for s in upto],
            champion_se=se,
            champion_history=list(past),
            rows=len(book.y_hold(t)),
            extend=True,
        )
        past.append((regret, se))
        gain = estimate.as_dict()
    inputs = CheckpointInputs(
        model=cfg.name,
        has_champion=True,
        labelled_rows=book.train_rows(t),
        min_train_rows=cfg.training.min_train_rows,
        # The step's JSON, as ``cost_checkpoint`` reads it: the gain × the realized ratio.
        **checkpoint_gain(gain, realized),
        gain_basis=str(gain["basis"]),
        cost_usd=book.usd,
        cost_quality="static",
        cost_source="backtest",
        spent_this_month_usd=spent.get(book.month(t), 0.0),
        hours_since_last_retrain=book.hours_between(last_attempt, t),
        metric=cfg.metric,
    )
    d = decide(inputs, cfg.cost_policy, limit)
    return d.action, d.reason, gain


def oracle(book: Book, limit: float | None = None) -> Result:
    """Hindsight optimum over keep / deploy the step's challenger, by dynamic programming."""
    book.build()
    limit = configured_limit(book.cfg) if limit is None else limit
    start, _ = first_champion(book)
    assert book.points is not None
    loss = np.where(book.valid[None, :], book.perfect - book.points, 0.0) * limit
    best = {start: loss[start, start]}
    back: list[dict[int, tuple[int, bool]]] = [{} for _ in range(book.n)]
    for t in range(start + 1, book.n):
        new = {s: v + loss[s, t] for s, v in best.items()}
        back[t] = {s: (s, False) for s in best}
        if book.can_train(t):
            prev = min(best, key=lambda s: best[s])
            new[t] = best[prev] + book.usd + loss[t, t]
            back[t][t] = (prev, True)
        best = new
    s = min(best, key=lambda k: best[k])
    path = [s]
    retrains = 0
    for t in range(book.n - 1, start, -1):
        s, did = back[t][s]
        retrains += did
        path.append(s)
    served = path[::-1]  # champion at steps start..n-1
    valid = [t for t in range(start, book.n) if book.valid[t]]
    pts = [book.points[served[t - start], t] for t in valid]
    return Result(
        policy="oracle (hindsight)",
        limit=limit,
        steps=book.n - start,
        retrains=retrains,
        promotions=retrains,
        rejections=0,
        approvals=0,
        retrain_usd=retrains * book.usd,
        probe_usd=0.0,
        shortfall=float(sum(book.perfect - p for p in pts)),
        mean_points=float(np.mean(pts)) if pts else math.nan,
        served=served,
    )
