"""SQL is built only with bound parameters: quotes, ``;`` and comment markers fed through
every filter that reaches a database match only themselves, on SQLite and PostgreSQL.

Every table is dumped before and after: an injected ``DROP`` or ``DELETE`` (or an
``OR '1'='1'`` that widened a filter) would show as a missing table, a changed row or a
filter returning more than the one row stored under that literal value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from costaware.app.cli import main as cli_main
from costaware.costs.cache import ResponseCache
from costaware.costs.gcp import GcpBillingExportSource
from costaware.costs.ledger_source import LedgerCostSource
from costaware.costs.showback import load_charges, summarize
from costaware.errors import ConfigError, CostSourceError
from costaware.store.ledger import Ledger, metadata

from ..costs.costs_fakes import FakeCloudServer

NASTY = (
    "'",
    '"',
    ";",
    "--",
    "' OR '1'='1",
    "); DROP TABLE costs; --",
    "x'; DELETE FROM decisions WHERE '1'='1",
    '" OR ""="',
    "\\",
    "%",
    "_",
    "elec2' --",
)
DAY = dt.datetime(2026, 11, 2)
START, END = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
TABLES = ("batches", "decisions", "costs", "audit", "label_files")


def _short(v: str) -> str:
    """Columns of 20 characters (purpose, action) get the first 20: PostgreSQL enforces it."""
    return v[:20]


def _fill(led: Ledger) -> None:
    """Rows stored under each nasty value (as model, run id, batch id, purpose, tag) and one
    ordinary model, so a widened filter would return rows it must not."""
    for i, v in enumerate(("elec2", *NASTY)):
        led.record_batch(
            model=v, batch_id=v, path=f"/data/{i}", rows=10, sha256=f"{i:064d}", status="accepted",
            message="", run_id=v, start_ts=DAY + dt.timedelta(hours=i),
        )  # fmt: skip
        led.record_batch(
            model="elec2", batch_id=f"b{i}_{v}", path=f"/d/{i}", rows=5, sha256=f"{i:064d}",
            status="quarantined", message=v, run_id=f"r{i}",
        )  # fmt: skip
        led.record_decision(
            model=v, run_id=v, batch_id=v, action="skip", reason=v, details={"why": v},
            dry_run=False,
        )  # fmt: skip
        led.record_cost(
            model=v, run_id=v, purpose=_short(v), attempt=v, usd=1.0 + i, capacity="spot",
            instance_type="m5.xlarge", runtime_s=60.0, interruptions=0, price_source="static",
            usage_date=DAY, tags={"model": v, "team": v, "env": "dev", "purpose": _short(v)},
        )  # fmt: skip
        led.record_audit(
            model=v, actor=v, run_id=v, action="promote", from_version=None, to_version="1",
            metrics={"m": v}, reason=v, status="pending",
        )  # fmt: skip
        led.record_label_file(
            model=v, name=v, sha256=f"{i:064d}", status="accepted", rows=3, path=v, message=v
        )


def _dump(led: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table (and proof that each table still exists)."""
    with led.engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert set(TABLES) <= names, f"tables gone: {set(TABLES) - names}"
        tables = [metadata.tables[t] for t in TABLES]
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))] for t in tables
        }


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    led = Ledger(db_url)
    _fill(led)
    yield led
    led.dispose()


def test_ledger_filters_match_only_the_literal_value(ledger: Ledger) -> None:
    before = _dump(ledger)
    for i, value in enumerate(NASTY, start=1):
        one = [
            ledger.batches(value),
            ledger.accepted_batches(value),
            [ledger.batch(value, value)],
            [ledger.batch("elec2", f"b{i}_{value}")],
            ledger.decisions(value),
            [ledger.decision(value, value)],
            [ledger.decision_for_batch(value, value)],
            ledger.run_costs(value, value, _short(value)),
            ledger.costs(model=value),
            ledger.costs(purpose=_short(value)),
            ledger.costs(
                model=value, start=DAY, end=DAY + dt.timedelta(days=1), purpose=_short(value)
            ),
            ledger.audit(value),
            [ledger.operation(value, value, "promote")],
            [ledger.last_promotion(value)],
            ledger.label_files(value),
        ]
        for rows in one:
            assert len(rows) == 1 and rows[0] is not None, (value, rows)
            row = rows[0]
            assert value in (row.get("model"), row.get("message")), row
        # Filters on values nobody stored find nothing (a widened WHERE would find rows).
        assert ledger.batches(value + "'") == [] and ledger.decision(value, "nope") is None
        assert ledger.costs(model=value, purpose="serve") == []
        with ledger.model_lock(value):
            pass
    assert _dump(ledger) == before


def test_ledger_updates_touch_only_the_literal_row(ledger: Ledger) -> None:
    for value in NASTY:
        before = _dump(ledger)
        ledger.set_outcome(value, value, "promoted")
        ledger.finish_operation(value, value, "promote", to_version="2")
        after = _dump(ledger)
        changed = {
            t: [(b, a) for b, a in zip(before[t], after[t], strict=True) if b != a] for t in TABLES
        }
        assert {t: len(c) for t, c in changed.items()} == {
            "batches": 0, "decisions": 1, "costs": 0, "audit": 1, "label_files": 0
        }, value  # fmt: skip
        assert ledger.decision(value, value)["outcome"] == "promoted"
        op = ledger.operation(value, value, "promote")
        assert (op["status"], op["to_version"]) == ("done", "2")
    assert ledger.decision("elec2", "elec2")["outcome"] is None
    assert ledger.operation("elec2", "elec2", "promote")["status"] == "pending"


