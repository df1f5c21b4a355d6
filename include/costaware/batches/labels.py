"""Label files: checked like batches, taken in exactly once, read back in arrival order.

Labels arrive late as files of ``event_id`` + the target in ``landing/<model>/labels/``.
Each file is read and checked (schema, target classes, ids); a bad one goes, byte for byte,
to ``quarantine/<model>/labels/<file name>/`` with a ``validation.json`` saying what failed,
where and what to do; a good one is stored as Parquet among the model's labels. Either way
the outcome is recorded in the ledger *before* the landed file is removed, so a task killed
at any point converges on retry to the state of a clean run, and a file already recorded
(same bytes) is never taken in twice. The ledger's order is the arrival order (file mtime,
then name), and a later file's label for an event overrides an earlier one's (a correction).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from costaware import faults
from costaware.batches.data import BATCH_SUFFIXES, ID_COLUMN, pending_batches, sha256_file
from costaware.batches.label_checks import check_labels, id_text, read_label_file
from costaware.batches.validation import Finding, printable
from costaware.config import ModelConfig
from costaware.errors import BatchError
from costaware.settings import Settings
from costaware.store import storage
from costaware.store.storage import Loc

if TYPE_CHECKING:
    import pandas as pd

    from costaware.store.ledger import Ledger

log = logging.getLogger(__name__)

TAKEN_IN = ("accepted", "warned")  # statuses whose labels are used
WHAT_TO_DO = (
    "Fix the file (see the failures above) and land it again in {landing}: a corrected file "
    "has other bytes, so it is taken in like a new one. This file, byte for byte as it "
    "arrived, stays here; nothing from it was used."
)


def arrived_label_files(settings: Settings, model: str) -> list[Loc]:
    """Label files waiting in the landing zone, in arrival order (mtime, then name)."""
    files = storage.files(settings.labels_landing(model), BATCH_SUFFIXES)
    return sorted(files, key=lambda p: (storage.mtime(p), p.name))


def ingest_labels(
    settings: Settings, cfg: ModelConfig, ledger: Ledger, run_id: str
) -> list[dict[str, Any]]:
    """Check and take in every label file that arrived; one JSON-able summary per file."""
    files = arrived_label_files(settings, cfg.name)
    if not files:
        return []
    recorded = ledger.label_files(cfg.name)
    by_key = {(r["name"], r["sha256"]): r for r in recorded}
    by_sha: dict[str, dict[str, Any]] = {}
    for r in recorded:
        by_sha.setdefault(r["sha256"], r)
    known: set[str] | None = None
    out = []
    for path in files:
        digest = sha256_file(path)
        row = by_key.get((path.name, digest))
        fresh = row is None
        if row is None and digest in by_sha:
            first = by_sha[digest]
            row = dict(
                model=cfg.name,
                name=path.name,
                sha256=digest,
                status="duplicate",
                rows=first["rows"],
                path=first["path"],
                message=(
                    f"byte-identical to label file {first['name']!r} (recorded by run "
                    f"{first['run_id']}, {first['status']}); not taken in again"
                ),
                report_path=first["report_path"],
                run_id=run_id,
            )
            ledger.record_label_file(**row)
        elif row is None:
            if known is None:
                known = known_event_ids(settings, cfg.name, ledger)
            row = _take_in(settings, cfg, path, digest, known, run_id)
            ledger.record_label_file(**row)
        by_key[(path.name, digest)] = row
        by_sha.setdefault(digest, row)
        if fresh:
            # Recorded: from here on a retry finds the row and only finishes the removal.
            faults.point("ingest_labels.recorded")
        path.unlink(missing_ok=True)
        out.append(_summary(row))
    for s in out:
        log.info(
            "%s: label file %-28s %-11s %6d rows  %s",
            cfg.name,
            s["file"],
            s["status"],
            s["rows"],
            s["message"].splitlines()[0],
        )
    return out


def read_labels(settings: Settings, cfg: ModelConfig, ledger: Ledger) -> pd.DataFrame:
    """``event_id`` (text) + target of every taken-in label file, later files overriding
    earlier ones per event (the ledger's order is the arrival order)."""
    import pandas as pd

    target = cfg.target.name
    parts = []
    for row in ledger.label_files(cfg.name):
        if row["status"] not in TAKEN_IN:
            continue
        path = storage.location(row["path"])
        if not path.exists():
            raise BatchError(
                f"label file {row['name']!r} of {cfg.name} is recorded as {row['status']} "
                f"(run {row['run_id']}) but its stored copy {path} is missing; restore that "
                "file from a backup (landing the same bytes again is ignored: the ledger says "
                f"they were taken in; sha256 {row['sha256']})"
            )
        parts.append(storage.read_parquet(path, columns=[ID_COLUMN, target]))
    if not parts:
        return pd.DataFrame({ID_COLUMN: pd.Series(dtype=object), target: pd.Series(dtype=object)})
    labels = pd.concat(parts, ignore_index=True)
    return labels.drop_duplicates(ID_COLUMN, keep="last").reset_index(drop=True)


def known_event_ids(settings: Settings, model: str, ledger: Ledger) -> set[str]:
    """Event ids of the accepted batches and of those waiting in the landing zone."""
    paths = [storage.location(r["path"]) for r in ledger.accepted_batches(model)]
    paths += pending_batches(settings, model)
    ids: set[str] = set()
    for p in paths:
        try:
            if p.suffix == ".parquet":
                col = storage.read_parquet(p, columns=[ID_COLUMN])[ID_COLUMN]
            else:
                col = storage.read_csv(p, usecols=[ID_COLUMN])[ID_COLUMN]
        except Exception:  # an unreadable batch knows no ids; its validation says why
            continue
        ids.update(id_text(col.dropna()).tolist())
    return ids


def _take_in(
    settings: Settings,
    cfg: ModelConfig,
    path: Loc,
    digest: str,
    known: set[str],
    run_id: str,
) -> dict[str, Any]:
    """Check one file and write its outcome (stored labels or quarantine); the ledger row."""
    frame: pd.DataFrame | None = None
    clean: pd.DataFrame | None = None
    warn: list[Finding] = []
    try:
        frame = read_label_file(path)
    except BatchError as exc:
        fail = [Finding("file_is_readable", None, "critical", str(exc))]
    else:
        try:
            clean, fail, warn = check_labels(frame, cfg, known)
        except Exception as exc:  # a file must never stop intake: quarantine it, say why
            log.exception("%s: checking label file %s failed", cfg.name, path.name)
            detail = f"the checks themselves failed ({printable(exc)}); please report this"
            clean, fail, warn = None, [Finding("internal_error", None, "critical", detail)], []
    rows = 0 if frame is None else len(frame)
    message = _message(path.name, rows, fail, warn)
    row: dict[str, Any] = dict(
        model=cfg.name, name=path.name, sha256=digest, rows=rows, message=message, run_id=run_id
    )
    if fail or clean is None:
        folder = _quarantine_folder(settings, cfg.name, path, digest)
        report = {
            "status": "fail",
            "file": path.name,
            "model": cfg.name,
            "sha256": digest,
            "rows": rows,
            "run_id": run_id,
            "summary": message,
            "failures": [asdict(f) for f in fail],
            "warnings": [asdict(w) for w in warn],
            "what_to_do": WHAT_TO_DO.format(landing=settings.labels_landing(cfg.name)),
            "original": str(folder / path.name),
        }
        storage.copy_file(path, folder / path.name)
        storage.write_text(folder / "validation.json", json.dumps(report, indent=2, default=str))
        return {
            **row,
            "status": "quarantined",
            "path": str(folder),
            "report_path": str(folder / "validation.json"),
        }
    # Whole or not at all: a crash never leaves half a label file among stored ones.
    dest = storage.write_parquet(
        settings.labels(cfg.name) / f"{path.stem}.{digest[:12]}.parquet", clean
    )
    return {
        **row,
        "status": "warned" if warn else "accepted",
        "path": str(dest),
        "report_path": None,
    }


def _quarantine_folder(settings: Settings, model: str, path: Loc, digest: str) -> Loc:
    """``quarantine/<model>/labels/<name>/``; if another file of that name (other bytes) was
    quarantined before, ``<name>.<sha prefix>/`` so neither report is overwritten."""
    folder = settings.labels_quarantine(model) / path.name
    kept = folder / path.name
    if kept.exists() and sha256_file(kept) != digest:
        folder = folder.with_name(f"{path.name}.{digest[:12]}")
    return storage.ensure_dir(folder)


def _message(name: str, rows: int, fail: list[Finding], warn: list[Finding]) -> str:
    if fail:
        head = f"label file {name}: {len(fail)} failure(s), {len(warn)} warning(s); quarantined"
    elif warn:
        head = f"label file {name}: {rows} row(s) taken in with {len(warn)} warning(s)"
    else:
        head = f"label file {name}: {rows} row(s) taken in, all checks passed"
    lines = [head]
    lines += [f"  FAIL {f.line()}" for f in fail]
    lines += [f"  WARN {w.line()}" for w in warn]
    return "\n".join(lines)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "file": row["name"],
        "status": row["status"],
        "rows": int(row["rows"]),
        "sha256": row["sha256"],
        "path": row["path"],
        "report_path": row["report_path"],
        "message": row["message"],
        "run_id": row["run_id"],
    }
