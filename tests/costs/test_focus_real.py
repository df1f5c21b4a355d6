"""A FOCUS export as Azure writes it (tests/fixtures/focus/azure_real.csv): loaded as it is,
every planted defect listed (kind, rows, $), totals reconciled to the cent against sums of
the file computed here with the csv module and Decimal, strict refusing, unreadable files
still refused, and Azure's export-folder layout (runs superseding runs, gzip parts)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from costs_helpers import NOW

from costaware.costs.focus import FocusCostSource
from costaware.costs.focus_stream import scan
from costaware.costs.showback import showback
from costaware.errors import CostSourceError

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "focus"
AZURE = FIXTURES / "azure_real.csv"
TRUTH = json.loads((FIXTURES / "azure_real.truth.json").read_text())
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)


def file_sums(path: Path) -> dict[str, Decimal]:
    """The export's own totals, read a second way: csv module + Decimal of the text."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:  # type: ignore[operator]
        rows = list(csv.DictReader(fh))
    return {c: sum((Decimal(r[c]) for r in rows), Decimal(0)) for c in COSTS}


COSTS = ("EffectiveCost", "BilledCost")


def test_every_planted_anomaly_is_listed_with_rows_and_dollars() -> None:
    result = scan(AZURE, "team", OCT, NOV, aliases=TRUTH["aliases"])
    found = {a.kind: a for a in result.anomalies}
    assert set(found) == set(TRUTH["planted"])
    for kind, planted in TRUTH["planted"].items():
        assert found[kind].rows == planted["rows"], kind
        assert float(found[kind].effective_usd) == pytest.approx(planted["effective_usd"], abs=1e-9)
        assert found[kind].examples and all(
            "azure_real.csv row " in e for e in found[kind].examples
        )
    severity = {a.kind: a.severity for a in result.anomalies}
    assert severity["negative_usage"] == "anomaly" and severity["usage_correction"] == "note"
    assert severity["committed_pricing"] == "note" and severity["tags_not_json"] == "anomaly"


def test_totals_reconcile_to_the_cent_with_the_file() -> None:
    own = file_sums(AZURE)
    result = scan(AZURE, "team,env", OCT, NOV, aliases=TRUTH["aliases"])
    rec = result.reconciliation
    assert rec.ok and rec.rows_read == rec.rows_in_window == 130
    assert rec.file_effective == own["EffectiveCost"] and rec.file_billed == own["BilledCost"]
    assert round(Decimal(repr(rec.grouped_effective)), 2) == round(own["EffectiveCost"], 2)
    assert round(Decimal(repr(rec.grouped_billed)), 2) == round(own["BilledCost"], 2)
    # Reservations: billed once as a purchase, effective over the usage lines.
    assert own["BilledCost"] - own["EffectiveCost"] == Decimal("1199") - Decimal("138.24")


def test_showback_by_team_matches_what_the_generator_attributed() -> None:
    src = FocusCostSource(AZURE, clock=lambda: NOW, tag_aliases=TRUTH["aliases"])
    s, _ = showback(src, "team", OCT, NOV)
    got = {r.key: r.usd for r in s.by_key.itertuples()}
    assert got == pytest.approx(TRUTH["effective_by_team"], abs=1e-9)
    s_env, _ = showback(src, "env", OCT, NOV)
    got_env = {r.key: r.usd for r in s_env.by_key.itertuples()}
    assert got_env == pytest.approx(TRUTH["effective_by_env"], abs=1e-9)
    assert s.load_report is not None
    assert {a["kind"] for a in s.load_report["anomalies"]} == set(TRUTH["planted"])


def test_without_the_alias_environment_stays_its_own_key() -> None:
    """Folding case and spaces is always on; renaming a spelling needs the alias map."""
    result = scan(AZURE, "env", OCT, NOV)
    by = dict(zip(result.frame["env"], result.frame["usd"], strict=True))
    assert "staging" not in by  # vm-climate-01 says environment=staging
    assert result.merges["env"] == [" Env ", "Env"]
    assert "environment" in result.merges and result.merges["environment"] == ["Environment"]


def test_strict_refuses_naming_the_file_and_rows() -> None:
    with AZURE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    first_refund = next(
        i + 2
        for i, r in enumerate(rows)
        if r["ChargeCategory"] == "Usage"
        and Decimal(r["EffectiveCost"]) < 0
        and r["ChargeClass"] != "Correction"
    )
    src = FocusCostSource(AZURE, clock=lambda: NOW, strict=True)
    with pytest.raises(
        CostSourceError,
        match=rf"azure_real.csv: negative EffectiveCost .*row {first_refund}: 'Usage'",
    ):
        src.costs({"team": "forecasting"}, OCT, NOV)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad_missing_column.csv", r"bad_missing_column.csv: missing required FOCUS column"),
        ("bad_dates.csv", r"bad_dates.csv: ChargePeriodStart must be an ISO 8601.*row 5:"),
    ],
)
def test_unreadable_files_are_refused_even_when_lenient(name: str, message: str) -> None:
    with pytest.raises(CostSourceError, match=message):
        scan(FIXTURES / name, "team", OCT, NOV)


