"""The prediction log as a source of batches: the intake steps on a SQLite ledger.

Predictions are logged with the ledger functions `costaware serve` writes through
(``log_predictions``, ``record_labels``), one Elec2 week per interval, each row at its
event time (as a replay logs them). The batches are then taken by ``collect_batch`` and
``validate_batch`` as the retrain DAG runs them. The PostgreSQL run with a real server is
``tests/dags/test_prediction_log_dag.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from costaware.batches import data
from costaware.batches.prediction_log import take_ready
from costaware.config import ModelConfig
from costaware.errors import BatchError
from costaware.settings import Settings
from costaware.steps.intake import collect_batch, validate_batch
from costaware.store import ledger as ledger_mod
from costaware.store.ledger import Ledger

from .. import factories
from ..steps.helpers import MODEL, make_ctx

START = dt.datetime(1996, 5, 7)  # elec2.yaml's data.time.start: week k starts START + k weeks
WEEK = dt.timedelta(days=7)
FEATURES = factories.model(MODEL).feature_names


def _cfg(**log: object) -> ModelConfig:
    base = factories.model(MODEL)
    return factories.model(
        MODEL,
        data={
            **base.data.model_dump(),
            "batches_from": "prediction_log",
            "prediction_log": {"aliases": ["champion"], **log},
        },
    )


def _week(k: int) -> pd.DataFrame:
    return factories.batches(MODEL)[k][1]


def _log(ledger: Ledger, k: int, alias_of: dict[int, str] | None = None) -> list[str]:
    """Log Elec2 week ``k`` as served predictions (request id ``w<k>-<row>``, at event time);
    rows listed in ``alias_of`` were scored by the canary's challenger (v3), the rest by v2."""
    week = _week(k)
    ids = [f"w{k}-{i}" for i in range(len(week))]
    rows = []
    for i, (rid, t, feats) in enumerate(
        zip(ids, week["event_time"], week[FEATURES].to_dict("records"), strict=True)
    ):
        alias = (alias_of or {}).get(i, "champion")
        rows.append(
            {
                "model": MODEL,
                "request_id": rid,
                "ts": pd.Timestamp(t).to_pydatetime(),
                "features": feats,
                "score": 0.5,
                "version": "3" if alias == "challenger" else "2",
                "alias": alias,
                "latency_ms": 1.0,
            }
        )
    assert ledger_mod.log_predictions(ledger, rows) == len(rows)
    return ids


def _label(ledger: Ledger, k: int, ids: list[str], rows: slice = slice(None)) -> None:
    week = _week(k)
    labels = {rid: str(int(v)) for rid, v in zip(ids, week["class"], strict=True)}
    chosen = dict(list(labels.items())[rows])
    out = ledger_mod.record_labels(ledger, MODEL, chosen, START + WEEK * (k + 1))
    assert len(out["stored"]) == len(chosen)


