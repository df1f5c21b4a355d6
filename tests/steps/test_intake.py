"""A validation task killed at any point converges, on retry, to the state of a clean run.

The old code (35cc885, ``data.accept_batch`` / ``data.quarantine_batch``) *moved* the landed
file before the ledger recorded the outcome. A task killed in between left no landing file,
and its retry read the missing file as "cannot be read" and quarantined a good batch (or,
for a bad one, overwrote its validation report with "cannot be read").
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from costaware.app.replay import land_batch
from costaware.batches import data
from costaware.errors import ValidationFailed
from costaware.settings import Settings
from costaware.steps.intake import validate_batch

from .. import factories
from .helpers import MODEL, fork_safe, killed_at, make_ctx

RUN = "scheduled__2024-03-15T12:00:00+00:00"


@pytest.fixture(autouse=True)
def _fork_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    fork_safe(monkeypatch)
    # Imported once here, so neither the killed child nor the retry pays for it.
    import costaware.batches.validation  # noqa: F401
    import great_expectations  # noqa: F401


def _land(settings: Settings, part: pd.DataFrame, name: str) -> dict[str, Any]:
    land_batch(settings, factories.model(MODEL), name, part)
    ref = data.find_batch(settings, MODEL, name)
    assert ref is not None
    return ref.as_dict()


@pytest.mark.parametrize("point", ["validate_batch.accepted_written", "validate_batch.recorded"])
def test_good_batch_stays_accepted_after_a_retry(
    settings: Settings, tmp_path: Path, point: str
) -> None:
    """Killed after the accepted copy was written, or after the ledger recorded it.

    Old code: the landing file was already gone, so the retry recorded the batch as
    quarantined ("cannot be read") and raised: one good week lost for training and a
    quarantine folder with no file in it."""
    cfg = factories.model(MODEL)
    name, part = factories.batches(MODEL)[0]
    batch = _land(settings, part, name)
    landed = Path(batch["path"])

    killed_at(
        point, tmp_path / "faults", lambda: validate_batch(make_ctx(cfg, settings, RUN), batch)
    )
    assert landed.exists()  # the source is removed only after the ledger recorded the outcome

    ctx = make_ctx(cfg, settings, RUN)
    out = validate_batch(ctx, batch)

    # Elec2's first week: 336 half-hours from 1996-05-07 00:00 to 1996-05-13 23:30.
    assert (out["status"], out["rows"]) == ("pass", 336)
    assert (out["start"], out["end"]) == ("1996-05-07T00:00:00", "1996-05-13T23:30:00")
    row = ctx.ledger.batch(MODEL, name)
    assert row is not None
    assert (row["status"], row["run_id"], row["rows"]) == ("accepted", RUN, 336)
    assert (row["start_ts"], row["end_ts"]) == (
        dt.datetime(1996, 5, 7),
        dt.datetime(1996, 5, 13, 23, 30),
    )
    accepted = settings.accepted(MODEL) / f"{name}.parquet"
    assert row["path"] == str(accepted) and out["path"] == str(accepted)
    stored = pd.read_parquet(accepted)
    pd.testing.assert_frame_equal(
        stored, part[stored.columns.tolist()].reset_index(drop=True), check_dtype=False
    )
    assert sorted(p.name for p in accepted.parent.iterdir()) == [accepted.name]  # no *.tmp
    assert not landed.exists()
    assert not settings.quarantine(MODEL).exists()
    assert data.accepted_batch_ids(settings, ctx.ledger, MODEL) == [name]


def test_bad_batch_is_quarantined_once_with_its_original_bytes(
    settings: Settings, tmp_path: Path
) -> None:
    """A batch with 50 of 336 ``vicprice`` values out of [0, 1]; killed after the copy to
    quarantine, before the ledger recorded it.

    Old code: the file had been moved; the retry found no landing file, quarantined it again
    as "cannot be read" and overwrote validation.json, so the report no longer said which
    column failed. Now: one quarantine folder, the original bytes, the real reason."""
    cfg = factories.model(MODEL)
    name, part = factories.batches(MODEL)[1]
    part = part.copy()
    part.iloc[:50, part.columns.get_loc("vicprice")] = 5.0
    batch = _land(settings, part, name)
    landed = Path(batch["path"])
    original = landed.read_bytes()

    killed_at(
        "validate_batch.quarantine_copied",
        tmp_path / "faults",
        lambda: validate_batch(make_ctx(cfg, settings, RUN), batch),
    )
    ctx = make_ctx(cfg, settings, RUN)
    with pytest.raises(ValidationFailed) as failed:
        validate_batch(ctx, batch)

    folder = settings.quarantine(MODEL) / name
    assert failed.value.quarantine_path == str(folder)
    assert [p.name for p in settings.quarantine(MODEL).iterdir()] == [name]
    assert sorted(p.name for p in folder.iterdir()) == sorted([landed.name, "validation.json"])
    assert (folder / landed.name).read_bytes() == original
    rows = ctx.ledger.batches(MODEL)
    assert [(r["batch_id"], r["status"], r["run_id"]) for r in rows] == [(name, "quarantined", RUN)]
    assert "vicprice" in rows[0]["message"] and "cannot be read" not in rows[0]["message"]
    report = (folder / "validation.json").read_text()
    assert "vicprice" in report and "file_is_readable" not in report
    assert not landed.exists()
    assert not settings.accepted(MODEL).exists() or not any(settings.accepted(MODEL).iterdir())
