"""Alembic migrations: a ledger created by the version that shipped before migrations keeps
every row when the current code opens it (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import importlib.util

import sqlalchemy as sa

from costaware.store.ledger import HEAD, Ledger

from ..conftest import ROOT


def _v1():
    """The shipped ledger module, unchanged (tests/fixtures/ledger_v1.py)."""
    spec = importlib.util.spec_from_file_location("ledger_v1", ROOT / "tests/fixtures/ledger_v1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fill_v1(url: str) -> None:
    v1 = _v1()
    old = v1.Ledger(url)
    day = dt.datetime(1996, 6, 3, 12, 30)
    old.record_batch(
        model="elec2",
        batch_id="b0001",
        path="/x/b0001.parquet",
        rows=336,
        sha256="a" * 64,
        status="accepted",
        message="ok",
        start_ts=day,
        end_ts=day,
        run_id="r1",
    )
    old.record_decision(
        model="elec2",
        run_id="r1",
        batch_id="b0001",
        action="retrain",
        reason="worth it",
        details={"numbers": {"gain": 1.5}},
        dry_run=False,
        outcome="promoted",
        data_time=day,
    )
    for run, usd in (("r1", 0.0149), ("r2", 0.0299)):
        old.record_cost(
            model="elec2",
            run_id=run,
            purpose="retrain",
            usd=usd,
            capacity="spot",
            instance_type="m5.2xlarge",
            runtime_s=400.0,
            interruptions=0,
            price_source="static",
            usage_date=day,
            tags={"model": "elec2", "team": "t"},
        )
    old.record_audit(
        model="elec2",
        action="promote",
        actor="airflow",
        run_id="r1",
        from_version=None,
        to_version="1",
        metrics={"gain": 2.0},
        usd=0.0149,
        reason="first",
        data_time=day,
    )
    old.dispose()


def test_upgrade_from_the_shipped_schema_keeps_every_row(db_url: str) -> None:
    _fill_v1(db_url)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        before = {
            t: [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))]
            for t in ("batches", "decisions", "costs", "audit")
        }
        assert "alembic_version" not in sa.inspect(conn).get_table_names()

    led = Ledger(db_url)
    costs = led.costs(model="elec2")
    with led.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        after = {
            t: [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))]
            for t in before
        }
    assert version == HEAD
    for table, rows in before.items():
        assert len(after[table]) == len(rows), table
        for old, new in zip(rows, after[table], strict=True):
            assert {k: new[k] for k in old} == old, table  # every old column, unchanged
    # Old cost rows are whole runs with a known, final amount.
    assert [(c["run_id"], c["usd"], c["attempt"], c["status"]) for c in costs] == [
        ("r1", 0.0149, "run", "final"),
        ("r2", 0.0299, "run", "final"),
    ]
    assert led.audit("elec2")[0]["status"] == "done"
    # The new schema's rules hold on the migrated database: a second attempt of a run is a
    # row of its own, and an unknown amount is stored as unknown.
    led.record_cost(
        model="elec2",
        run_id="r1",
        purpose="retrain",
        attempt="job/2",
        usd=None,
        status="lost",
        capacity="spot",
        price_source="static",
        usage_date=dt.datetime(1996, 6, 3),
        tags={},
    )
    got = {(c["attempt"], c["usd"]) for c in led.run_costs("elec2", "r1")}
    assert got == {("run", 0.0149), ("job/2", None)}
    led.dispose()
    # Opening it again is a no-op.
    again = Ledger(db_url)
    assert len(again.costs(model="elec2")) == 3
    again.dispose()


def test_new_database_is_created_at_head(db_url: str) -> None:
    led = Ledger(db_url)
    assert led.batches("m") == []
    with led.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        names = set(sa.inspect(conn).get_table_names())
    assert {"batches", "decisions", "costs", "audit", "label_files"} <= names
    led.dispose()


def _open_new_ledger(url: str, answers) -> None:  # noqa: ANN001 - a multiprocessing queue
    try:
        Ledger(url).batches("elec2")
        answers.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        answers.put(repr(exc)[:300])


def test_processes_opening_a_new_sqlite_ledger_at_once_all_succeed(tmp_path) -> None:  # noqa: ANN001
    """Two Airflow tasks can open a ledger that does not exist yet at the same moment: each
    migrates on first use, and without a lock both created the tables ("table batches
    already exists" failed the slower one about one time in four)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'ledger{round_}.db'}"
        answers = ctx.Queue()
        procs = [ctx.Process(target=_open_new_ledger, args=(url, answers)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [answers.get(timeout=5) for _ in procs] == ["ok"] * 4
        assert sa.inspect(sa.create_engine(url)).has_table("batches")
