"""``costaware backtest MODEL``: what a policy would have spent and lost on the model's data.

The glue around the engine (``costaware.decide.backtest``): the model's data file cut into
batches as ``costaware replay`` cuts it, the real fitting and scoring
(``models.algorithms``: the probe of ``measure_performance``, the challenger of
``train_challenger``), the drift step's verdict (``batches.drift``), and a retrain's price
from the model's training settings and the static price table (``costs.prices``) — the prior
the cost step uses when the ledger has no history. ``bench/policy.py`` builds its books here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from costaware.batches.data import TIME_COLUMN
from costaware.config import ModelConfig
from costaware.costs.base import Capacity
from costaware.decide.backtest import PolicySpec, Result, configured_limit, oracle, run
from costaware.decide.book import Book
from costaware.errors import ConfigError


class RealKit:
    """The steps' own fitting, scoring and drift test."""

    def fit(self, frame: Any, cfg: ModelConfig) -> Any:
        from costaware.models.algorithms import fit

        # train_challenger's job: chunks of chunk_rounds, chunk i seeded evaluation.seed + i.
        return fit(frame, cfg, seed=cfg.evaluation.seed)

    def fit_probe(self, frame: Any, cfg: ModelConfig) -> Any:
        from costaware.models.algorithms import fit_probe

        return fit_probe(frame, cfg)  # as measure_performance calls it

    def scores(self, model: Any, frame: Any) -> np.ndarray:
        return np.asarray(model.scores(frame))

    def encode(self, frame: Any, cfg: ModelConfig) -> np.ndarray:
        from costaware.models.algorithms import encode_target

        return encode_target(frame[cfg.target.name], cfg)

    def drifted(self, model: Any, reference: Any, current: Any, cfg: ModelConfig) -> bool:
        from costaware.batches.drift import SCORE_COLUMN, measure_drift
        from costaware.models.scoring import score

        feats = cfg.feature_names
        ref, cur = reference[feats].copy(), current[feats].copy()
        ref[SCORE_COLUMN] = score(model, reference, feats)
        cur[SCORE_COLUMN] = score(model, current, feats)
        # The fast path reproduces Evidently's verdicts for PSI, Wasserstein and
        # Jensen-Shannon (bench/README.md, drift) and falls back to Evidently for the rest.
        return bool(measure_drift(ref, cur, cfg, engine="fast").dataset_drift)


def retrain_price(cfg: ModelConfig) -> tuple[float, float]:
    """(a retrain's $, the worker's on-demand $ per second): expected runtime + billing
    overhead at the static price of the model's capacity, as the cost step's prior."""
    from costaware.costs.prices import StaticPriceSource

    t = cfg.training
    prices = StaticPriceSource()
    cap: Capacity = "spot" if t.spot.enabled else "on_demand"
    hourly = prices.price(t.instance_type, t.region, cap).usd_per_hour
    on_demand = prices.price(t.instance_type, t.region, "on_demand").usd_per_hour
    minutes = t.expected_runtime_minutes + t.billing_overhead_minutes
    return minutes / 60 * hourly, on_demand / 3600


@dataclass
class Stream:
    cfg: ModelConfig
    names: list[str]
    batches: list[Any]
    arrivals: list[dt.datetime]


def load_stream(cfg: ModelConfig, root: Path, max_batches: int | None = None) -> Stream:
    """The model's data file cut into batches as ``costaware replay`` lands them."""
    from costaware.app.replay import arrival_time, load_source, split_batches

    names, batches, arrivals = [], [], []
    for name, part in split_batches(cfg, load_source(cfg, root)):
        names.append(name)
        batches.append(part.reset_index(drop=True))
        arrivals.append(arrival_time(cfg, part))
        if max_batches and len(batches) >= max_batches:
            break
    return Stream(cfg, names, batches, arrivals)


def make_book(
    stream: Stream, start: int = 0, stop: int | None = None, progress: Any = None
) -> Book:
    usd, worker = retrain_price(stream.cfg)
    return Book(
        stream.cfg,
        stream.batches,
        RealKit(),
        usd,
        worker,
        start=start,
        stop=stop,
        arrivals=stream.arrivals,
        progress=progress,
    )


