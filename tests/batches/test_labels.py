"""Label files are checked like batches: bad ones quarantined with a report (original bytes
kept), good ones taken in exactly once, read back in arrival order; a task killed between
the ledger record and the removal of the landed file converges to a clean run's state."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from costaware.batches.data import labelled_frame
from costaware.batches.labels import ingest_labels, read_labels
from costaware.errors import BatchError
from costaware.settings import Settings
from costaware.store.ledger import Ledger

from .. import factories
from ..conftest import ROOT, make_settings

MODEL = "elec2"
WEEKS = factories.batches(MODEL)
CFG = factories.model(MODEL)
FEATURES = ["event_id", "event_time", *CFG.feature_names]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(tmp_path: Path, db_url: str) -> tuple[Settings, Ledger]:
    """Week 0 accepted (in the ledger), week 1 waiting in the landing zone."""
    settings = make_settings(tmp_path / "home", db_url)
    ledger = Ledger(settings.db_url)
    name, part = WEEKS[0]
    dest = settings.accepted(MODEL) / f"{name}.parquet"
    dest.parent.mkdir(parents=True)
    part[FEATURES].to_parquet(dest, index=False)
    ledger.record_batch(
        model=MODEL,
        batch_id=name,
        path=str(dest),
        rows=len(part),
        sha256=_sha(dest),
        status="accepted",
        message="",
        start_ts=part.event_time.min().to_pydatetime(),
        end_ts=part.event_time.max().to_pydatetime(),
    )
    settings.landing(MODEL).mkdir(parents=True, exist_ok=True)
    WEEKS[1][1][FEATURES].to_parquet(settings.landing(MODEL) / f"{WEEKS[1][0]}.parquet")
    settings.labels_landing(MODEL).mkdir(parents=True)
    return settings, ledger


def _labels(week: int = 0) -> pd.DataFrame:
    return WEEKS[week][1][["event_id", "class"]].reset_index(drop=True)


def _parquet(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    return lambda p: change(_labels()).to_parquet(p, index=False)


def _csv(change: Callable[[pd.DataFrame], pd.DataFrame], encoding: str = "utf-8"):
    return lambda p: p.write_bytes(change(_labels()).to_csv(index=False).encode(encoding))


def _set(frame: pd.DataFrame, row: int, col: str, value: Any) -> pd.DataFrame:
    frame = frame.astype({col: object})
    frame.loc[row, col] = value
    return frame


def _truncated(p: Path) -> None:
    buf = io.BytesIO()
    _labels().to_parquet(buf, index=False)
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _dup(frame: pd.DataFrame, flip: bool) -> pd.DataFrame:
    extra = frame.iloc[[10, 20]].copy()
    if flip:
        extra["class"] = 1 - extra["class"]
    return pd.concat([frame, extra], ignore_index=True)


# name -> (file name, writer, status, (check, column) expected among failures or warnings,
#          words expected in the message)
QUARANTINED = {
    "missing_target": (
        "l.parquet",
        _parquet(lambda f: f.rename(columns={"class": "label"})),
        ("column_exists", "class"),
        "missing; the file has ['event_id', 'label']",
    ),
    "conflicting_duplicates": (
        "l.parquet",
        _parquet(lambda f: _dup(f, flip=True)),
        ("ids_unique", "event_id"),
        "2 event id(s) with different labels in the same file at row(s) 11, 21, 337, 338",
    ),
    "three_classes": (
        "l.parquet",
        _parquet(lambda f: _set(f, 0, "class", 2).astype({"class": int})),
        ("binary_classes", "class"),
        "3 classes [0, 1, 2]",
    ),
    "two_other_classes": (
        "l.parquet",
        _parquet(lambda f: f.assign(**{"class": f["class"] + 2})),
        ("binary_classes", "class"),
        "2 classes [2, 3]; a binary target has the positive class 1 and at most one other",
    ),
    "text_labels": (
        "l.csv",
        _csv(lambda f: f.assign(**{"class": f["class"].map({0: "down", 1: "up"})})),
        ("label_type", "class"),
        "336 label(s) that are not whole numbers like the positive class 1",
    ),
    "bool_labels": (
        "l.parquet",
        _parquet(lambda f: f.assign(**{"class": f["class"] == 1})),
        ("label_type", "class"),
        "not whole numbers",
    ),
    "nan_labels": (
        "l.csv",
        _csv(lambda f: _set(f, 5, "class", None)),
        ("values_not_null", "class"),
        "1 empty label(s) at row(s) 6",
    ),
    "inf_label": (
        "l.parquet",
        _parquet(lambda f: _set(f, 7, "class", float("inf")).astype({"class": float})),
        ("label_type", "class"),
        "at row(s) 8, e.g. [inf]",
    ),
    "nan_ids": (
        "l.parquet",
        _parquet(lambda f: _set(_set(f, 3, "event_id", None), 9, "event_id", float("nan"))),
        ("values_not_null", "event_id"),
        "2 empty id(s) at row(s) 4, 10",
    ),
    "fractional_ids": (
        "l.parquet",
        _parquet(lambda f: f.assign(event_id=[i + 0.5 for i in range(len(f))])),
        ("id_type", "event_id"),
        "336 id(s) that are neither text nor whole numbers at row(s) 1, 2, 3, 4, 5 and 331 more",
    ),
    "empty_file": ("l.csv", lambda p: p.write_bytes(b""), ("file_is_readable", None), "0 bytes"),
    "header_only": (
        "l.csv",
        lambda p: p.write_bytes(b"event_id,class\n"),
        ("file_has_rows", None),
        "no rows",
    ),
    "unreadable": (
        "l.parquet",
        lambda p: p.write_bytes(b"PAR1\x00garbage\x00no footer"),
        ("file_is_readable", None),
        "cannot be read as Parquet",
    ),
    "truncated_parquet": (
        "l.parquet",
        _truncated,
        ("file_is_readable", None),
        "cannot be read as Parquet",
    ),
    "latin1_csv": (
        "l.csv",
        _csv(lambda f: _set(f, 2, "event_id", "café-2"), encoding="latin-1"),
        ("file_is_readable", None),
        "not UTF-8 text (byte 0xe9 at offset 38, line 4); export it as UTF-8",
    ),
    "huge_id": (
        "l.parquet",
        _parquet(lambda f: _set(f, 4, "event_id", "x" * 300_000)),
        ("id_length", "event_id"),
        "1 id(s) longer than 1000 characters at row(s) 5",
    ),
    "huge_label": (
        "l.csv",
        _csv(lambda f: _set(f, 4, "class", "y" * 300_000)),
        ("label_type", "class"),
        "1 label(s) that are not whole numbers like the positive class 1 at row(s) 5, "
        "e.g. ['yyyyyyyy",
    ),
    "nul_in_label": (  # NUL cannot be stored in PostgreSQL text: it must be escaped
        "l.parquet",
        _parquet(lambda f: _set(f.astype({"class": str}), 6, "class", "\x00\x01")),
        ("label_type", "class"),
        "at row(s) 7, e.g. ['\\x00\\x01']",
    ),
}
TAKEN_IN = {
    # name -> (file name, writer, status, warning (check, column) or None, words, rows kept)
    "good": ("l.parquet", _parquet(lambda f: f), "accepted", None, "all checks passed", 336),
    "good_csv": ("l.csv", _csv(lambda f: f), "accepted", None, "336 row(s) taken in", 336),
    "only_negatives": (
        "l.parquet",
        _parquet(lambda f: f.assign(**{"class": 0})),
        "accepted",
        None,
        "all checks passed",
        336,
    ),
    "float_labels": (
        "l.parquet",
        _parquet(lambda f: f.astype({"class": float})),
        "accepted",
        None,
        "all checks passed",
        336,
    ),
    "extra_column": (
        "l.parquet",
        _parquet(lambda f: f.assign(note="checked by hand")),
        "warned",
        ("no_other_columns", None),
        "ignored extra column(s) ['note']",
        336,
    ),
    "unknown_ids": (
        "l.parquet",
        _parquet(lambda f: f.assign(event_id=["nowhere-1", "nowhere-2", *f.event_id[2:]])),
        "warned",
        ("ids_known", "event_id"),
        "2 of 336 id(s) belong to no accepted or waiting batch (kept: their batch may arrive "
        "later), e.g. ['nowhere-1', 'nowhere-2']",
        336,
    ),
    "identical_duplicates": (
        "l.parquet",
        _parquet(lambda f: _dup(f, flip=False)),
        "warned",
        ("ids_unique", "event_id"),
        "2 repeated row(s) with the same id and label dropped at row(s) 11, 21, 337, 338",
        336,
    ),
}


@pytest.mark.parametrize("case", list(QUARANTINED))
def test_bad_label_file_is_quarantined(tmp_path: Path, db_url: str, case: str) -> None:
    settings, ledger = _state(tmp_path, db_url)
    name, write, (check, column), words = QUARANTINED[case]
    src = settings.labels_landing(MODEL) / name
    write(src)
    digest = _sha(src)

    [summary] = ingest_labels(settings, CFG, ledger, "run-1")

    folder = settings.labels_quarantine(MODEL) / name
    assert summary["status"] == "quarantined" and summary["path"] == str(folder)
    assert not src.exists()
    assert _sha(folder / name) == digest  # the original bytes, untouched
    report = json.loads((folder / "validation.json").read_text())
    assert report["status"] == "fail" and report["sha256"] == digest
    assert (check, column) in {(f["expectation"], f["column"]) for f in report["failures"]}
    assert words in report["summary"], report["summary"]
    assert "land it again" in report["what_to_do"]
    assert len(report["summary"]) < 2000  # huge values are cut, not copied into the report
    [row] = ledger.label_files(MODEL)
    assert (row["status"], row["sha256"], row["report_path"]) == (
        "quarantined",
        digest,
        str(folder / "validation.json"),
    )
    assert words in row["message"]
    assert read_labels(settings, CFG, ledger).empty
    ledger.dispose()


@pytest.mark.parametrize("case", list(TAKEN_IN))
def test_good_label_file_is_taken_in(tmp_path: Path, db_url: str, case: str) -> None:
    settings, ledger = _state(tmp_path, db_url)
    name, write, status, warning, words, kept = TAKEN_IN[case]
    src = settings.labels_landing(MODEL) / name
    write(src)
    expected = pd.read_parquet(src) if name.endswith(".parquet") else pd.read_csv(src)

    [summary] = ingest_labels(settings, CFG, ledger, "run-1")

    assert summary["status"] == status, summary["message"]
    assert words in summary["message"], summary["message"]
    assert not src.exists()
    [row] = ledger.label_files(MODEL)
    assert row["status"] == status and Path(row["path"]).exists()
    if warning:
        assert f"WARN {warning[0]}" in row["message"]
    got = read_labels(settings, CFG, ledger)
    assert list(got.columns) == ["event_id", "class"] and len(got) == kept
    assert str(got["class"].dtype) == "int64"
    want = dict(zip(expected.event_id.astype(str), expected["class"].astype(int), strict=False))
    assert dict(zip(got.event_id, got["class"], strict=True)) == want
    ledger.dispose()


def test_labels_of_a_waiting_batch_are_known(tmp_path: Path) -> None:
    settings, ledger = _state(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    _labels(1).to_parquet(settings.labels_landing(MODEL) / "w1.parquet", index=False)
    [summary] = ingest_labels(settings, CFG, ledger, "run-1")
    assert summary["status"] == "accepted", summary["message"]


def _land(settings: Settings, name: str, frame: pd.DataFrame, mtime: float) -> Path:
    path = settings.labels_landing(MODEL) / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    os.utime(path, (mtime, mtime))
    return path


def test_arrival_order_not_file_names(tmp_path: Path) -> None:
    """A later file corrects an earlier one; "later" is when it arrived, not its name."""
    settings, ledger = _state(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    first = pd.DataFrame({"event_id": [f"elec2-{i}" for i in range(5)], "class": 0})
    fix = pd.DataFrame({"event_id": ["elec2-3", "elec2-4"], "class": 1})
    _land(settings, "z-first.parquet", first, 1_000_000)
    _land(settings, "a-correction.csv", fix, 1_000_100)
    out = ingest_labels(settings, CFG, ledger, "run-1")
    assert [s["file"] for s in out] == ["z-first.parquet", "a-correction.csv"]
    got = read_labels(settings, CFG, ledger).set_index("event_id")["class"].to_dict()
    assert got == {"elec2-0": 0, "elec2-1": 0, "elec2-2": 0, "elec2-3": 1, "elec2-4": 1}
    # A second correction in a later run wins again.
    _land(settings, "0.csv", pd.DataFrame({"event_id": ["elec2-4"], "class": 0}), 1_000_200)
    ingest_labels(settings, CFG, ledger, "run-2")
    got = read_labels(settings, CFG, ledger).set_index("event_id")["class"].to_dict()
    assert (got["elec2-3"], got["elec2-4"]) == (1, 0)


def test_labelled_frame_joins_integer_ids_and_corrections(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    ledger = Ledger(settings.db_url)
    batch = pd.DataFrame(
        {
            "event_id": range(6),
            "event_time": pd.date_range("2020-01-01", periods=6, freq="h"),
            **{f: 0.5 for f in CFG.feature_names},
        }
    )
    dest = settings.accepted(MODEL) / "b0.parquet"
    dest.parent.mkdir(parents=True)
    batch.to_parquet(dest, index=False)
    ledger.record_batch(
        model=MODEL,
        batch_id="b0",
        path=str(dest),
        rows=6,
        sha256=_sha(dest),
        status="accepted",
        message="",
        start_ts=dt.datetime(2020, 1, 1),
        end_ts=dt.datetime(2020, 1, 1, 5),
    )
    settings.labels_landing(MODEL).mkdir(parents=True)
    _land(settings, "a.csv", pd.DataFrame({"event_id": [0, 1, 2, 3], "class": 1}), 1_000_000)
    _land(settings, "b.parquet", pd.DataFrame({"event_id": ["2"], "class": [0]}), 1_000_100)
    out = ingest_labels(settings, CFG, ledger, "run-1")
    assert [s["status"] for s in out] == ["accepted", "accepted"], out
    frame = labelled_frame(settings, CFG, ledger)
    assert frame["event_id"].tolist() == [0, 1, 2, 3]  # the batch's own ids, in time order
    assert frame["class"].tolist() == [1, 1, 0, 1]
    assert frame["batch_id"].tolist() == ["b0"] * 4


def test_a_file_is_taken_in_once(tmp_path: Path) -> None:
    settings, ledger = _state(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    good = _labels()
    _land(settings, "w0.parquet", good, 1_000_000)
    [first] = ingest_labels(settings, CFG, ledger, "run-1")
    # Delivered again, byte for byte, under its name and under another name.
    _land(settings, "w0.parquet", good, 1_000_100)
    _land(settings, "copy.parquet", good, 1_000_200)
    again, copy = ingest_labels(settings, CFG, ledger, "run-2")
    assert again == first  # the recorded outcome, not a second processing
    assert (
        copy["status"] == "duplicate"
        and "byte-identical to label file 'w0.parquet'" in (copy["message"])
    )
    rows = ledger.label_files(MODEL)
    assert [(r["name"], r["status"], r["run_id"]) for r in rows] == [
        ("w0.parquet", "accepted", "run-1"),
        ("copy.parquet", "duplicate", "run-2"),
    ]
    assert not list(settings.labels_landing(MODEL).iterdir())
    assert len(list(settings.labels(MODEL).iterdir())) == 1
    assert len(read_labels(settings, CFG, ledger)) == 336


def test_a_lost_stored_label_file_is_an_error_not_missing_labels(tmp_path: Path) -> None:
    settings, ledger = _state(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    _land(settings, "w0.parquet", _labels(), 1_000_000)
    [summary] = ingest_labels(settings, CFG, ledger, "run-1")
    Path(summary["path"]).unlink()
    with pytest.raises(BatchError, match="recorded as accepted .* stored copy .* is missing"):
        read_labels(settings, CFG, ledger)


def test_same_name_new_bytes_keeps_both_reports(tmp_path: Path) -> None:
    settings, ledger = _state(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    bad1 = _land(settings, "w.csv", pd.DataFrame({"event_id": ["a"], "klass": [1]}), 1_000_000)
    digest1 = _sha(bad1)
    ingest_labels(settings, CFG, ledger, "run-1")
    bad2 = _land(settings, "w.csv", pd.DataFrame({"event_id": ["a"], "kls": [1]}), 1_000_100)
    digest2 = _sha(bad2)
    [second] = ingest_labels(settings, CFG, ledger, "run-2")
    base = settings.labels_quarantine(MODEL)
    assert _sha(base / "w.csv" / "w.csv") == digest1
    assert second["path"] == str(base / f"w.csv.{digest2[:12]}")
    assert _sha(base / f"w.csv.{digest2[:12]}" / "w.csv") == digest2
    fixed = _land(settings, "w.csv", pd.DataFrame({"event_id": ["a"], "class": [1]}), 1_000_200)
    assert fixed.exists()
    [third] = ingest_labels(settings, CFG, ledger, "run-3")
    assert third["status"] == "warned"  # "a" belongs to no batch
    assert read_labels(settings, CFG, ledger).to_dict("list") == {"event_id": ["a"], "class": [1]}


def test_collect_batch_returns_json_summaries(tmp_path: Path, monkeypatch) -> None:
    from costaware.steps.context import StepContext
    from costaware.steps.intake import collect_batch

    settings, ledger = _state(tmp_path, f"sqlite:///{tmp_path / 'l.db'}")
    _land(settings, "w0.parquet", _labels(), 1_000_000)
    _land(settings, "bad.csv", pd.DataFrame({"event_id": ["a"]}), 1_000_100)
    ctx = StepContext(CFG, settings, run_id="run-1")
    out = collect_batch(ctx)
    assert out["batch"]["batch_id"] == WEEKS[1][0]
    labels = json.loads(json.dumps(out["labels_ingested"]))
    assert [(s["file"], s["status"]) for s in labels] == [
        ("w0.parquet", "accepted"),
        ("bad.csv", "quarantined"),
    ]


# -- killed between the ledger record and the removal of the landed file -----------------


def _land_mix(settings: Settings) -> None:
    good = _labels()
    _land(settings, "good.parquet", good, 1_000_000)
    _land(settings, "warned.csv", good.assign(extra=1).iloc[:50], 1_000_100)
    _land(settings, "bad.csv", good.rename(columns={"class": "y"}), 1_000_200)
    _land(settings, "copy.parquet", good, 1_000_300)


def _child(home: str, db_url: str, faults_dir: str) -> None:
    os.environ.update(
        COSTAWARE_HOME=home,
        COSTAWARE_DB_URL=db_url,
        COSTAWARE_PROJECT_ROOT=str(ROOT),
        COSTAWARE_FAULTS="ingest_labels.recorded",
        COSTAWARE_FAULTS_DIR=faults_dir,
    )
    settings = Settings.from_env()
    ingest_labels(settings, CFG, Ledger(settings.db_url), "run-1")


def _files(home: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(home.rglob("*")):
        if p.is_file() and "ledger" not in p.name and not p.name.startswith(".costaware-lock"):
            rel = str(p.relative_to(home))
            out[rel] = (
                pd.read_parquet(p).to_dict("list")
                if p.suffix == ".parquet"
                else p.read_text(errors="replace").replace(str(home), "HOME")
            )
    return out


def _rows(ledger: Ledger, home: Path) -> list[dict[str, Any]]:
    keep = ("name", "sha256", "status", "rows", "path", "message", "report_path", "run_id")
    return [
        {k: str(r[k]).replace(str(home), "HOME") for k in keep} for r in ledger.label_files(MODEL)
    ]


def test_killed_after_each_record_converges_to_a_clean_run(tmp_path: Path, db_url: str) -> None:
    clean_settings, clean_ledger = _state(tmp_path / "clean", f"sqlite:///{tmp_path / 'c.db'}")
    _land_mix(clean_settings)
    ingest_labels(clean_settings, CFG, clean_ledger, "run-1")

    settings, ledger = _state(tmp_path / "killed", db_url)
    _land_mix(settings)
    fork = multiprocessing.get_context("fork")
    kills = 0
    for _ in range(10):
        faults_dir = tmp_path / f"faults-{kills}"  # a fresh marker: the point fires again
        faults_dir.mkdir()
        proc = fork.Process(target=_child, args=(str(settings.home), db_url, str(faults_dir)))
        proc.start()
        proc.join(120)
        if proc.exitcode == 0:
            break
        assert proc.exitcode == -9, f"the child died with {proc.exitcode}, not at the fault"
        kills += 1
    assert kills == 4  # once after each file's record
    assert _rows(ledger, settings.home) == _rows(clean_ledger, clean_settings.home)
    assert _files(settings.home) == _files(clean_settings.home)
    assert not list(settings.labels_landing(MODEL).iterdir())
    ledger.dispose()
