"""One clock: the budget month, the cooldown and the cost dates follow the run's clock.

The old code (35cc885, ``pipeline.estimate_cost``) took "now" from the batch: its newest
event, in the batch's own timezone. With a timezone-aware batch, ``now - usage_date`` (the
ledger's naive UTC) raised ``TypeError: can't subtract offset-naive and offset-aware
datetimes``; with a naive one, the budget month was the month the data is about (May 1996
for Elec2) and "hours since the last retrain" was negative.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from costaware.batches import data
from costaware.settings import Settings
from costaware.steps.checkpoint import cost_checkpoint, data_time, estimate_cost
from costaware.steps.context import StepContext
from costaware.steps.intake import validate_batch

from .. import factories
from .helpers import CLOCK, MODEL, make_ctx

# 13:00 in Berlin in March (CET, UTC+1) is the helpers' CLOCK, 2024-03-15 12:00 UTC.
AWARE_CLOCK = dt.datetime(2024, 3, 15, 13, 0, tzinfo=ZoneInfo("Europe/Berlin"))


def _land(settings: Settings, name: str, frame: pd.DataFrame, suffix: str) -> dict[str, str]:
    folder = settings.landing(MODEL)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    ref = data.find_batch(settings, MODEL, name)
    assert ref is not None
    return ref.as_dict()


def _cost(ctx: StepContext, run_id: str, when: dt.datetime, usd: float) -> None:
    ctx.ledger.record_cost(
        model=MODEL,
        run_id=run_id,
        purpose="retrain",
        attempt="job/0",
        usd=usd,
        status="final",
        note="",
        capacity="spot",
        instance_type="m5.2xlarge",
        runtime_s=600.0,
        interruptions=0,
        price_source="static",
        usage_date=when,
        tags={"model": "elec2", "team": "energy-forecasting", "env": "dev", "purpose": "retrain"},
    )


def test_aware_and_naive_batches_follow_the_run_clock(settings: Settings) -> None:
    cfg = factories.model(MODEL)
    cols = ["event_id", "event_time", *cfg.feature_names]
    weeks = [part[cols].reset_index(drop=True) for _, part in factories.batches(MODEL)[:3]]
    berlin = weeks[0].assign(event_time=weeks[0]["event_time"].dt.tz_localize("Europe/Berlin"))
    india = weeks[1].assign(event_time=[f"{t.isoformat()}+05:30" for t in weeks[1]["event_time"]])
    batches = [
        # (name, frame, file type, hand-computed first and last event in UTC)
        (
            "berlin",
            berlin,
            ".parquet",
            (dt.datetime(1996, 5, 6, 22), dt.datetime(1996, 5, 13, 21, 30)),
        ),
        ("india", india, ".csv", (dt.datetime(1996, 5, 13, 18, 30), dt.datetime(1996, 5, 20, 18))),
        (
            "naive",
            weeks[2],
            ".parquet",
            (dt.datetime(1996, 5, 21), dt.datetime(1996, 5, 27, 23, 30)),
        ),
    ]
    setup = make_ctx(cfg, settings, "setup", clock=AWARE_CLOCK)
    assert setup.clock == CLOCK and setup.clock.tzinfo is None
    # A retrain 30 h before the clock, in the clock's month: it counts, and sets the cooldown.
    _cost(setup, "retrain-march", dt.datetime(2024, 3, 14, 6, 0), 0.5)
    # One in the month the data is about (May 1996), and one in the clock's previous month:
    # neither is this month's spend.
    _cost(setup, "retrain-1996", dt.datetime(1996, 5, 10, 12, 0), 0.25)
    _cost(setup, "retrain-february", dt.datetime(2024, 2, 29, 23, 0), 0.125)
    setup.ledger.dispose()

    for name, frame, suffix, (first, last) in batches:
        ctx = make_ctx(cfg, settings, f"run-{name}", clock=AWARE_CLOCK)
        validated = validate_batch(ctx, _land(settings, name, frame, suffix))
        assert validated["status"] == "pass", validated
        assert (validated["start"], validated["end"]) == (first.isoformat(), last.isoformat())
        row = ctx.ledger.batch(MODEL, name)
        assert row is not None and (row["start_ts"], row["end_ts"]) == (first, last)
        assert data_time(validated) == last

        cost = estimate_cost(ctx, validated)
        assert cost["clock"] == "2024-03-15T12:00:00"
        assert cost["spent_this_month_usd"] == pytest.approx(0.5)
        assert cost["spent_this_month_unknown"] == 0
        assert cost["hours_since_last_retrain"] == pytest.approx(30.0)

        cost_checkpoint(ctx, validated, drift={}, perf={}, cost=cost)
        decision = ctx.ledger.decision(MODEL, f"run-{name}")
        assert decision is not None and decision["data_time"] == last
        ctx.ledger.dispose()

    assert data.accepted_batch_ids(settings, setup.ledger, MODEL) == ["berlin", "india", "naive"]
    assert not Path(settings.landing(MODEL)).exists() or not any(
        p.is_file() for p in settings.landing(MODEL).iterdir()
    )
