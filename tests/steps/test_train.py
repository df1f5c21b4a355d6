"""The training step records one ledger row per attempt, the killed try's included."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from costaware.models.registry import CHALLENGER
from costaware.models.training.local import PIDFILE
from costaware.settings import Settings
from costaware.steps.spend import run_spend
from costaware.steps.train import run_key, train_challenger

from .. import factories
from .helpers import (
    MODEL,
    accept_weeks,
    fork_safe,
    install_registry,
    killed_at,
    make_ctx,
    process_running,
)

RUN = "scheduled__2024-03-15T12:00:00+00:00"


def test_killed_training_task_keeps_every_attempt_in_the_ledger(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task dies while its worker trains; Airflow retries it.

    Old code: ``record_cost`` ran once, after ``submit`` returned, with one row per run: the
    killed try recorded nothing, and the retry's row held only its own (smaller) cost; the
    orphan worker's instance time was never paid for. Now the ledger has a row per attempt
    (job/0 from the killed try, priced up to when the retry stopped its worker, then the
    retry's), none of them $0 or unknown, and one challenger version is registered."""
    fork_safe(monkeypatch)
    cfg = factories.model(
        MODEL,
        training={
            "num_boost_round": 60,
            "chunk_rounds": 10,
            # Every spot attempt is reclaimed: the orphan waits for a notice that never comes.
            "spot": {"enabled": True, "interruption_rate": 1.0, "max_interruptions": 1, "seed": 7},
        },
    )
    install_registry(settings, "empty")
    setup = make_ctx(cfg, settings, "intake")
    accept_weeks(settings, setup.ledger, ["week-1", "week-2", "week-3"])
    setup.ledger.dispose()
    job_id = hashlib.sha256(run_key(make_ctx(cfg, settings, RUN), "week-3").encode()).hexdigest()[
        :16
    ]

    killed_at(
        "train_challenger.worker_running",
        tmp_path / "faults",
        lambda: train_challenger(make_ctx(cfg, settings, RUN), "week-3"),
    )
    pid = int((settings.work(MODEL) / job_id / PIDFILE).read_text())
    assert process_running(pid)

    ctx = make_ctx(cfg, settings, RUN)
    out = train_challenger(ctx, "week-3")

    assert not process_running(pid)
    rows = ctx.ledger.run_costs(MODEL, RUN)
    assert [r["attempt"] for r in rows] == [f"{job_id}/{n}" for n in range(len(rows))]
    assert len(rows) >= 2
    assert all(r["status"] == "final" and r["usd"] is not None and r["usd"] > 0 for r in rows)
    assert "its task died" in rows[0]["note"] and rows[0]["capacity"] == "spot"
    # Billed from the static table: m5.2xlarge spot $0.148/h; the billed time (runtime_s)
    # is the 6 min start-up overhead plus the seconds the orphan ran.
    assert rows[0]["runtime_s"] > 360
    assert rows[0]["usd"] == pytest.approx(rows[0]["runtime_s"] / 3600 * 0.148)
    spend = run_spend(ctx.ledger, MODEL, RUN)
    assert spend["unknown_attempts"] == 0
    assert spend["usd"] == pytest.approx(sum(r["usd"] for r in rows))
    assert out["usd"] == pytest.approx(spend["usd"])
    assert (out["version"], ctx.registry.versions(MODEL)) == ("1", ["1"])
    assert ctx.registry.alias(MODEL, CHALLENGER) == "1"
