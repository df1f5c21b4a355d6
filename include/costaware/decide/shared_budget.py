"""A monthly budget shared by several models: who retrains when it cannot pay for all. Pure.

Each model's checkpoint posts to the ledger, under the budget's scheduling window
(``window_key``: the day, ISO week or month of the run's clock), either a ``Candidate`` — a
retrain its own policy finds worth it, with its expected gain and cost, verdict ``pending`` —
or a ``pass`` (no retrain wanted), so the others know not to wait for it. The window closes
(``window_closed``) when every model of the budget has posted, or ``wait_minutes`` after its
first post; until then a pending run waits without holding a worker slot (Airflow
reschedules its task). ``allocate`` is then a pure, deterministic function of the window's
candidates and the money left, run once and recorded for every pending candidate:

* a candidate already funded keeps its money (later, better ones pre-empt nothing: it may be
  training already) and reserves its expected cost until its retrain's cost is recorded
  (``settled``: then the cost is in the spend and counted there, once);
* the undecided ones are ranked by ``worth`` — the gain valued at the model's own limit, per
  dollar spent (``gain × max_usd_per_point_batch / cost``, ≥ 1 for a retrain its own policy
  accepts) — and funded best first while the money left covers them; one that does not fit is
  refused and the next, cheaper one may still fit.

``worth`` ranks models of different metrics fairly: a point of RMSE and a point of ROC AUC are
not the same thing, but each model's limit says what one of its points × batches is worth to
the team. For models with the same metric and limit it orders them exactly as gain per dollar,
and the message shows that: ``outbid by weather: 3.1 vs 1.2 pt·batch per $``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["funded", "outbid", "short", "pending", "pass"]
WINDOWS = ("@daily", "@weekly", "@monthly")
UNDECIDED = (None, "pending")


def window_closed(
    posted: Iterable[str],
    models: Iterable[str],
    first_post: dt.datetime | None,
    now: dt.datetime,
    wait_minutes: float,
) -> bool:
    """True once every model of the budget has posted in the window (a candidate or a pass),
    or ``wait_minutes`` after the window's first post."""
    if set(models) <= set(posted):
        return True
    return first_post is not None and now >= first_post + dt.timedelta(minutes=wait_minutes)


def window_key(clock: dt.datetime, window: str) -> str:
    """The scheduling window ``clock`` falls in: ``2026-11-26``, ``2026-W48`` or ``2026-11``."""
    if window == "@daily":
        return clock.strftime("%Y-%m-%d")
    if window == "@weekly":
        year, week, _ = clock.isocalendar()
        return f"{year}-W{week:02d}"
    if window == "@monthly":
        return clock.strftime("%Y-%m")
    raise ValueError(f"unknown budget window {window!r}; allowed: {list(WINDOWS)}")


@dataclass(frozen=True)
class Candidate:
    """One model's retrain, worth it by its own policy, asking the shared budget for money."""

    model: str
    run_id: str
    gain_points: float  # expected gain, pt·batch of ``metric``
    cost_usd: float  # expected cost
    limit_usd: float  # the model's max_usd_per_point_batch (what a pt·batch is worth)
    metric: str
    seq: int  # posting order in the window (ties in worth: the earlier post first)
    verdict: Verdict | None = None  # None or pending: not decided yet
    settled: bool = False  # its retrain's cost is recorded, so it is in the spend already

    @property
    def per_usd(self) -> float:
        """pt·batch of its metric bought per dollar."""
        return self.gain_points / self.cost_usd if self.cost_usd > 0 else math.inf

    @property
    def worth(self) -> float:
        """Gain valued at the model's own limit, per dollar spent: the ranking key."""
        return self.per_usd * self.limit_usd

    @property
    def key(self) -> str:
        """``model/run_id``: Airflow's run ids repeat across DAGs (``scheduled__<date>``)."""
        return f"{self.model}/{self.run_id}"

    def rank_key(self) -> tuple[float, int, str, str]:
        return (-self.worth, self.seq, self.model, self.run_id)