def test_cost_source_showback_and_api_cache(ledger: Ledger) -> None:
    before = _dump(ledger)
    source = LedgerCostSource(ledger)
    for i, v in enumerate(NASTY, start=1):
        tags = {"model": v, "team": v, "env": "dev"}
        recs = source.costs(tags, START, END, purpose=_short(v))
        assert [(r.usd, r.run_id, r.tags["team"]) for r in recs] == [(1.0 + i, v, v)]
    charges = load_charges(source, START, END)
    s = summarize(charges, "team", START, END)
    by = dict(zip(s.by_key["key"], s.by_key["usd"], strict=True))
    assert by == {v: 1.0 + i for i, v in enumerate(("elec2", *NASTY))}
    for v in NASTY:
        with pytest.raises(ConfigError, match="allowed"):
            summarize(charges, v, START, END)
    cache = ResponseCache(ledger)
    n0 = cache.entries()
    for v in NASTY:
        cache.put(v, {"filter": v}, {"answer": v}, final=True, now=DAY)
    for v in NASTY:
        assert cache.get(v, {"filter": v}, now=DAY) == {"answer": v}
        assert cache.entries(v) == 1
    assert cache.entries() == n0 + len(NASTY)
    assert _dump(ledger) == before


def test_costs_cli_options(
    ledger: Ledger,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COSTAWARE_DB_URL", db_url)
    before = _dump(ledger)
    dates = ["--from", START.isoformat(), "--to", END.isoformat()]
    for v in NASTY:
        for argv in (
            ["costs", "--by", v, *dates],
            ["costs", "--source", v, *dates],
            ["costs", "--from", f"2026-11-01{v}", "--to", END.isoformat()],
            ["costs", "--from", START.isoformat(), "--to", v],
        ):
            # Refused before any query: argparse (not one of the choices, not a date) or
            # the grouping's own check (--by takes any tag:KEY, so it is not a choice).
            try:
                code = cli_main(argv)
            except SystemExit as exc:
                code = exc.code
            assert code == 2, argv
    capsys.readouterr()
    assert cli_main(["costs", "--by", "team", *dates]) == 0
    out = capsys.readouterr().out.splitlines()
    # One line per team: its literal name, then exactly its own cost.
    table = out[1 : next(i for i, line in enumerate(out) if line.startswith("  purpose:"))]
    shown = {}
    for line in table:
        m = re.fullmatch(r"  (.+?) +\$ +([\d,.]+) +[\d.]+%.*", line)
        assert m, line
        shown[m.group(1)] = float(m.group(2))
    assert shown == {v: 1.0 + i for i, v in enumerate(("elec2", *NASTY))}
    assert _dump(ledger) == before


# -- BigQuery: the values travel as query parameters, never in the SQL text -------------
TABLE = "acme-billing.billing.gcp_billing_export_v1_0A1B2C"


@pytest.fixture(scope="module")
def bigquery_server() -> Iterator[FakeCloudServer]:
    server = FakeCloudServer()
    server.start()
    yield server
    server.stop()


def _bq_source(server: FakeCloudServer, table: str = TABLE) -> GcpBillingExportSource:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project="acme-ml",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": server.url},
    )
    return GcpBillingExportSource(client, table, clock=lambda: dt.datetime(2026, 12, 10))


def _query(server: FakeCloudServer, tags: dict[str, str]) -> tuple[str, dict[str, Any], list]:
    """Run the billing query for ``tags``; the fake answers one row when (and only when) the
    parameters it received are those literal label values, as BigQuery would."""
    server.reset()
    want = sorted((k, v) for k, v in tags.items())

    def answer(sql: str, params: dict[str, Any]) -> tuple[list[dict[str, str]], list[list[Any]]]:
        got = [(params[f"k{i}"], params[f"v{i}"]) for i in range(len(want))]
        fields = [
            {"name": "usage_date", "type": "DATE"},
            {"name": "purpose", "type": "STRING"},
            {"name": "capacity", "type": "STRING"},
            {"name": "net_cost", "type": "FLOAT"},
        ]
        return fields, ([["2026-11-02", "retrain", "spot", 1.25]] if got == want else [])

    server.bq_answer = answer
    recs = _bq_source(server).costs(tags, START, END)
    (req,) = [r for r in server.requests if r["path"].endswith("/queries")]
    params = {p["name"]: p["parameterValue"]["value"] for p in req["body"]["queryParameters"]}
    return req["body"]["query"], params, recs


def test_bigquery_values_are_query_parameters(bigquery_server: FakeCloudServer) -> None:
    plain_sql, _, _ = _query(bigquery_server, {"model": "a", "team": "b", "env": "c"})
    for v in NASTY:
        tags = {"model": v, "team": f"t{v}", "env": "prod"}
        sql, params, recs = _query(bigquery_server, tags)
        # The very same text as for harmless values: nothing of the values is in it.
        assert sql == plain_sql
        assert {params[f"k{i}"]: params[f"v{i}"] for i in range(3)} == tags
        assert [(r.usd, r.usage_date.isoformat()) for r in recs] == [(1.25, "2026-11-02")]
    # The table name is the one part of the text that is not a parameter: it is checked
    # against project.dataset.table before any request is sent.
    for v in NASTY:
        if v == "_":
            continue  # a legal character in a table name
        bigquery_server.reset()
        with pytest.raises(CostSourceError, match="allowed: project.dataset.table"):
            _bq_source(bigquery_server, f"{TABLE}{v}").costs({"model": "a"}, START, END)
        with pytest.raises(CostSourceError, match="allowed: project.dataset.table"):
            _bq_source(bigquery_server, f"acme.billing`{v}`.t").costs({"model": "a"}, START, END)
        assert bigquery_server.requests == []