def resolve_batch(text: str | None, stream: Stream, flag: str, default: int) -> int:
    """A batch index (0..N-1), a batch name, or a date (YYYY-MM-DD): for ``--from`` the first
    batch whose data starts on or after it, for ``--to`` the last that starts on or before it
    (a batch's name carries its first day, as ``costaware replay`` names it)."""
    n = len(stream.batches)
    if text is None:
        return default
    span = f"{n} batches, 0..{n - 1}, named {stream.names[0]}..{stream.names[-1]}"
    raw = text.strip()
    if raw.isdigit():
        if int(raw) < n:
            return int(raw)
        raise ConfigError(f"{flag} {text!r}: no such batch; {stream.cfg.name} has {span}")
    if raw in stream.names:
        return stream.names.index(raw)
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is neither a batch index, a batch name nor a date (YYYY-MM-DD); "
            f"{stream.cfg.name} has {span}"
        ) from None
    days = [b[TIME_COLUMN].iloc[0].date() for b in stream.batches]
    if flag == "--from":
        hits = [i for i, d in enumerate(days) if d >= day]
        pick = hits[0] if hits else None
    else:
        hits = [i for i, d in enumerate(days) if d <= day]
        pick = hits[-1] if hits else None
    if pick is None:
        raise ConfigError(f"{flag} {text!r} lies outside the data: {stream.cfg.name} has {span}")
    return pick


@dataclass
class Backtest:
    model: str
    policy: Result
    oracle: Result
    first: str  # --from's batch
    last: str  # --to's batch
    champion: str  # the batch of the first champion (the DAG's first model from --from on)
    retrain_usd: float
    metric: str
    point: str
    names: list[str]


def backtest(
    cfg: ModelConfig,
    root: Path,
    policy: str,
    start: str | None = None,
    stop: str | None = None,
    limit: float | None = None,
    progress: Any = None,
) -> Backtest:
    """Replay ``cfg``'s data file from ``start`` to ``stop`` under ``policy``."""
    from costaware.decide.policy import point_text

    spec = PolicySpec.parse(policy)  # a bad policy fails before any data is read
    if limit is not None and not limit > 0:
        raise ConfigError(f"--max-usd-per-point {limit!r}: must be a positive number of $")
    stream = load_stream(cfg, root)
    lo = resolve_batch(start, stream, "--from", 0)
    hi = resolve_batch(stop, stream, "--to", len(stream.batches) - 1)
    if hi <= lo:
        raise ConfigError(
            f"--to ({stream.names[hi]}, batch {hi}) must come after --from "
            f"({stream.names[lo]}, batch {lo})"
        )
    book = make_book(stream, lo, hi, progress)
    limit = configured_limit(cfg) if limit is None else limit
    result = run(book, spec, limit)
    best = oracle(book, limit)
    return Backtest(
        cfg.name,
        result,
        best,
        stream.names[lo],
        stream.names[hi],
        stream.names[hi - result.steps + 1],
        book.usd,
        cfg.metric,
        point_text(cfg.metric),
        stream.names,
    )


def table(bt: Backtest, events: bool = True) -> str:
    """The readable summary ``costaware backtest`` prints."""
    p, o = bt.policy, bt.oracle
    head = f"{'':<34}{p.policy:>16}{'hindsight oracle':>18}"
    rows = [
        ("batches served (from the first champion)", f"{p.steps}", f"{o.steps}"),
        ("retrains (each pays)", f"{p.retrains}", f"{o.retrains}"),
        ("  promoted by the gate", f"{p.promotions}", f"{o.promotions}"),
        ("  rejected by the gate", f"{p.rejections}", "-"),
        ("  needed approval", f"{p.approvals}", "-"),
        ("spent on retrains ($)", f"{p.retrain_usd:.4f}", f"{o.retrain_usd:.4f}"),
        ("spent on probes ($)", f"{p.probe_usd:.4f}", f"{o.probe_usd:.4f}"),
        (f"mean {bt.metric} (points)", f"{p.mean_points:.2f}", f"{o.mean_points:.2f}"),
        ("shortfall (pt·batches below perfect)", f"{p.shortfall:.1f}", f"{o.shortfall:.1f}"),
        ("lost vs oracle (pt·batches)", f"{p.shortfall - o.shortfall:+.1f}", "0.0"),
        ("total $ (shortfall × limit + spend)", f"{p.total():.4f}", f"{o.total():.4f}"),
        ("total / oracle", f"{p.total() / o.total():.3f}", "1.000"),
    ]
    lines = [
        f"Backtest of {bt.model}, batches {bt.first}..{bt.last} (first champion "
        f"{bt.champion}): policy {p.policy}, limit "
        f"${p.limit:g} per point·batch ({bt.point}), a retrain ${bt.retrain_usd:.4f}",
        head,
        "-" * len(head),
    ]
    lines += [f"{k:<40}{a:>10}{b:>18}" for k, a, b in rows]
    if events and p.events:
        lines += [
            "",
            "retrains (batch: decision → verdict; the first model, the same for every "
            "policy, is not counted):",
        ]
        for e in p.events:
            what = "first" if e.reason.startswith("no champion yet") else e.decision
            lines.append(f"  {bt.names[e.step]}  {what:<7} → {e.verdict:<7}  {e.reason}")
    return "\n".join(lines)
