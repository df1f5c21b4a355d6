"""Spend of unknown amount in budgets and showback: the known dollars are summed, the unknown
charges are counted beside them, and no text shows them as $0."""

from __future__ import annotations

import datetime as dt

import pytest

from costaware.costs import make_cost_source
from costaware.costs.budgets import alert, model_budget
from costaware.costs.showback import load_charges, render_text, summarize
from costaware.store.ledger import Ledger

START, END = dt.date(2026, 11, 1), dt.date(2026, 12, 1)


def _cost(ledger: Ledger, model: str, team: str, run: str, n: int, usd: float | None) -> None:
    ledger.record_cost(
        model=model,
        run_id=run,
        purpose="retrain",
        attempt=f"job/{n}",
        usd=usd,
        status="final" if usd is not None else "lost",
        capacity="spot",
        instance_type="m5.xlarge",
        runtime_s=None,
        interruptions=0,
        price_source="static",
        usage_date=dt.datetime(2026, 11, 3 + n),
        tags={"model": model, "team": team, "env": "prod", "purpose": "retrain"},
    )


@pytest.fixture
def charges(ledger: Ledger) -> Ledger:
    _cost(ledger, "elec2", "energy", "r1", 1, 0.30)
    _cost(ledger, "elec2", "energy", "r1", 2, None)  # the attempt's process died unpriced
    _cost(ledger, "elec2", "energy", "r2", 1, 0.45)
    _cost(ledger, "weather", "climate", "w1", 1, None)  # nothing known about weather at all
    return ledger


def test_model_budget_counts_unknown_charges(charges: Ledger) -> None:
    src = make_cost_source("ledger", charges)
    tags = {"model": "elec2", "team": "energy", "env": "prod"}
    status = model_budget("elec2", tags, 1.0, src, dt.date(2026, 11, 20))
    assert (status.spent_usd, status.unknown) == (pytest.approx(0.75), 1)
    assert status.crossed == 0.5  # the known part alone is 75%
    assert status.message().startswith(
        "budget elec2 2026-11: $0.75 + 1 unknown of $1.00 spent (at least 75%;"
    )
    assert alert([status])[0].startswith("50% alert: budget elec2 2026-11: $0.75 + 1 unknown")


def test_showback_sums_known_and_counts_unknown(charges: Ledger) -> None:
    df = load_charges(make_cost_source("ledger", charges), START, END)
    s = summarize(df, "model", START, END)
    assert s.total_usd == pytest.approx(0.75) and s.unknown_charges == 2
    rows = {r.key: (r.usd, r.unknown) for r in s.by_key.itertuples()}
    assert rows["elec2"] == (pytest.approx(0.75), 1)
    assert rows["weather"] == (0.0, 1)
    text = render_text(s).splitlines()
    assert text[0] == "cost by model, 2026-11-01 .. 2026-12-01 (end exclusive): $0.75 + 2 unknown"
    assert text[1] == "  elec2                  $      0.75 + 1 unknown  100.0%"
    assert text[2] == "  weather                unknown (1)    0.0%"  # not "$0.00"
    assert text[-1].startswith("  unknown amount: 2 charge(s)")
