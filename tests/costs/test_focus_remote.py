"""FOCUS exports where clouds deliver them, read through the storage layer: AWS Data Exports'
FOCUS layout on S3 (moto's server over real HTTP, credentials only in an Airflow
connection), Parquet with ``Tags`` as a MAP and AWS's ``user:`` tag-key prefix."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from costs_helpers import NOW

from costaware.costs import make_cost_source
from costaware.costs.chargeback import chargeback
from costaware.costs.showback import UNTAGGED, showback
from costaware.store.ledger import Ledger
from tests.conftest import moto_server

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "focus"
CONN_ID = "costaware_focus_s3_test"  # its own id: Airflow caches filesystems per connection
BUCKET = "billing-exports"
EXPORT = "focus/costaware-focus"
TAG_KEYS = {
    "model": "user:model",
    "team": "user:team",
    "env": "user:env",
    "purpose": "user:purpose",
}
START, END = dt.date(2026, 10, 1), dt.date(2026, 11, 20)


def aws_tables() -> dict[str, pa.Table]:
    """costs.csv as AWS Data Exports delivers FOCUS 1.0: Parquet per billing period, costs as
    double, periods as timestamps, Tags as MAP<string, string> with ``user:`` keys."""
    with (FIXTURES / "costs.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, list[dict[str, object]]] = defaultdict(list)
    for r in rows:
        tags = json.loads(r["Tags"])
        out[r["BillingPeriodStart"][:7]].append(
            {
                **{k: (None if v == "NULL" or v == "" else v) for k, v in r.items()},
                "BilledCost": float(r["BilledCost"]),
                "EffectiveCost": float(r["EffectiveCost"]),
                "ChargePeriodStart": dt.datetime.fromisoformat(r["ChargePeriodStart"]),
                "ChargePeriodEnd": dt.datetime.fromisoformat(r["ChargePeriodEnd"]),
                # A stray capital, as consoles let people type: folded, and reported.
                "Tags": [(f"user:{'Team' if k == 'team' else k}", v) for k, v in tags.items()],
            }
        )
    schema = {
        "BilledCost": pa.float64(),
        "EffectiveCost": pa.float64(),
        "ChargePeriodStart": pa.timestamp("ms", tz="UTC"),
        "ChargePeriodEnd": pa.timestamp("ms", tz="UTC"),
        "Tags": pa.map_(pa.string(), pa.string()),
    }
    tables = {}
    for period, items in out.items():
        cols = {c: [i[c] for i in items] for c in items[0]}
        tables[period] = pa.table(
            {c: pa.array(v, schema.get(c, pa.string())) for c, v in cols.items()}
        )
    return tables


@pytest.fixture(scope="module")
def s3_export() -> Iterator[str]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
        conn["extra"] = {"endpoint_url": url, "region_name": "us-east-1"}  # type: ignore[assignment]
        mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        for period, table in aws_tables().items():
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, row_group_size=40)  # several row groups per file
            key = f"{EXPORT}/data/BILLING_PERIOD={period}/costaware-focus-00001.snappy.parquet"
            s3.put_object(Bucket=BUCKET, Key=key, Body=sink.getvalue().to_pybytes())
            manifest = {"dataFiles": [f"s3://{BUCKET}/{key}"], "billingPeriod": period}
            s3.put_object(
                Bucket=BUCKET,
                Key=f"{EXPORT}/metadata/BILLING_PERIOD={period}/costaware-focus-Manifest.json",
                Body=json.dumps(manifest).encode(),
            )
        yield f"s3://{BUCKET}/{EXPORT}"


def test_showback_from_an_s3_data_exports_prefix(s3_export: str, tmp_path: Path) -> None:
    expected: dict[str, Decimal] = defaultdict(Decimal)
    with (FIXTURES / "costs.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            expected[json.loads(r["Tags"]).get("team", UNTAGGED)] += Decimal(r["EffectiveCost"])
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    src = make_cost_source(
        "focus", ledger, {"path": s3_export, "conn_id": CONN_ID, "tag_keys": TAG_KEYS}
    )
    src.clock = lambda: NOW  # type: ignore[attr-defined]
    s, _ = showback(src, "team", START, END)
    got = dict(zip(s.by_key["key"], s.by_key["usd"], strict=True))
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-9)
    report = s.load_report
    assert report is not None
    assert (
        sorted(Path(f).name for f in report["files"])
        == ["costaware-focus-00001.snappy.parquet"] * 2
    )
    assert all(f.startswith(f"s3://{CONN_ID}@{BUCKET}/{EXPORT}/data/") for f in report["files"])
    assert report["tag_key_merges"] == {"user:team": ["user:Team"]}
    assert report["reconciliation"]["ok"] and report["reconciliation"]["rows_read"] == 132
    # A model's cost lookup over S3 too: elec2's retrains, as in the local fixture's test.
    recs = src.costs({"model": "elec2", "team": "forecasting", "env": "prod"}, START, END)
    assert [r.usage_date.isoformat() for r in recs][:2] == ["2026-10-04", "2026-10-13"]
    assert recs[0].usd == pytest.approx(0.35 * 0.0741)
    ledger.dispose()


# -- GCP's FOCUS view in BigQuery, through the gcp client and its Airflow connection -------
VIEW = "acme-billing.focus.focus_v1_0"
BQ_TYPES = {"BilledCost": "FLOAT", "EffectiveCost": "FLOAT", "ChargePeriodStart": "TIMESTAMP",
            "ChargePeriodEnd": "TIMESTAMP"}  # fmt: skip


def focus_view(
    sql: str, params: dict[str, object]
) -> tuple[list[dict[str, str]], list[list[object]]]:
    """The stand-in's answer: the selected columns of the view's rows in the window (costs.csv
    with GCP's tag form, [{key, value}] JSON; timestamps as the REST API sends them, int64 µs)."""
    cols = [c.strip(" `\n") for c in sql.split("SELECT", 1)[1].split("FROM", 1)[0].split(",")]
    lo = dt.datetime.fromisoformat(str(params["start"]).replace(" ", "T"))
    hi = dt.datetime.fromisoformat(str(params["end"]).replace(" ", "T"))
    with (FIXTURES / "costs.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if cols == ["*"]:
        cols = list(rows[0])
    out = []
    for r in rows:
        t0 = dt.datetime.fromisoformat(r["ChargePeriodStart"])
        if not (lo.replace(tzinfo=dt.UTC) <= t0 < hi.replace(tzinfo=dt.UTC)):
            continue
        values: list[object] = []
        for c in cols:
            if c == "Tags":
                values.append(
                    json.dumps([{"key": k, "value": v} for k, v in json.loads(r[c]).items()])
                )
            elif c in ("ChargePeriodStart", "ChargePeriodEnd"):
                values.append(int(dt.datetime.fromisoformat(r[c]).timestamp() * 1_000_000))
            else:
                values.append(None if r[c] in ("NULL", "") else r[c])
        out.append(values)
    fields = [{"name": c, "type": BQ_TYPES.get(c, "STRING")} for c in cols]
    return fields, out


def test_showback_from_gcp_focus_view_in_bigquery(
    gcloud: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in list(os.environ):
        if key.startswith("GOOGLE_"):
            monkeypatch.delenv(key)
    extra = {"is_anonymous": True, "project": "acme-ml", "api_endpoint": gcloud.url}  # type: ignore[attr-defined]
    conn = {"conn_type": "google_cloud_platform", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))
    gcloud.bq_answer = focus_view  # type: ignore[attr-defined]
    gcloud.bq_page_size = 25  # type: ignore[attr-defined]  # several pages: a stream
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    src = make_cost_source("focus", ledger, {"bigquery_view": VIEW})
    src.clock = lambda: NOW  # type: ignore[attr-defined]
    s, _ = showback(src, "team,env", START, END)
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with (FIXTURES / "costs.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            t = json.loads(r["Tags"])
            expected[(t.get("team", UNTAGGED), t.get("env", UNTAGGED))] += Decimal(
                r["EffectiveCost"]
            )
    got = {(r.team or UNTAGGED, r.env or UNTAGGED): r.usd for r in s.by_key.itertuples()}
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-9)
    assert s.load_report and s.load_report["files"] == [f"bigquery:{VIEW}"]
    assert s.load_report["reconciliation"]["rows_read"] == 132
    queries = [q for q in gcloud.requests if q["path"].endswith("/queries")]  # type: ignore[attr-defined]
    sent = queries[0]["body"]
    assert f"FROM `{VIEW}`" in sent["query"] and "@start" in sent["query"]
    assert {p["name"] for p in sent["queryParameters"]} == {"start", "end"}
    # The month's chargeback from the view (all its columns): every October dollar.
    table = chargeback(src, START)
    with (FIXTURES / "costs.csv").open(newline="") as fh:
        october = [r for r in csv.DictReader(fh) if r["ChargePeriodStart"] < "2026-11"]
    own = sum((Decimal(r["EffectiveCost"]) for r in october), Decimal(0))
    assert round(Decimal(repr(float(table["EffectiveCost"].sum()))), 6) == own
    sent_sql = [(q["body"] or {}).get("query", "") for q in gcloud.requests]  # type: ignore[attr-defined]
    assert any(q.startswith("SELECT *\n") for q in sent_sql)
    ledger.dispose()
