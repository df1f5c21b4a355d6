"""Batches on disk: the landing zone, accepted data, quarantine, labels and windows.

A batch is one file (Parquet or CSV) in ``landing/<model>/``; its id is the file's stem.
Batches carry ``event_id`` and ``event_time`` beside the model's features; labels arrive
later as files of ``event_id`` + target in ``landing/<model>/labels/``. What is passed
between tasks is a path, a row count and a hash, never a DataFrame.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costaware.config import ModelConfig
from costaware.errors import BatchError, NotEnoughData
from costaware.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pending_batches(settings: Settings, model: str) -> list[Path]:
    folder = settings.landing(model)
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in BATCH_SUFFIXES)


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
    return BatchRef(model, path.stem, str(path), sha256_file(path), path.stat().st_size)


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV batch; a file that cannot be read raises BatchError."""
    import pandas as pd

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BatchError(f"{path.name}: the file is empty (0 bytes)")
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except BatchError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for a corrupt file
        kind = "Parquet" if path.suffix == ".parquet" else "CSV"
        raise BatchError(f"{path.name}: cannot be read as {kind}: {exc}") from exc


def accept_batch(settings: Settings, ref: BatchRef, frame: pd.DataFrame) -> Path:
    """Store a validated batch as Parquet among the model's data; remove it from landing."""
    dest = settings.accepted(ref.model) / f"{ref.batch_id}.parquet"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(dest)  # atomic: a crash never leaves half a batch among accepted data
    Path(ref.path).unlink(missing_ok=True)
    return dest


def quarantine_batch(settings: Settings, ref: BatchRef, report: dict[str, Any]) -> Path:
    """Move the original file, untouched, to quarantine/ with its validation report."""
    folder = settings.quarantine(ref.model) / ref.batch_id
    folder.mkdir(parents=True, exist_ok=True)
    src = Path(ref.path)
    if src.exists():
        shutil.move(str(src), folder / src.name)
    (folder / "validation.json").write_text(json.dumps(report, indent=2, default=str))
    return folder


def ingest_labels(settings: Settings, model: str) -> list[str]:
    """Move label files that arrived in the landing zone into the model's label store."""
    src = settings.labels_landing(model)
    if not src.exists():
        return []
    dest = settings.labels(model)
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    for p in sorted(src.iterdir()):
        if p.suffix in BATCH_SUFFIXES:
            frame = read_frame(p)
            target = dest / f"{p.stem}.parquet"
            frame.to_parquet(target, index=False)
            p.unlink()
            moved.append(p.stem)
    return moved


def accepted_batch_ids(settings: Settings, model: str) -> list[str]:
    folder = settings.accepted(model)
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.exists() else []


def labelled_frame(settings: Settings, cfg: ModelConfig) -> pd.DataFrame:
    """Every accepted row whose label has arrived, with a ``batch_id`` column, in time order."""
    import pandas as pd

    ids = accepted_batch_ids(settings, cfg.name)
    label_dir = settings.labels(cfg.name)
    label_files = sorted(label_dir.glob("*.parquet")) if label_dir.exists() else []
    if not ids or not label_files:
        return pd.DataFrame(columns=[ID_COLUMN, TIME_COLUMN, *cfg.feature_names, "batch_id"])
    labels = pd.concat([pd.read_parquet(p) for p in label_files], ignore_index=True)
    labels = labels.drop_duplicates(ID_COLUMN, keep="last")
    parts = []
    for bid in ids:
        part = pd.read_parquet(settings.accepted(cfg.name) / f"{bid}.parquet")
        part["batch_id"] = bid
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    if cfg.target.name in rows.columns:
        rows = rows.drop(columns=[cfg.target.name])
    out = rows.merge(labels[[ID_COLUMN, cfg.target.name]], on=ID_COLUMN, how="inner")
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
    times = pd.to_datetime(frame[TIME_COLUMN], errors="coerce").dropna()
    if times.empty:
        return None, None
    return times.min().to_pydatetime(), times.max().to_pydatetime()
