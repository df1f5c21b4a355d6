"""Monthly chargeback per team in FOCUS columns: every dollar of the month in exactly one row
(totals and per-team sums computed here from the CSV with Decimal), the file accepted by the
FinOps Foundation's focus-validator (its own virtualenv, as in test_focus_source.py), and a
file with a FOCUS column missing refused by the same validator run."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costaware.app.cli_costs import add_costs_commands
from costaware.costs.chargeback import chargeback, write_chargeback
from costaware.costs.focus import FocusCostSource

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "focus"
VALIDATOR_VENV = Path(os.environ.get("COSTAWARE_FOCUS_VENV", ROOT / ".venv-focus"))
OCT = dt.date(2026, 10, 1)
# An OR rule's first branch ("InvoiceId null: no invoice"): see test_focus_source.py.
OR_BRANCHES_THAT_MAY_FAIL = {"InvoiceId-C-004-C"}


def validate(files: list[Path]) -> dict[Path, set[str]]:
    """Run focus-validator 1.2 on each file (in parallel); the failed or errored rule ids."""
    exe = VALIDATOR_VENV / "bin" / "focus-validator"
    site = sorted(VALIDATOR_VENV.glob("lib/python3*/site-packages"))
    assert exe.exists() and site, f"focus-validator not found in {VALIDATOR_VENV} (make setup)"
    procs = {}
    for f in files:
        out = f.with_suffix(".xml")
        cmd = [str(exe), "--data-file", str(f), "--validate-version", "1.2.0.1"]
        cmd += ["--block-download", "--output-type", "unittest", "--output-destination", str(out)]
        procs[f] = (
            out,
            subprocess.Popen(cmd, cwd=site[0], stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
        )
    failed = {}
    for f, (out, proc) in procs.items():
        log, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, log.decode()[-2000:]
        cases = list(ET.parse(out).iter("testcase"))
        assert len(cases) > 100, "the validator checked almost nothing"
        failed[f] = {
            tc.get("name", "").split(" :: ")[0]
            for tc in cases
            if tc.find("failure") is not None or tc.find("error") is not None
        }
    return failed


def month_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["ChargePeriodStart"].startswith("2026-10")]


def test_chargeback_is_valid_focus_and_accounts_for_every_dollar(tmp_path: Path) -> None:
    table = chargeback(FocusCostSource(FIXTURES / "costs.csv"), OCT)
    path = Path(write_chargeback(table, tmp_path, OCT))
    rows = month_rows(FIXTURES / "costs.csv")
    for col in ("EffectiveCost", "BilledCost"):
        own = sum((Decimal(r[col]) for r in rows), Decimal(0))
        assert round(Decimal(repr(float(table[col].sum()))), 6) == own
    per_team: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        per_team[json.loads(r["Tags"]).get("team", "")] += Decimal(r["EffectiveCost"])
    with path.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    got: dict[str, Decimal] = defaultdict(Decimal)
    for w in written:
        got[json.loads(w["Tags"]).get("team", "")] += Decimal(w["EffectiveCost"])
    assert {k: round(v, 6) for k, v in got.items()} == per_team
    assert {w["ChargeDescription"] for w in written if w["Tags"] == "{}"} == {
        "2026-10 unallocated (no team tag)"
    }
    assert all(w["ResourceId"] == "" for w in written)
    # The same file with BillingCurrency dropped: the validator must refuse it.
    broken = tmp_path / "broken.csv"
    table.drop(columns="BillingCurrency").to_csv(broken, index=False)
    result = validate([path, broken])
    assert result[path] <= OR_BRANCHES_THAT_MAY_FAIL, result[path]
    assert any(r.startswith("BillingCurrency") for r in result[broken]), result[broken]


def test_chargeback_of_a_real_shaped_export_keeps_refunds_and_purchases() -> None:
    src = FocusCostSource(FIXTURES / "azure_real.csv", tag_aliases={"environment": "env"})
    table = chargeback(src, OCT)
    rows = month_rows(FIXTURES / "azure_real.csv")
    for col in ("EffectiveCost", "BilledCost"):
        own = sum((Decimal(r[col]) for r in rows), Decimal(0))
        assert round(Decimal(repr(float(table[col].sum()))), 6) == own
    purchase = table[table["ChargeCategory"] == "Purchase"]
    assert list(purchase["BilledCost"]) == [1199.0] and list(purchase["Tags"]) == ["{}"]
    # " team" and "Team" are the team key too: vm-climate-01's and vm-forecast-02's rows.
    teams = {json.loads(t).get("team") for t in table["Tags"]}
    assert teams == {"forecasting", "climate", "platform", None}


def test_costs_command_writes_the_chargeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    parser = argparse.ArgumentParser(prog="costaware")
    add_costs_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "costs",
            "--source",
            "focus",
            "--path",
            str(FIXTURES / "costs.csv"),
            "--chargeback",
            "2026-10",
            "--out",
            str(tmp_path),
        ]  # fmt: skip
    )
    assert args.func(args) == 0
    assert "chargeback 2026-10: 8 row(s)" in capsys.readouterr().out
    assert (tmp_path / "chargeback_2026-10.csv").exists()
    with pytest.raises(SystemExit):
        parser.parse_args(["costs", "--chargeback", "October"])
