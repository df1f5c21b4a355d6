"""XSS: every page costaware writes escapes what comes from data or a cloud API.

Script and markup payloads go into batch names, column names, tag values, resource ids,
decision reasons and validation findings; each produced page is parsed (html.parser, as a
browser would tokenize it) and must contain no injected element, event handler or
``javascript:`` URL, while the payload is still shown to the reader as text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costaware.batches.drift import measure_drift
from costaware.costs.showback import COLUMNS, UNTAGGED, summarize, write_report
from costaware.settings import Settings
from costaware.steps.context import StepContext
from costaware.steps.report import publish_report

from .. import factories
from .html_check import PATH_PAYLOADS, PAYLOADS, assert_inert, parse

DAY = dt.date(2026, 11, 2)
NOON = dt.datetime(2026, 11, 2, 12)


@pytest.mark.parametrize("batch_name", PATH_PAYLOADS)
def test_run_report_escapes_every_value(settings: Settings, batch_name: str) -> None:
    """publish_report with a payload in every field a run's data can reach."""
    p0, p1, p2, p3 = PAYLOADS
    ctx = StepContext(factories.model("elec2"), settings, run_id=f"manual__{p1}", clock=NOON)
    batch_id = f"b0001_{batch_name}"  # a landing file's stem: no "/" possible
    ctx.ledger.record_decision(
        model="elec2",
        run_id=ctx.run_id,
        batch_id=batch_id,
        action="skip",
        reason=f"skip: {p0}",
        details={"numbers": {p1: p2, "usd": 0.1}, "thresholds": {p3: p0}},
        dry_run=False,
        outcome=None,
    )
    results = {
        "validated": {
            "batch_id": batch_id,
            "status": "warned",
            "rows": 10,
            "sha256": p2,
            "warnings": [f"column {p0}: unexpected values {[p1, p3]}"],
        },
        "drift": {
            "columns": [
                {"column": p0, "method": "psi", "score": 0.3, "threshold": 0.2, "drifted": True},
                {"column": p1, "method": p3, "score": None, "threshold": 0.2, "drifted": False},
            ],
            "prediction": {
                "column": p2,
                "method": "psi",
                "score": 0.1,
                "threshold": 0.2,
                "drifted": False,
            },
        },
        # Values of a dict that travels through XCom: none of them is trusted either.
        "decision": {"action": p1, "reason": f"because {p2}", "dry_run": False},
        "training": {"instance_type": p0, p3: p1},
        "evaluation": {"verdict": p2, "champion_version": p0, p1: p3},
        "outcome": {"action": p3},
    }
    out = publish_report(ctx, results)

    page = parse(Path(out["report"]).read_text(encoding="utf-8"))
    assert_inert(page)
    # Class attributes never carry a value from the run.
    classes = {a.get("class") for _, a in page.tags if "class" in a}
    assert classes <= {"", "DRIFT", "retrain", "skip", "approve", "promote", "reject"}, classes
    # Every payload is on the page, as text a reader sees (escaped, not dropped).
    for value in (*PAYLOADS, batch_id, ctx.run_id, f"because {p2}", p1.upper(), p2.upper()):
        assert value in page.text, value
    title = re.search(r"<title>(.*?)</title>", Path(out["report"]).read_text("utf-8"), re.S)
    assert title and "<" not in title.group(1)
    # summary.json keeps the values as they were: escaping is for HTML only.
    summary = json.loads((Path(out["report"]).parent / "summary.json").read_text())
    assert summary["batch_id"] == batch_id and summary["training"]["instance_type"] == p0


def _charges() -> pd.DataFrame:
    """Charges as a FOCUS export or a billing API hands them over, with payloads in every
    tag, id and name (and a "$" formula that matplotlib's mathtext cannot parse)."""
    p0, p1, p2, p3 = PAYLOADS
    rows = [
        (DAY, 3.0, p0, p1, p2, "retrain", "spot", "i-1", "Amazon EC2"),
        (DAY, 2.0, "elec2", p3, "prod", p0, p1, p2, p3),
        (
            DAY + dt.timedelta(days=1),
            1.5,
            r"cost$\frac{$",
            "energy",
            "dev",
            "serve",
            None,
            "i-3",
            p0,
        ),
        (DAY, 4.0, None, None, None, None, None, p1, p2),  # untagged: id and service shown
        (DAY, 0.5, None, None, None, None, None, p3, p0),
    ]
    return pd.DataFrame([(*r, True) for r in rows], columns=COLUMNS)  # reconciled: True


