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

No I/O and no model library here: the windows, the models and their scores are a
``decide.book.Book``, whose fitting, scoring and drift test come from a ``Kit``
(``costaware.app.backtest`` gives the real one: ``models.algorithms`` and ``batches.drift``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from costaware.config import ModelConfig
from costaware.decide.book import Book
from costaware.decide.gain import estimate_gain_probe
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