def test_ready_intervals_become_batches_that_pass_intake(settings: Settings) -> None:
    """Weeks 9 and 10 are ready one week after they end (label_delay_batches: 1), week 11
    is not. Week 9 had 34 canary rows (left out), week 10 had 36 rows still unlabelled (left
    out); the taken rows keep their event times, request ids and the version that scored
    them; the labels go through label intake and validation accepts the batch."""
    cfg = _cfg()
    ledger = Ledger(settings.db_url)
    canary = {i: "challenger" for i in range(0, 336, 10)}
    ids = {9: _log(ledger, 9, canary), 10: _log(ledger, 10), 11: _log(ledger, 11)}
    _label(ledger, 9, ids[9])
    _label(ledger, 10, ids[10], slice(0, 300))
    _label(ledger, 11, ids[11])
    clock = START + WEEK * 12 + dt.timedelta(days=3)  # week 11 ended 3 days ago: not ready
    ctx = make_ctx(cfg, settings, "run-1", clock)

    out = collect_batch(ctx)

    taken = {b["batch_id"]: b for b in out["from_prediction_log"]}
    assert sorted(taken) == ["predlog-19960709T000000", "predlog-19960716T000000"]
    w9, w10 = taken["predlog-19960709T000000"], taken["predlog-19960716T000000"]
    assert (w9["served"], w9["taken"], w9["other_aliases"], w9["unlabelled"]) == (336, 302, 34, 0)
    assert w9["versions"] == {"champion v2": 302}
    assert (w10["served"], w10["taken"], w10["unlabelled"]) == (336, 300, 36)
    assert out["batch"]["batch_id"] == "predlog-19960709T000000"  # the oldest first
    assert sorted(s["status"] for s in out["labels_ingested"]) == ["accepted", "accepted"]

    batch = pd.read_parquet(out["batch"]["path"])
    week9 = _week(9)
    champion_rows = [i for i in range(336) if i not in canary]
    expected = week9.iloc[champion_rows].reset_index(drop=True)
    assert batch["event_id"].tolist() == [ids[9][i] for i in champion_rows]
    assert (pd.to_datetime(batch["event_time"]) == pd.to_datetime(expected["event_time"])).all()
    pd.testing.assert_frame_equal(batch[FEATURES], expected[FEATURES], check_dtype=False)
    assert set(batch["served_version"]) == {"2"} and set(batch["served_alias"]) == {"champion"}

    validated = validate_batch(ctx, out["batch"])
    assert (validated["status"], validated["rows"]) == ("pass", 302)
    # Row 0 (00:00) was a canary row: the batch starts with the next half-hour.
    assert (validated["start"], validated["end"]) == ("1996-07-09T00:30:00", "1996-07-15T23:30:00")
    # The labels joined to the accepted rows are Elec2's own classes for those rows.
    labelled = data.labelled_frame(settings, cfg, ledger)
    assert labelled["event_id"].tolist() == [ids[9][i] for i in champion_rows]
    assert labelled["class"].astype(int).tolist() == expected["class"].astype(int).tolist()
    ledger.dispose()


def test_nothing_is_taken_twice_and_a_rerun_takes_the_same_rows(settings: Settings) -> None:
    cfg = _cfg()
    ledger = Ledger(settings.db_url)
    ids = {k: _log(ledger, k) for k in (9, 10, 11)}
    for k in (9, 10):
        _label(ledger, k, ids[k], slice(0, 200))
    clock = START + WEEK * 12
    first = collect_batch(make_ctx(cfg, settings, "run-1", clock))
    assert [b["batch_id"] for b in first["from_prediction_log"]] == [
        "predlog-19960709T000000",
        "predlog-19960716T000000",
    ]
    # More of week 10's labels arrive; the same run is retried: it takes the same rows.
    _label(ledger, 10, ids[10], slice(200, 336))
    again = collect_batch(make_ctx(cfg, settings, "run-1", clock))
    assert again["from_prediction_log"] == []
    assert again["batch"] == first["batch"]  # same file, same sha256
    week10 = settings.landing(MODEL) / "predlog-19960716T000000.parquet"
    assert len(pd.read_parquet(week10)) == 200

    validate_batch(make_ctx(cfg, settings, "run-1", clock), first["batch"])
    # The next run, a week later: week 9 is in the ledger, week 10 waits, week 11 is new.
    _label(ledger, 11, ids[11])
    later = collect_batch(make_ctx(cfg, settings, "run-2", clock + WEEK))
    assert [b["batch_id"] for b in later["from_prediction_log"]] == ["predlog-19960723T000000"]
    assert later["batch"]["batch_id"] == "predlog-19960716T000000"
    validate_batch(make_ctx(cfg, settings, "run-2", clock + WEEK), later["batch"])
    last = collect_batch(make_ctx(cfg, settings, "run-3", clock + WEEK * 3))
    assert last["from_prediction_log"] == []
    assert last["batch"]["batch_id"] == "predlog-19960723T000000"
    validate_batch(make_ctx(cfg, settings, "run-3", clock + WEEK * 3), last["batch"])
    assert collect_batch(make_ctx(cfg, settings, "run-4", clock + WEEK * 4))["batch"] is None

    # Every logged, labelled row was taken exactly once, in its own week's batch.
    taken = pd.concat(
        pd.read_parquet(settings.accepted(MODEL) / f"{b}.parquet").assign(batch=b)
        for b in data.accepted_batch_ids(settings, ledger, MODEL)
    )
    assert taken["event_id"].is_unique
    assert sorted(taken["event_id"]) == sorted(ids[9][:200] + ids[10][:200] + ids[11])
    assert (taken.groupby("batch").size().tolist()) == [200, 200, 336]
    ledger.dispose()


