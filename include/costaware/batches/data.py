"""Batches on disk: the landing zone, accepted data, quarantine, labels and windows.

A batch is one file (Parquet or CSV) in ``landing/<model>/``; its id is the file's stem.
Batches carry ``event_id`` and ``event_time`` beside the model's features; labels arrive
later as files of ``event_id`` + target in ``landing/<model>/labels/``. What is passed
between tasks is a path, a row count and a hash, never a DataFrame.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from costaware.config import ModelConfig
from costaware.errors import BatchError, NotEnoughData
from costaware.settings import Settings
from costaware.store import storage
from costaware.store.storage import Loc

if TYPE_CHECKING:
    import pandas as pd

    from costaware.store.ledger import Ledger

ID_COLUMN = "event_id"
TIME_COLUMN = "event_time"
BATCH_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class BatchRef:
    model: str
    batch_id: str
    path: str
    sha256: str
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Loc) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pending_batches(settings: Settings, model: str) -> list[Loc]:
    """Batch files waiting in the landing zone, oldest first: by their first event, ties by
    arrival (modification time, then name). A file whose events cannot be read comes first,
    so it is quarantined at once instead of blocking the queue. Never by name alone:
    ``week-10`` does not come before ``week-9``."""
    found = storage.files(settings.landing(model), BATCH_SUFFIXES)
    return sorted(found, key=_queue_key)


def _queue_key(path: Loc) -> tuple[bool, dt.datetime, float, str]:
    first = first_event(path)
    return (first is not None, first or dt.datetime.min, storage.mtime(path), path.name)


def first_event(path: Loc) -> dt.datetime | None:
    """The earliest ``event_time`` in a batch file (naive UTC), reading only that column;
    None when the file or the column cannot be read."""
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            col = storage.read_parquet(path, columns=[TIME_COLUMN])[TIME_COLUMN]
        else:
            col = storage.read_csv(path, usecols=[TIME_COLUMN])[TIME_COLUMN]
        times = pd.to_datetime(col, errors="coerce", utc=True).dropna()
    except Exception:  # unreadable in any way: validation will say how
        return None
    return None if times.empty else times.min().tz_convert(None).to_pydatetime()


def find_batch(settings: Settings, model: str, batch: str | None) -> BatchRef | None:
    """The named batch, or the oldest pending one; None when the landing zone is empty."""
    pending = pending_batches(settings, model)
    if batch is None:
        if not pending:
            return None
        path = pending[0]
    else:
        matches = [p for p in pending if p.name == batch or p.stem == batch]
        if not matches:
            names = [p.name for p in pending]
            raise BatchError(
                f"batch {batch!r} is not in the landing zone {settings.landing(model)}; "
                f"pending batches: {names or 'none'}"
            )
        path = matches[0]
    return BatchRef(model, path.stem, storage.text(path), sha256_file(path), storage.size(path))


def read_frame(path: str | Loc) -> pd.DataFrame:
    """Read a Parquet or CSV batch; a file that cannot be read raises BatchError."""
    path = storage.location(path) if isinstance(path, str) else path
    try:
        if storage.size(path) == 0:
            raise BatchError(f"{path.name}: the file is empty (0 bytes)")
        if path.suffix == ".parquet":
            return storage.read_parquet(path)
        return storage.read_csv(path)
    except BatchError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for a corrupt file
        kind = "Parquet" if path.suffix == ".parquet" else "CSV"
        raise BatchError(f"{path.name}: cannot be read as {kind}: {exc}") from exc


def accept_batch(settings: Settings, ref: BatchRef, frame: pd.DataFrame) -> Loc:
    """Store a validated batch as Parquet among the model's data, whole or not at all (a crash
    never leaves half a batch there). The landing file stays until the ledger has recorded
    the acceptance (``remove_from_landing``)."""
    return storage.write_parquet(settings.accepted(ref.model) / f"{ref.batch_id}.parquet", frame)


def quarantine_batch(settings: Settings, ref: BatchRef, report: dict[str, Any]) -> Loc:
    """Copy the original file, byte for byte, to quarantine/ with its validation report. The
    landing file stays until the ledger has recorded the quarantine."""
    folder = storage.ensure_dir(settings.quarantine(ref.model) / ref.batch_id)
    src = storage.location(ref.path)
    if src.exists():
        storage.copy_file(src, folder / src.name)
    write_json_atomic(folder / "validation.json", report)
    return folder


def remove_from_landing(ref: BatchRef) -> None:
    """The last step of intake, after the ledger recorded where the batch went."""
    storage.location(ref.path).unlink(missing_ok=True)


def write_json_atomic(path: Loc, value: Any) -> None:
    storage.write_json(path, value)


def accepted_batch_ids(settings: Settings, ledger: Ledger, model: str) -> list[str]:
    """The batches that passed validation, in event-time order (ties: arrival). The ledger
    says which batches are accepted: a file among accepted data whose batch was quarantined
    later is not; an accepted batch whose file is gone is an error, never silently dropped."""
    ids = [row["batch_id"] for row in ledger.accepted_batches(model)]
    folder = settings.accepted(model)
    missing = [b for b in ids if not (folder / f"{b}.parquet").exists()]
    if missing:
        raise BatchError(
            f"{model}: the ledger lists accepted batch(es) {missing[:5]} but their files are "
            f"missing from {settings.accepted(model)}; restore them (or re-land the batches)"
        )
    return ids


def labelled_frame(settings: Settings, cfg: ModelConfig, ledger: Ledger) -> pd.DataFrame:
    """Every accepted row whose label has arrived, with a ``batch_id`` column, in time order."""
    import pandas as pd

    from costaware.batches.label_checks import id_text
    from costaware.batches.labels import read_labels

    ids = accepted_batch_ids(settings, ledger, cfg.name)
    # Taken-in label files in arrival order, a later file's label overriding an earlier one's.
    labels = read_labels(settings, cfg, ledger)
    if not ids or labels.empty:
        return pd.DataFrame(columns=[ID_COLUMN, TIME_COLUMN, *cfg.feature_names, "batch_id"])
    parts = []
    for bid in ids:
        part = storage.read_parquet(settings.accepted(cfg.name) / f"{bid}.parquet")
        part["batch_id"] = bid
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    rows[TIME_COLUMN] = pd.to_datetime(rows[TIME_COLUMN], utc=True, errors="coerce").dt.tz_convert(
        None
    )
    if cfg.target.name in rows.columns:
        rows = rows.drop(columns=[cfg.target.name])
    # Labels keep ids as text (7, 7.0 and "7" are one event): join on that form.
    rows["_event_key"] = id_text(rows[ID_COLUMN])
    labels = labels.rename(columns={ID_COLUMN: "_event_key"})
    out = rows.merge(labels, on="_event_key", how="inner").drop(columns=["_event_key"])
    return out.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Windows:
    train_batches: list[str]
    holdout_batches: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_windows(labelled: pd.DataFrame, cfg: ModelConfig) -> Windows:
    """Held-out = the newest labelled batches; training = the ones before, never overlapping."""
    batches = list(dict.fromkeys(labelled["batch_id"]))
    h = cfg.evaluation.holdout_batches
    if len(batches) <= h:
        raise NotEnoughData(
            f"{cfg.name}: {len(batches)} labelled batch(es); need more than {h} "
            "(held-out window plus at least one to train on)"
        )
    holdout = batches[-h:]
    train = batches[:-h][-cfg.training.window_batches :]
    return Windows(train_batches=train, holdout_batches=holdout)


def time_bounds(frame: pd.DataFrame) -> tuple[dt.datetime | None, dt.datetime | None]:
    import pandas as pd

    if TIME_COLUMN not in frame.columns or frame.empty:
        return None, None
    # Naive and timezone-aware event times alike become naive UTC (naive ones are taken to
    # be UTC already), so they compare with each other and with the run's clock.
    times = pd.to_datetime(frame[TIME_COLUMN], errors="coerce", utc=True).dropna()
    if times.empty:
        return None, None
    return (
        times.min().tz_convert(None).to_pydatetime(),
        times.max().tz_convert(None).to_pydatetime(),
    )
