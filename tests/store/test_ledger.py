"""The ledger on SQLite and on the PostgreSQL server at 127.0.0.1:5432 (never skipped)."""

from __future__ import annotations

import datetime as dt

from costaware.store.ledger import Ledger


def test_decisions_upsert_by_run(db_url: str) -> None:
    led = Ledger(db_url)
    row = dict(
        model="m",
        run_id="r1",
        batch_id="b1",
        action="skip",
        reason="cheap",
        details={"numbers": {"x": 1.5, "per_point": float("inf"), "se": float("nan")}},
        dry_run=False,
    )
    led.record_decision(**row)
    led.record_decision(**{**row, "action": "retrain", "reason": "retried"})
    got = led.decisions("m")
    assert len(got) == 1
    assert got[0]["action"] == "retrain"
    # PostgreSQL's JSON has no NaN or Infinity: stored as null and "inf" on both databases.
    assert got[0]["details"]["numbers"] == {"x": 1.5, "per_point": "inf", "se": None}
    led.set_outcome("m", "r1", "promoted")
    assert led.decision("m", "r1")["outcome"] == "promoted"
    assert led.decision_for_batch("m", "b1")["run_id"] == "r1"
    led.dispose()


def test_costs_idempotent_and_filtered(db_url: str) -> None:
    led = Ledger(db_url)
    day = dt.datetime(1996, 6, 3)
    cost = dict(
        model="m",
        run_id="r1",
        purpose="retrain",
        usd=0.0125,
        capacity="spot",
        instance_type="m5.xlarge",
        runtime_s=600.0,
        interruptions=1,
        price_source="static",
        usage_date=day,
        tags={"model": "m", "team": "t"},
    )
    led.record_cost(**cost)
    led.record_cost(**cost)  # a retried task
    assert len(led.costs(model="m")) == 1
    assert led.costs(model="m", start=day + dt.timedelta(days=1)) == []
    assert led.costs(model="m", purpose="serve") == []
    led.dispose()


def test_audit_rows_once_per_run_and_action(db_url: str) -> None:
    led = Ledger(db_url)
    row = dict(
        model="m",
        action="promote",
        actor="test",
        run_id="r1",
        from_version="1",
        to_version="2",
        metrics={"gain": 2.5},
        usd=0.01,
        reason="better",
    )
    assert led.record_audit(**row) is True
    assert led.record_audit(**row) is False
    led.record_audit(
        **{**row, "action": "rollback", "run_id": "r2", "from_version": "2", "to_version": "1"}
    )
    assert [a["action"] for a in led.audit("m")] == ["promote", "rollback"]
    assert led.last_promotion("m")["action"] == "rollback"
    led.dispose()