def test_a_crash_between_the_label_file_and_the_batch_file_converges(
    settings: Settings, tmp_path: Path
) -> None:
    """The label file is written first; a task that died before writing the batch file left
    only the label file. The retry writes the interval again: the same state as a clean run."""
    cfg = _cfg()
    ledger = Ledger(settings.db_url)
    ids = _log(ledger, 9)
    _label(ledger, 9, ids)
    clock = START + WEEK * 11
    clean = take_ready(settings, cfg, ledger, clock)
    batch = settings.landing(MODEL) / "predlog-19960709T000000.parquet"
    labels = settings.labels_landing(MODEL) / "predlog-19960709T000000.parquet"
    clean_batch, clean_labels = pd.read_parquet(batch), pd.read_parquet(labels)
    batch.unlink()  # the state the crash leaves: labels written, batch not

    retried = take_ready(settings, cfg, ledger, clock)

    assert retried == clean
    pd.testing.assert_frame_equal(pd.read_parquet(batch), clean_batch)
    pd.testing.assert_frame_equal(pd.read_parquet(labels), clean_labels)
    assert take_ready(settings, cfg, ledger, clock) == []  # and only once
    ledger.dispose()


def test_challenger_rows_are_taken_when_listed(settings: Settings) -> None:
    cfg = _cfg(aliases=["champion", "challenger"], interval_hours=24 * 7, label_wait_hours=0)
    ledger = Ledger(settings.db_url)
    ids = _log(ledger, 9, {i: "challenger" for i in range(100)})
    _label(ledger, 9, ids)
    (found,) = take_ready(settings, cfg, ledger, START + WEEK * 10)  # label_wait 0: at its end
    assert found.versions == {"challenger v3": 100, "champion v2": 236}
    assert (found.taken, found.other_aliases) == (336, 0)
    ledger.dispose()


def test_an_empty_log_is_a_clear_error_and_a_log_not_ready_is_nothing_to_do(
    settings: Settings,
) -> None:
    cfg = _cfg()
    ledger = Ledger(settings.db_url)
    ctx = make_ctx(cfg, settings, "run-1", START + WEEK * 20)
    with pytest.raises(BatchError) as err:
        collect_batch(ctx)
    msg = str(err.value)
    assert "holds no prediction of elec2" in msg and settings.db_url in msg
    assert "SQLite file" in msg and "COSTAWARE_DB_URL" in msg and "batches_from: landing" in msg
    # Logged but not ready yet (week 9 ends START + 10 weeks; labels wait one more week).
    _label(ledger, 9, _log(ledger, 9))
    early = collect_batch(make_ctx(cfg, settings, "run-2", START + WEEK * 10))
    assert (early["batch"], early["from_prediction_log"]) == (None, [])
    ledger.dispose()


def test_a_week_without_labels_is_passed_over(settings: Settings) -> None:
    cfg = _cfg()
    ledger = Ledger(settings.db_url)
    _log(ledger, 9)  # never labelled
    ids = _log(ledger, 10)
    _label(ledger, 10, ids)
    found = take_ready(settings, cfg, ledger, START + WEEK * 12)
    assert [b.batch_id for b in found] == ["predlog-19960716T000000"]
    ledger.dispose()


def test_the_interval_follows_the_landing_batch_or_the_config() -> None:
    from costaware.batches.prediction_log import interval, label_wait

    assert interval(_cfg()) == WEEK  # 336 rows of 30 min
    assert label_wait(_cfg()) == WEEK  # label_delay_batches: 1
    cfg = _cfg(interval_hours=24, label_wait_hours=6)
    assert (interval(cfg), label_wait(cfg)) == (dt.timedelta(days=1), dt.timedelta(hours=6))


def test_an_unknown_source_is_refused_with_the_allowed_ones() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        _cfg_from("kafka")
    msg = str(err.value)
    assert "batches_from" in msg and "'landing'" in msg and "'prediction_log'" in msg


def _cfg_from(source: str) -> ModelConfig:
    base = factories.model(MODEL)
    return factories.model(MODEL, data={**base.data.model_dump(), "batches_from": source})