def test_a_model_cost_lookup_reads_through_the_variants() -> None:
    """A model's cost lookup sees Team/ team/Environment as team/env."""
    src = FocusCostSource(AZURE, clock=lambda: NOW, tag_aliases=TRUTH["aliases"])
    # vm-forecast-02 is tagged Team / Environment / "Purpose ": 30 days x 24 h at $0.192,
    # amortized from its reservation (Committed).
    recs = src.costs({"team": "forecasting", "env": "prod"}, OCT, NOV, purpose="serve")
    assert [r.usd for r in recs] == pytest.approx([24 * 0.192] * 30)
    assert {r.capacity for r in recs} == {"committed"}
    billed = FocusCostSource(
        AZURE, cost_column="BilledCost", clock=lambda: NOW, tag_aliases=TRUTH["aliases"]
    )
    assert billed.costs({"team": "forecasting"}, OCT, NOV, purpose="serve") == []  # $0 days
    with pytest.raises(CostSourceError, match="tagged team=nobody"):
        src.costs({"team": "nobody"}, OCT, NOV)


def test_azure_export_folder_reads_only_the_newest_run(tmp_path: Path) -> None:
    """<export>/<YYYYMMDD-YYYYMMDD>/<run>/part_*.csv.gz: every run re-exports the month to
    date, so an older run must not be added. Newest by write time, not by name."""
    period = tmp_path / "costaware-focus" / "20261001-20261031"
    old_run, new_run = period / "zzzz-run-older", period / "aaaa-run-newer"
    old_run.mkdir(parents=True)
    new_run.mkdir(parents=True)
    lines = AZURE.read_text().splitlines(keepends=True)
    (old_run / "part_0_0001.csv").write_text("".join(lines[:40]))  # the month so far, then
    half = len(lines) // 2
    with gzip.open(new_run / "part_0_0001.csv.gz", "wt") as fh:
        fh.write("".join(lines[:half]))
    with gzip.open(new_run / "part_1_0001.csv.gz", "wt") as fh:
        fh.write("".join([lines[0], *lines[half:]]))
    (new_run / "manifest.json").write_text("{}")
    for f in old_run.iterdir():
        os.utime(f, (1_700_000_000, 1_700_000_000))
    for f in new_run.iterdir():
        os.utime(f, (1_800_000_000, 1_800_000_000))
    result = scan(tmp_path, "team", OCT, NOV, aliases=TRUTH["aliases"])
    assert [Path(f).name for f in result.skipped_files] == ["part_0_0001.csv"]
    assert sorted(Path(f).name for f in result.files) == [
        "part_0_0001.csv.gz",
        "part_1_0001.csv.gz",
    ]
    own = file_sums(AZURE)
    assert result.reconciliation.file_effective == own["EffectiveCost"]
    by = dict(zip(result.frame["team"].fillna("(untagged)"), result.frame["usd"], strict=True))
    assert by == pytest.approx(TRUTH["effective_by_team"], abs=1e-9)
    # The same folder as a cost source, and a missing one.
    src = FocusCostSource(tmp_path, clock=lambda: NOW, tag_aliases=TRUTH["aliases"])
    assert src.scan("team", OCT, NOV).reconciliation.ok
    shutil.rmtree(tmp_path / "costaware-focus")
    with pytest.raises(CostSourceError, match="has no .csv, .csv.gz or .parquet"):
        scan(tmp_path, "team", OCT, NOV)


def test_model_config_options_strict_and_aliases(tmp_path: Path) -> None:
    """cost_source_options as a model YAML gives them: tag_aliases, strict; typos refused."""
    from costaware.costs import make_cost_source
    from costaware.errors import ConfigError
    from costaware.store.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    opts = {"path": str(AZURE), "tag_aliases": {"Environment": "env"}}
    lenient = make_cost_source("focus", ledger, opts)
    assert lenient.scan("env", OCT, NOV).reconciliation.ok  # type: ignore[attr-defined]
    strict = make_cost_source("focus", ledger, {**opts, "strict": True})
    with pytest.raises(CostSourceError, match="negative EffectiveCost"):
        strict.scan("env", OCT, NOV)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"unknown focus cost source option\(s\) \['strickt'\]"):
        make_cost_source("focus", ledger, {**opts, "strickt": True})
    with pytest.raises(ConfigError, match="chain"):
        make_cost_source("focus", ledger, {**opts, "tag_aliases": {"a": "b", "b": "c"}})
    ledger.dispose()