@dataclass(frozen=True)
class Allocation:
    """The window's verdicts, with the numbers that decided them."""

    budget: str
    window: str
    monthly_usd: float
    spent_usd: float  # this month, every model of the budget (unknown charges included)
    reserved_usd: float  # funded in this window, not yet in the spend
    left_usd: float  # after the funded candidates (new ones included)
    funded: tuple[Candidate, ...]  # in rank order
    refused: dict[str, str] = field(default_factory=dict)  # Candidate.key → why

    def verdicts(self) -> dict[str, tuple[Verdict, str]]:
        """Every candidate's verdict and its words, by ``Candidate.key``."""
        out = {c.key: self.verdict(c.key) for c in self.funded}
        return out | {key: self.verdict(key) for key in self.refused}

    def verdict(self, key: str) -> tuple[Verdict, str]:
        """The verdict of the candidate ``model/run_id``, and why."""
        for c in self.funded:
            if c.key == key:
                return "funded", self._funded_text(c)
        why = self.refused[key]
        return ("outbid" if why.startswith("outbid") else "short"), why

    def _funded_text(self, c: Candidate) -> str:
        return (
            f"funded by shared budget {self.budget} ({self.window}): "
            f"{c.per_usd:.1f} pt·batch of {c.metric} per $, worth {c.worth:.2f}× its cost; "
            f"${self.left_usd:.4f} of ${self.monthly_usd:g} left this month after it"
        )


def _per_usd_text(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.1f}"


def allocate(
    budget: str,
    window: str,
    monthly_usd: float,
    spent_usd: float,
    candidates: Iterable[Candidate],
) -> Allocation:
    """Fund the window's candidates best first within ``monthly_usd − spent_usd``.

    ``spent_usd``: this month's spend of every model in the budget (unknown charges counted
    conservatively by the caller), which already holds the cost of each ``settled`` one."""
    cands = [c for c in candidates if c.verdict != "pass"]
    keys = [c.key for c in cands]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a run posted twice in window {window}: {sorted(keys)}")
    kept = sorted((c for c in cands if c.verdict == "funded"), key=Candidate.rank_key)
    reserved = sum(c.cost_usd for c in kept if not c.settled)
    left = monthly_usd - spent_usd - reserved
    funded = list(kept)
    refused: dict[str, str] = {}
    for c in sorted((c for c in cands if c.verdict in UNDECIDED), key=Candidate.rank_key):
        if c.cost_usd <= left:
            funded.append(c)
            left -= c.cost_usd
            continue
        refused[c.key] = _refusal(budget, window, monthly_usd, left, c, funded)
    # A candidate refused earlier keeps its verdict and its words are the caller's (recorded).
    for c in cands:
        if c.verdict in ("outbid", "short"):
            refused[c.key] = f"{c.verdict} earlier in {window}"
    return Allocation(
        budget, window, monthly_usd, spent_usd, reserved, left, tuple(funded), refused
    )


def _refusal(
    budget: str, window: str, monthly: float, left: float, c: Candidate, funded: list[Candidate]
) -> str:
    short = (
        f"retrain ${c.cost_usd:.4f} > ${max(left, 0.0):.4f} left of shared budget "
        f"{budget}'s ${monthly:g} this month"
    )
    better = [f for f in funded if f.worth > c.worth and f.model != c.model]
    if not better:
        first = [f for f in funded if f.model != c.model]
        if first:
            # Funded before this one was posted: a later, better one pre-empts nothing.
            names = ", ".join(f"{f.model} ({_per_usd_text(f.per_usd)})" for f in first[:3])
            return f"budget taken earlier in {window} by {names}: {short}"
        return short
    top = better[0]
    text = (
        f"outbid by {top.model}: {_per_usd_text(top.per_usd)} vs {_per_usd_text(c.per_usd)} "
        f"pt·batch per $"
    )
    if top.metric != c.metric or not math.isclose(top.limit_usd, c.limit_usd):
        differ = (
            f"{top.metric} vs {c.metric}"
            if top.metric != c.metric
            else f"limits ${top.limit_usd:g} vs ${c.limit_usd:g} per pt·batch"
        )
        text += (
            f" ({differ}; ranked by gain valued at each model's limit: "
            f"{top.worth:.2f}× vs {c.worth:.2f}× the cost)"
        )
    others = [f.model for f in better[1:]]
    if others:
        text += f"; also funded first: {', '.join(others)}"
    return f"{text}; {short}"