@pytest.mark.parametrize("by", ["model", "team", "env"])
def test_showback_report_escapes_tags_ids_and_names(tmp_path: Path, by: str) -> None:
    charges = _charges()
    s = summarize(charges, by, DAY, DAY + dt.timedelta(days=7))
    paths = write_report(charges, s, tmp_path)
    page = parse(Path(paths["html"]).read_text(encoding="utf-8"))
    # The page's own elements: its <body> and the chart.
    assert_inert(page, allowed={"body": 1, "img": 1})
    (chart,) = page.elements("img")
    assert set(chart) == {"alt", "src"} and str(chart["src"]).startswith("data:image/png;base64,")
    assert chart["alt"] == f"daily and monthly cost by {by}"
    # Tag values of this dimension, and the untagged resources' ids and services, are shown.
    keys = list(charges.loc[charges["model"].notna(), by].dropna().unique())
    for value in (*keys, UNTAGGED, PAYLOADS[1], PAYLOADS[2], PAYLOADS[3], PAYLOADS[0]):
        assert value in page.text, value
    if by == "model":
        assert r"cost$\frac{$" in page.text  # and the chart was drawn with it in the legend


def _drift_frames(cols: list[str], cat: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 300
    ref = pd.DataFrame({c: rng.uniform(0, 1, n) for c in cols})
    cur = pd.DataFrame({c: rng.uniform(0.2, 1, n) for c in cols})
    # Category values are data: a feature without a category list accepts any of them.
    ref[cat] = rng.choice(["a", PAYLOADS[0]], n)
    cur[cat] = rng.choice(["a", PAYLOADS[0], PAYLOADS[1]], n)
    return ref, cur


def _evidently_page(tmp_path: Path, cols: list[str], cat: str, name: str) -> tuple[str, object]:
    cfg = factories.model(
        "elec2",
        features=[
            *({"name": c, "min": 0, "max": 1} for c in cols),
            {"name": cat, "type": "categorical"},
        ],
        drift={"method": "psi", "threshold": 0.2, "columns": {}},
    )
    ref, cur = _drift_frames(cols, cat)
    report = tmp_path / name
    result = measure_drift(ref, cur, cfg, report_path=report, engine="evidently")
    assert [c.column for c in result.columns] == [*cols, cat]
    return report.read_text(encoding="utf-8"), result


def test_evidently_drift_report_cannot_be_broken_out_of(tmp_path: Path) -> None:
    """Evidently embeds column names and category values as JSON inside a <script>. A
    ``</script>`` in one of them must not end that script: the drift step neutralises
    ``<``, ``>`` and ``&`` in the embedded data (as ``\\u003c`` …: the same strings to the page)."""
    cols = [PAYLOADS[0], PAYLOADS[1], "</script><script>alert(8)</script>"]
    cat = "cat</script><img src=x onerror=alert(9)>"
    text, _ = _evidently_page(tmp_path, cols, cat, "drift.html")
    clean, _ = _evidently_page(tmp_path, ["a", "b", "c"], "cat", "clean.html")

    page, baseline = parse(text), parse(clean)
    # Exactly the scripts of a report on harmless names: none was opened by a value.
    assert len(page.elements("script")) == len(baseline.elements("script")) >= 2
    assert page.handlers() == [] and page.javascript_urls() == []
    for tag in ("img", "svg", "iframe"):
        assert page.elements(tag) == [], tag
    (data,) = [s for s in page.scripts if re.match(r"\s*var \w+ = \{", s)]
    assert "<" not in data and ">" not in data
    # ... and the data still says the same: the names and categories, decoded, are in it.
    values = [json.loads(m) for m in re.findall(r"^\s*var \w+ = (.*);$", data, re.M)]
    dumped = json.dumps(values)
    for name in (*cols, cat, PAYLOADS[1]):
        assert json.dumps(name)[1:-1] in dumped, name
