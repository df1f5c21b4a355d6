"""Property: whatever lands — random schemas, types, NaN/inf, huge strings, wrong encodings,
truncated Parquet — a batch or a label file is either taken in (and then really valid) or
quarantined with a readable report beside its original bytes. Nothing else escapes: for a
batch only ``ValidationFailed``, for a label file nothing at all.

Runs on the PostgreSQL ledger, which refuses text that SQLite would take (NUL characters)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from costaware.batches import data
from costaware.batches.labels import ingest_labels
from costaware.errors import ValidationFailed
from costaware.steps.context import StepContext
from costaware.steps.intake import validate_batch
from costaware.store.ledger import drop_all

from .. import factories
from ..conftest import make_settings

pytestmark = pytest.mark.slow

MODEL = "elec2"
CFG = factories.model(MODEL)
_WEEK = factories.batches(MODEL)[5][1].reset_index(drop=True)
BATCH = _WEEK[["event_id", "event_time", *CFG.feature_names]]
LABELS = _WEEK[["event_id", "class"]]
ROWS = 40  # a slice of the week: small files, and no two examples share their bytes by chance
REQUIRED = ["event_id", "event_time", *CFG.feature_names]
HUGE = 200_000
_names = itertools.count()
# COSTAWARE_PROPERTY_EXAMPLES=500 hunts harder (minutes); CI keeps the suite fast.
EXAMPLES = int(os.environ.get("COSTAWARE_PROPERTY_EXAMPLES", "25"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def state(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    engine = sa.create_engine(pg_url)
    drop_all(engine)
    engine.dispose()
    settings_ = make_settings(tmp_path_factory.mktemp("bad-input-properties"), pg_url)
    settings_.landing(MODEL).mkdir(parents=True)
    settings_.labels_landing(MODEL).mkdir(parents=True)
    ctx = StepContext(CFG, settings_, run_id="properties")
    yield ctx
    ctx.ledger.dispose()


# -- strategies ----------------------------------------------------------------------------

NAMES = st.one_of(
    st.sampled_from([*REQUIRED, "class", "", " event_id", "EVENT_ID", "Unnamed: 0"]),
    st.text(max_size=12),
)
CELLS = st.sampled_from(
    [math.nan, math.inf, -math.inf, None, "", "x" * HUGE, "caf\u00e9", "\x00", 1e308, -5, True]
)


def column(kind: str, n: int, draw: Any) -> list[Any]:
    if kind == "text":
        return draw(st.lists(st.text(max_size=8), min_size=n, max_size=n))
    if kind == "ints":
        return draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
    if kind == "floats":
        return draw(
            st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)
        )
    if kind == "bools":
        return draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if kind == "huge":
        return ["y" * HUGE] * n
    if kind == "mixed":
        return draw(
            st.lists(
                st.one_of(st.integers(), st.text(max_size=4), st.none()), min_size=n, max_size=n
            )
        )
    if kind == "times":
        return list(pd.date_range("1970-01-01", periods=n, freq="D", tz="UTC"))
    return [None] * n


OPS = ["retype"] * 3 + ["cells"] * 3 + ["drop", "rename", "extra", "duplicate", "rows"]
KINDS = st.sampled_from(["text", "ints", "floats", "bools", "huge", "mixed", "times", "nulls"])


@st.composite
def mutated(draw: Any, base: pd.DataFrame, focus: str | None = None) -> pd.DataFrame:
    """A slice of ``base`` with a few random changes; with ``focus``, one or two changes to
    that column's values only (a file with many things wrong fails on the first and says
    nothing about the checks behind it)."""
    start = draw(st.integers(0, len(base) - ROWS))
    frame = base.iloc[start : start + ROWS].reset_index(drop=True)
    count = st.sampled_from([1, 1, 2] if focus else [0, 1, 1, 1, 2, 2, 3])
    for _ in range(draw(count)):
        op = draw(st.sampled_from(["retype", "cells"] if focus else OPS))
        cols = [focus] if focus else list(frame.columns)
        if op == "drop" and cols:
            frame = frame.drop(columns=[draw(st.sampled_from(cols))])
        elif op == "rename" and cols:
            frame = frame.rename(columns={draw(st.sampled_from(cols)): draw(NAMES)})
        elif op in ("retype", "extra"):
            name = draw(st.sampled_from(cols)) if op == "retype" and cols else draw(NAMES)
            frame = frame.loc[:, ~frame.columns.duplicated()].copy()
            frame[name] = column(draw(KINDS), len(frame), draw)
        elif op == "cells" and cols and len(frame):
            name = draw(st.sampled_from(cols))
            rows = draw(st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=3))
            frame = frame.loc[:, ~frame.columns.duplicated()].astype({name: object})
            frame.loc[rows, name] = draw(CELLS)
        elif op == "duplicate" and len(frame):
            frame = pd.concat([frame, frame.iloc[: draw(st.integers(1, 3))]], ignore_index=True)
        elif op == "rows":
            frame = frame.iloc[: draw(st.integers(0, len(frame)))]
    return frame


@st.composite
def landed_bytes(draw: Any, base: pd.DataFrame, focus: str | None = None) -> tuple[str, bytes]:
    """A file's suffix and bytes: the mutated frame as Parquet or as CSV in some encoding,
    truncated Parquet, or plain random bytes (with ``focus``: Parquet or UTF-8 CSV)."""
    frame = draw(mutated(base, focus))
    hows = ["parquet"] * 3 + ["csv"] * 3 + ["latin-1", "utf-16", "truncated", "bytes"]
    how = draw(st.sampled_from(["parquet", "csv"] if focus else hows))
    if how == "bytes":
        return draw(st.sampled_from([".csv", ".parquet"])), draw(st.binary(max_size=200))
    if how in ("parquet", "truncated"):
        buf = io.BytesIO()
        try:
            frame.to_parquet(buf, index=False)
        except Exception:  # pyarrow refuses mixed or duplicate columns: send it as CSV
            how = "csv"
        else:
            raw = buf.getvalue()
            if how == "truncated":
                raw = raw[: draw(st.integers(0, len(raw) - 1))]
            return ".parquet", raw
    text = frame.to_csv(index=False)
    encoding = "utf-8" if how in ("csv", "parquet", "truncated") else how
    return ".csv", text.encode(encoding, errors="replace")


def _land(folder: Path, prefix: str, suffix: str, raw: bytes) -> tuple[Path, str]:
    path = folder / f"{prefix}-{next(_names):05d}{suffix}"
    path.write_bytes(raw)
    return path, hashlib.sha256(raw).hexdigest()


def _readable(findings: list[dict[str, Any]]) -> None:
    assert findings, "a failed file must say what failed"
    for f in findings:
        assert f["expectation"] and f["detail"], f
        assert len(f["detail"]) < 2000, f"report detail too long: {len(f['detail'])} chars"
        assert "\x00" not in f["detail"]
        assert f["expectation"] != "internal_error", f["detail"]


# -- batches -------------------------------------------------------------------------------


@PROPERTY
@given(landed=landed_bytes(BATCH))
def test_any_batch_is_accepted_valid_or_quarantined(state: StepContext, landed) -> None:
    _batch_outcome(state, *landed)


@pytest.mark.parametrize("column", REQUIRED)
@settings(PROPERTY, max_examples=max(EXAMPLES // 4, 3))
@given(data=st.data())
def test_a_batch_with_one_broken_column(state: StepContext, column: str, data) -> None:
    _batch_outcome(state, *data.draw(landed_bytes(BATCH, focus=column)))


def _batch_outcome(state: StepContext, suffix: str, raw: bytes) -> None:
    path, digest = _land(state.settings.landing(MODEL), "prop", suffix, raw)
    ref = data.find_batch(state.settings, MODEL, path.name)
    try:
        out = validate_batch(state, ref.as_dict())
    except ValidationFailed as exc:
        event("batch quarantined")
        folder = Path(exc.quarantine_path)
        assert hashlib.sha256((folder / path.name).read_bytes()).hexdigest() == digest
        report = json.loads((folder / "validation.json").read_text())
        assert report["status"] == "fail"
        _readable(report["failures"])
        assert state.ledger.batch(MODEL, path.stem)["status"] == "quarantined"
    else:
        event(f"batch {out['status']}")
        # Accepted: check what the suite promises, independently of Great Expectations.
        stored = pd.read_parquet(out["path"])
        assert set(REQUIRED) <= set(stored.columns)
        assert stored["event_id"].notna().all() and stored["event_id"].is_unique
        assert len(stored) >= 1
        times = pd.to_datetime(stored["event_time"], errors="coerce", utc=True, format="mixed")
        assert times.notna().all(), f"event times that are not times: {stored['event_time'][:3]}"
        for f in CFG.features:
            assert pd.api.types.is_numeric_dtype(stored[f.name]), f.name
            assert stored[f.name].notna().all(), f.name
            inside = stored[f.name].between(f.min, f.max)
            assert inside.mean() >= 0.99, f"{f.name}: {(~inside).sum()} out of range"
        assert state.ledger.batch(MODEL, path.stem)["status"] in ("accepted", "warned")
    assert not path.exists()


# -- label files ---------------------------------------------------------------------------


@settings(PROPERTY, max_examples=EXAMPLES * 3)
@given(landed=landed_bytes(LABELS))
def test_any_label_file_is_taken_in_valid_or_quarantined(state: StepContext, landed) -> None:
    suffix, raw = landed
    path, digest = _land(state.settings.labels_landing(MODEL), "labels", suffix, raw)
    [summary] = ingest_labels(state.settings, CFG, state.ledger, "properties")
    assert not path.exists()
    [row] = [r for r in state.ledger.label_files(MODEL) if r["name"] == path.name]
    assert row["status"] == summary["status"]
    event(f"label file {row['status']}")
    if row["status"] == "duplicate":  # the same bytes landed before: that outcome stands
        first = [r for r in state.ledger.label_files(MODEL) if r["sha256"] == digest][0]
        assert first["status"] in ("accepted", "warned", "quarantined")
    elif row["status"] == "quarantined":
        folder = Path(row["path"])
        assert hashlib.sha256((folder / path.name).read_bytes()).hexdigest() == digest
        report = json.loads((folder / "validation.json").read_text())
        assert report["status"] == "fail" and report["what_to_do"]
        _readable(report["failures"])
    else:
        assert row["status"] in ("accepted", "warned"), row
        stored = pd.read_parquet(row["path"])
        assert list(stored.columns) == ["event_id", "class"] and len(stored) >= 1
        assert stored["event_id"].map(type).eq(str).all() and stored["event_id"].is_unique
        assert stored["class"].dtype == np.int64
        classes = set(stored["class"])
        assert len(classes) <= 2 and (len(classes) < 2 or CFG.target.positive in classes)
