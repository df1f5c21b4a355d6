"""Any tag, any grouping: tag-key normalization and aliases (tags.py), `--by` with tag:KEY,
service/account/region and several keys at once, the untagged share and biggest untagged
resources for the chosen key, and the `costaware costs` command on a real-shaped export.
Expected numbers are computed here from the CSV with the csv module, json and Decimal."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from costs_helpers import NOW

from costaware.app.cli_costs import add_costs_commands
from costaware.costs.focus import FocusCostSource
from costaware.costs.focus_stream import parse_by
from costaware.costs.showback import UNTAGGED, render_text, showback, write_report
from costaware.costs.tags import BAD_JSON, CONFLICT, MERGED, NO_BRACES, TagNormalizer, parse_aliases
from costaware.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "focus"
AZURE = FIXTURES / "azure_real.csv"
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
ALIASES = {"environment": "env"}


def csv_rows() -> list[dict[str, str]]:
    with AZURE.open(newline="") as fh:
        return list(csv.DictReader(fh))


def raw_tags(text: str) -> dict[str, str]:
    """The tags of a row read by hand: JSON, or Azure's brace-less form; else none."""
    for candidate in (text, "{" + text + "}"):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        return value if isinstance(value, dict) else {}
    return {}


# -- tags.py --------------------------------------------------------------------------------
def test_keys_are_trimmed_case_folded_and_aliased_and_merges_recorded() -> None:
    n = TagNormalizer.from_config({"Environment ": "ENV"})
    tags, flags = n.normalize({" Team": "ml ", "environment": "prod", "org": "x"})
    assert tags == {"team": "ml", "env": "prod", "org": "x"}
    assert flags == MERGED
    assert n.merges() == {"env": ["environment"], "team": [" Team"]}


def test_conflicting_spellings_keep_the_canonical_one_and_are_flagged() -> None:
    n = TagNormalizer()
    tags, flags = n.normalize({"Env": "prod", "env": "dev", "ENV ": "qa"})
    assert tags == {"env": "dev"} and flags & CONFLICT and flags & MERGED
    same, flags_same = n.normalize({"Env": "prod", "env": "prod"})
    assert same == {"env": "prod"} and not flags_same & CONFLICT


def test_tag_text_forms() -> None:
    n = TagNormalizer()
    assert n.parse('"env": "prod","team":"a"') == ({"env": "prod", "team": "a"}, NO_BRACES)
    assert n.parse("env=prod") == ({}, BAD_JSON)
    assert n.parse("[1, 2]") == ({}, BAD_JSON)
    assert n.parse(None) == ({}, 0) and n.parse("NULL") == ({}, 0)
    assert n.parse([("Env", "prod")]) == ({"env": "prod"}, MERGED)  # a Parquet MAP


def test_alias_maps_are_checked() -> None:
    with pytest.raises(ConfigError, match="chain"):
        parse_aliases({"environment": "env", "env": "stage"})
    with pytest.raises(ConfigError, match="maps to both"):
        parse_aliases({"Env": "a", "env ": "b"})
    with pytest.raises(ConfigError, match="empty tag key"):
        parse_aliases({" ": "env"})


def test_by_is_parsed_and_checked() -> None:
    assert parse_by("team,env") == ["team", "env"]
    assert parse_by("tag:Cost Center, service") == ["tag:Cost Center", "service"]
    with pytest.raises(ConfigError, match=r"group by 'colour'; allowed: tag:KEY"):
        parse_by("colour")
    with pytest.raises(ConfigError, match="name each dimension once"):
        parse_by("team,team")


# -- grouping a real-shaped export ------------------------------------------------------
def test_group_by_two_keys_at_once() -> None:
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    n = TagNormalizer.from_config(ALIASES)
    for r in csv_rows():
        tags, _ = n.normalize(raw_tags(r["Tags"]))
        expected[(tags.get("team", UNTAGGED), tags.get("env", UNTAGGED))] += Decimal(
            r["EffectiveCost"]
        )
    src = FocusCostSource(AZURE, clock=lambda: NOW, tag_aliases=ALIASES)
    s, charges = showback(src, "team,env", OCT, NOV)
    got = {(r.team or UNTAGGED, r.env or UNTAGGED): r.usd for r in s.by_key.itertuples()}
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-9)
    assert "forecasting / prod" in set(s.by_key["key"])
    assert s.dims == ("team", "env") and s.by == "team,env"


