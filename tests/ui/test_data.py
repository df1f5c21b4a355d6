"""The Costaware page's data, from a ledger and report folders written here by hand.

Every expected number below is worked out by hand from the rows the test writes (not by
calling the code's own helpers), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import pytest

from costaware.app.ui import data, page
from costaware.app.ui.svg import Series, line_chart
from costaware.store import storage
from costaware.store.ledger import Ledger

from ..conftest import make_settings

T = dt.datetime
TAGS = {"model": "m1", "team": "energy", "env": "dev"}


def _decision(led: Ledger, run: str, batch: str, when: T, action: str, outcome: str | None, **det):
    details = {
        "numbers": {"budget left this month ($)": det.pop("budget_left", None)},
        "gain": {"points": det.pop("gain", 0.0)},
        "cost": {"usd": det.pop("cost", 0.02)},
        "drift": {"drift_share": 0.0, "drifted_columns": det.pop("drifted", [])},
        "champion_points": det.pop("champion_points", None),
        **det,
    }
    led.record_decision(
        model="m1",
        run_id=run,
        batch_id=batch,
        action=action,
        reason=f"reason of {run}",
        details=details,
        dry_run=False,
        outcome=outcome,
        data_time=when,
    )


def _batch(led: Ledger, batch: str, rows: int, status: str, start: T, run: str) -> None:
    led.record_batch(
        model="m1",
        batch_id=batch,
        path=f"/x/{batch}.parquet",
        rows=rows,
        sha256="0" * 64,
        status=status,
        message="column x: 3 values outside [0, 1] (rows 4, 9, 11)"
        if status == "quarantined"
        else "",
        start_ts=start,
        end_ts=start + dt.timedelta(days=6),
        run_id=run,
    )


def _cost(led: Ledger, run: str, attempt: str, usd: float | None, when: T, **kw) -> None:
    led.record_cost(
        model="m1",
        run_id=run,
        purpose="retrain",
        attempt=attempt,
        usd=usd,
        status="final" if usd is not None else "lost",
        capacity=kw.get("capacity", "spot"),
        instance_type=kw.get("instance_type", "m5.2xlarge"),
        runtime_s=kw.get("runtime_s", 360.0),
        price_source="static",
        usage_date=when,
        tags={**TAGS, **kw.get("tags", {})},
    )


def _audit(led: Ledger, run: str, action: str, frm, to, points, when: T, status="done") -> None:
    led.record_audit(
        model="m1",
        action=action,
        actor="alice" if action == "rollback" else "airflow:retrain_m1",
        run_id=run,
        from_version=frm,
        to_version=to,
        metrics={"challenger_points": points} if action != "rollback" else {},
        usd=0.0,
        reason=f"{action} reason",
        data_time=when,
        status=status,
    )


@pytest.fixture
def state(tmp_path: Path, db_url: str):
    settings = make_settings(tmp_path / "home", db_url)
    led = Ledger(db_url)
    w = [T(1996, 5, 7) + dt.timedelta(weeks=i) for i in range(5)]
    # Batches: 100, 200, 50 (quarantined), 300 rows.
    _batch(led, "b0", 100, "accepted", w[0], "r0")
    _batch(led, "b1", 200, "warned", w[1], "r1")
    _batch(led, "bq", 50, "quarantined", w[2], "rq")
    _batch(led, "b3", 300, "accepted", w[3], "r3")
    _decision(led, "r0", "b0", w[0], "skip", "skipped", budget_left=5.0)
    _decision(
        led,
        "r1",
        "b1",
        w[1],
        "retrain",
        "promoted",
        gain=2.5,
        cost=0.03,
        budget_left=5.0,
        champion_points=60.0,
        realized_gain=1.75,
    )
    _decision(
        led,
        "r3",
        "b3",
        w[3],
        "approve",
        None,
        gain=4.0,
        cost=0.5,
        budget_left=4.9,
        champion_points=58.5,
    )
    # r1 trained twice: a reclaimed spot attempt and its resume; r3 has one unknown attempt.
    _cost(led, "r1", "a1", 0.01, T(1996, 5, 31), runtime_s=360.0)
    _cost(led, "r1", "a2", 0.02, T(1996, 6, 1), runtime_s=720.0)
    _cost(led, "r3", "a1", None, T(1996, 6, 2), runtime_s=None)
    _cost(led, "rx", "a1", 0.5, T(1996, 6, 3), capacity="on_demand", tags={"team": "other"})
    # v1 promoted at 60, v2 at 62.5, a reject, then a rollback to v1.
    _audit(led, "r1", "promote", None, "1", 60.0, w[1])
    _audit(led, "r2", "promote", "1", "2", 62.5, w[2])
    _audit(led, "r3", "reject", "2", "2", 61.0, w[3])
    _audit(led, "rb", "rollback", "2", "1", None, w[4])
    # Reports: drift in b1's summary.json; b0 has only its decision page.
    rep = settings.reports("m1")
    storage.write_text(rep / "b0" / "index.html", "<p>b0</p>")
    storage.write_json(
        rep / "b1" / "summary.json",
        {
            "drift": {
                "columns": [
                    {"column": "x", "score": 0.3, "method": "psi", "threshold": 0.2},
                    {"column": "y", "score": None, "method": "psi", "threshold": 0.2},
                ]
            },
            "performance": {"labelled_rows": 150, "metric": "roc_auc"},
        },
    )
    storage.write_text(rep / "b1" / "index.html", "<p>b1</p>")
    storage.write_text(rep / "b1" / "drift.html", "<p>drift</p>")
    storage.write_text(rep / "b1" / "notes.txt", "not a report file")
    return settings, led


def test_timeline_champion_spend_from_the_ledger(state) -> None:
    settings, led = state
    v = data.model_view(settings, led, "m1")
    assert [(r.batch_id, r.action, r.outcome) for r in v.runs] == [
        ("b0", "skip", "skipped"),
        ("b1", "retrain", "promoted"),
        ("bq", "quarantined", "quarantined"),  # no decision: its run stopped at validation
        ("b3", "approve", "awaiting approval"),  # no outcome yet
    ]
    b0, b1, bq, b3 = v.runs
    assert bq.reason.startswith("column x: 3 values outside")
    assert (b1.expected_gain, b1.expected_usd, b1.realized_gain) == (2.5, 0.03, 1.75)
    assert b1.actual.known_usd == pytest.approx(0.03) and b1.actual.unknown == 0
    assert (
        b3.actual.count == 1 and b3.actual.unknown == 1 and b3.actual.text().startswith("unknown")
    )
    assert b0.actual.count == 0 and b3.budget_left == 4.9
    # Label coverage: 150 labelled rows over the 100 + 200 rows accepted up to b1.
    assert b1.label_coverage == pytest.approx(0.5)
    assert b1.drift == {"x": 0.3, "y": None} and v.features == ["x", "y"] and v.metric == "roc_auc"
    assert b0.report_files == ("index.html",)  # notes.txt is not served
    assert b1.report_files == ("index.html", "drift.html", "summary.json")
    # The rollback made v1 champion again: since the rollback, at v1's promotion metric.
    assert v.champion == data.Champion("1", T(1996, 6, 4), 60.0, "rollback")
    assert [h.action for h in v.history] == ["promote", "promote", "reject", "rollback"]
    # Spend: May = r1's first attempt; June = r1's second + r3's unknown + rx on demand.
    may, june = v.months
    assert may.month == "1996-05" and may.total.known_usd == pytest.approx(0.01)
    # m5.2xlarge on demand $0.384/h: 360 s = $0.0384 → saved $0.0284 in May.
    assert may.spot_savings == pytest.approx(0.0384 - 0.01)
    assert june.by_tag["other"].known_usd == pytest.approx(0.5)
    assert june.by_tag["energy"].known_usd == pytest.approx(0.02)
    assert june.by_tag["energy"].unknown == 1
    # June's savings: r3's spot attempt has no amount, so the month's savings are unknown.
    assert june.spot_savings is None


def test_the_page_shows_the_ledger_and_escapes_it(state) -> None:
    settings, led = state
    led.record_decision(
        model="m1",
        run_id="r9",
        batch_id="b9",
        action="skip",
        reason="<script>alert(1)</script>",
        details={},
        dry_run=False,
        outcome="skipped",
        data_time=T(1996, 7, 1),
    )
    out = page.model_page(data.model_view(settings, led, "m1"), ["m1", "m2"])
    assert "<script>alert(1)</script>" not in out
    assert html.escape("<script>alert(1)</script>") in out
    rows = re.findall(r"<table class='timeline'>(.*?)</table>", out, re.S)[0].split("<tr>")[2:]
    assert len(rows) == 5 and "b9" in rows[0] and "b0" in rows[-1]  # newest first
    assert "v1</b>" in out and "rollback" in out
    assert "/costaware/reports/m1/b1/drift.html" in out
    assert "unknown (1 charge)" in out


def test_an_error_metric_is_shown_as_people_read_it(state) -> None:
    """Points carry a minus for a metric where lower is better (RMSE 12.3 is −12.3 points);
    the page shows the RMSE, and says which way is better."""
    import dataclasses

    settings, led = state
    v = data.model_view(settings, led, "m1", metric="rmse")
    assert v.champion is not None
    v = dataclasses.replace(
        v,
        champion=dataclasses.replace(v.champion, points=-12.3),
        runs=[dataclasses.replace(r, champion_points=-12.3) for r in v.runs],
    )
    out = page.model_page(v, ["m1"])
    card = re.findall(r"<div class='card' id='champion'>(.*?)</div>", out, re.S)[0]
    assert "rmse 12.30" in card and "-12.30" not in card
    assert "target units, lower is better" in out
    assert "-12.3" not in out


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", "", ".hidden", "x" * 300, "a\\b"])
def test_names_that_could_leave_their_folder_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a plain name"):
        data.safe_name(bad, "batch")


def test_line_chart_breaks_at_unknown_and_escapes_labels() -> None:
    svg = line_chart("t", ["a", "<b>", "c", "d"], [Series("s&1", [1.0, 2.0, None, 4.0])])
    assert svg.count("<polyline") == 1  # 1-2 joined; 4 alone after the gap has no line
    assert svg.count("<circle") == 3
    assert "&lt;b&gt;" in svg and "s&amp;1" in svg and "<b>" not in svg
    assert "no data yet" in line_chart("t", ["a"], [Series("s", [None])])
