"""`costaware status`: aliases, decisions and the audit trail, readable when things are missing."""

from __future__ import annotations

import datetime as dt

import pytest

from costaware.app.cli import main
from costaware.settings import Settings
from costaware.store.ledger import Ledger


def test_status_of_a_model_with_no_versions_and_a_pending_operation(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = Ledger(settings.db_url)
    ledger.record_audit(
        model="elec2",
        action="rollback",
        actor="cli:ana",
        run_id="op-1",
        from_version="3",
        to_version="2",
        metrics={},
        usd=0.0,
        reason="live AUC dropped",
        data_time=dt.datetime(1996, 6, 4, 12, 0),
        status="pending",
    )
    assert main(["status", "elec2"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["champion"].split() == ["champion", "-"]  # not "vNone"
    assert lines["challenger"].split() == ["challenger", "-"]
    words = " ".join(out.split())  # columns are padded; compare word by word
    assert "1996-06-04 12:00 rollback v3 → v2 by cli:ana [PENDING]: live AUC dropped" in words