def test_any_tag_key_with_its_untagged_share_and_biggest_untagged_resources() -> None:
    lacking: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for r in csv_rows():
        usd = Decimal(r["EffectiveCost"])
        total += usd
        if "org" not in {k.strip().casefold() for k in raw_tags(r["Tags"])}:
            key = r["ResourceId"] if r["ResourceId"] != "NULL" else None
            lacking[key] += usd  # type: ignore[index]
    src = FocusCostSource(AZURE, clock=lambda: NOW, tag_aliases=ALIASES)
    s, _ = showback(src, "tag:org", OCT, NOV, top=3)
    assert s.total_usd == pytest.approx(float(total))
    assert s.untagged_usd == pytest.approx(float(sum(lacking.values())))
    assert s.untagged_share == pytest.approx(float(sum(lacking.values()) / total))
    biggest = sorted(lacking.items(), key=lambda kv: kv[1], reverse=True)[:3]
    assert list(s.top_untagged["resource_id"]) == [k for k, _ in biggest]
    assert list(s.top_untagged["usd"]) == pytest.approx([float(v) for _, v in biggest])
    text = render_text(s)
    assert "tag key 'org' merged from [' org']" in text
    assert "anomaly negative_usage: 2 charge(s), $-3.56 effective" in text


@pytest.mark.parametrize(
    ("dim", "column"),
    [("service", "ServiceName"), ("account", "SubAccountId"), ("region", "RegionId")],
)
def test_columns_as_dimensions(dim: str, column: str) -> None:
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for r in csv_rows():
        expected[r[column] if r[column] != "NULL" else UNTAGGED] += Decimal(r["EffectiveCost"])
    s, _ = showback(FocusCostSource(AZURE, clock=lambda: NOW), dim, OCT, NOV)
    got = dict(zip(s.by_key["key"], s.by_key["usd"], strict=True))
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-9)


def test_costs_command_by_two_keys_with_aliases_and_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    parser = argparse.ArgumentParser(prog="costaware")
    add_costs_commands(parser.add_subparsers(dest="command"))
    base = ["costs", "--from", "2026-10-01", "--to", "2026-11-01", "--source", "focus"]
    args = parser.parse_args(
        [
            *base,
            "--path",
            str(AZURE),
            "--by",
            "team,env",
            "--alias",
            "environment=env",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "cost by team,env, 2026-10-01 .. 2026-11-01" in out
    assert "climate / staging" in out
    assert "reconcile to the file's own sums" in out
    assert "tag key 'env' merged from [' Env ', 'Env', 'Environment', 'environment']" in out
    html = (tmp_path / "out" / "showback_team_env_2026-10-01_2026-11-01.html").read_text()
    assert "Loading the export" in html and "negative_usage" in html
    strict = parser.parse_args([*base, "--path", str(AZURE), "--strict"])
    with pytest.raises(Exception, match="negative EffectiveCost"):
        strict.func(strict)
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--path", str(AZURE), "--alias", "environment"])
    with pytest.raises(ConfigError, match="apply to --source focus only"):
        ledger_args = parser.parse_args(
            ["costs", "--from", "2026-10-01", "--to", "2026-11-01", "--strict"]
        )
        ledger_args.func(ledger_args)


def test_report_files_for_a_tag_key_with_spaces(tmp_path: Path) -> None:
    src = FocusCostSource(AZURE, clock=lambda: NOW)
    s, charges = showback(src, "tag:org,service", OCT, NOV)
    paths = write_report(charges, s, tmp_path)
    assert Path(paths["csv"]).name == "showback_tag_org_service_2026-10-01_2026-11-01.csv"
    head = Path(paths["csv"]).read_text().splitlines()[0]
    assert head.startswith("tag:org,service,")
