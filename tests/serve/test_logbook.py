"""The prediction log's spool: records outlive a ledger that is down and a restart, and a
full spool refuses new records instead of losing them."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from costaware.serve.logbook import LogFull, PredictionLog
from costaware.store import ledger as ledger_mod
from costaware.store.ledger import Ledger

from ..support.servers import free_port


def _records(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "model": "elec2",
            "request_id": f"r{i:06d}",
            "ts": dt.datetime(2026, 1, 1, 0, 0, i % 60).isoformat(),
            "features": {"period": i / 1000},
            "score": 0.5,
            "version": "1",
            "alias": "champion",
            "latency_ms": 1.0,
        }
        for i in range(start, start + n)
    ]


def _writer(ledger: Ledger) -> Any:
    def write(records: list[dict[str, Any]]) -> int:
        rows = [{**r, "ts": dt.datetime.fromisoformat(r["ts"])} for r in records]
        return ledger_mod.log_predictions(ledger, rows)

    return write


def _ids(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(ledger_mod.predictions.c.request_id))]


def test_a_ledger_that_is_down_keeps_records_in_the_spool_until_a_restart_ships_them(
    tmp_path: Path,
) -> None:
    # Nothing listens on this port: every write fails the way a stopped server does.
    down = Ledger(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none")
    spool = tmp_path / "spool"
    log = PredictionLog(spool, _writer(down), flush_interval=0.05, batch_records=100)
    log.start()
    log.add(_records(250))
    log.add(_records(50, start=250))
    log.close(deadline_s=0.5)
    assert log.depth == 300 and log.shipped == 0 and log.dropped == 0
    assert sum(len(p.read_text().splitlines()) for p in spool.glob("*.jsonl")) == 300

    up = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    again = PredictionLog(spool, _writer(up), flush_interval=0.05)
    again.start()
    assert again.depth == 300 and again.is_pending("r000123")
    again.close(deadline_s=10)
    ids = _ids(up)
    assert sorted(ids) == [f"r{i:06d}" for i in range(300)]
    assert again.depth == 0 and not list(spool.glob("*"))
    assert not again.is_pending("r000123")


def test_a_replayed_file_adds_nothing_twice(tmp_path: Path) -> None:
    """A crash between the ledger's commit and the spool file's removal replays the file."""
    up = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    write = _writer(up)
    assert write(_records(10)) == 10
    assert write(_records(10)) == 0  # the same records again: ignored
    assert len(_ids(up)) == 10


def test_a_full_spool_refuses_instead_of_dropping(tmp_path: Path) -> None:
    down = Ledger(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none")
    log = PredictionLog(
        tmp_path / "spool",
        _writer(down),
        flush_interval=0.05,
        batch_records=10,
        spool_max_bytes=2000,  # about 10 records
        max_pending=30,
    )
    log.start()
    accepted = 0
    with pytest.raises(LogFull, match="limit 30"):
        for i in range(100):
            log.add(_records(5, start=5 * i))
            accepted += 5
            if i % 5 == 4:
                time.sleep(0.2)  # let the spooler fill the spool
    log.close(deadline_s=0.2)
    assert log.dropped == 0
    assert log.depth == accepted  # every accepted record is still held
