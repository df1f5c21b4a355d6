"""Intake: take in labels, pick the batch, validate it (accept or quarantine)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from costaware.batches import data
from costaware.errors import BatchError, ValidationFailed
from costaware.faults import step_points
from costaware.steps.context import StepContext

log = logging.getLogger(__name__)


@step_points
def collect_batch(ctx: StepContext, batch: str | None = None) -> dict[str, Any]:
    """Take in labels that arrived and pick the batch to process (None: nothing to do)."""
    labels = data.ingest_labels(ctx.settings, ctx.model)
    ref = data.find_batch(ctx.settings, ctx.model, batch)
    if ref is None:
        log.info(
            "%s: no batch waiting in %s (labels taken in: %d)",
            ctx.model,
            ctx.settings.landing(ctx.model),
            len(labels),
        )
        return {"batch": None, "labels_ingested": labels}
    seen = ctx.ledger.batch(ctx.model, ref.batch_id)
    if seen is not None and seen["sha256"] == ref.sha256 and seen["status"] != "quarantined":
        log.warning(
            "%s: batch %s was already processed (same sha256); processing it again",
            ctx.model,
            ref.batch_id,
        )
    log.info(
        "%s: batch %s (%s, %.1f KiB, sha256 %s…), labels taken in: %s",
        ctx.model,
        ref.batch_id,
        Path(ref.path).name,
        ref.size_bytes / 1024,
        ref.sha256[:12],
        labels or "none",
    )
    return {"batch": ref.as_dict(), "labels_ingested": labels}


@step_points
def validate_batch(ctx: StepContext, batch: dict[str, Any]) -> dict[str, Any]:
    """Great Expectations on the batch. A failing batch goes to quarantine and this raises."""
    from costaware.batches.validation import unreadable, validate_frame

    ref = data.BatchRef(**batch)
    frame = None
    try:
        frame = data.read_frame(ref.path)
    except BatchError as exc:
        outcome = unreadable(ctx.cfg, str(exc))
    else:
        outcome = validate_frame(frame, ctx.cfg, ctx.settings.gx_dir)
    log.info("validation of %s:\n%s", ref.batch_id, outcome.summary())
    row = dict(
        model=ctx.model,
        batch_id=ref.batch_id,
        sha256=ref.sha256,
        run_id=ctx.run_id,
        rows=0 if frame is None else len(frame),
        message=outcome.summary(),
    )
    if outcome.status == "fail":
        folder = data.quarantine_batch(ctx.settings, ref, outcome.as_dict(with_gx=True))
        ctx.ledger.record_batch(
            **row,
            path=str(folder),
            status="quarantined",
            report_path=str(folder / "validation.json"),
        )
        raise ValidationFailed(
            f"batch {ref.batch_id} of {ctx.model} failed validation and was moved to "
            f"{folder} (original file kept there with validation.json); nothing was trained "
            f"and the champion is unchanged.\n{outcome.summary()}",
            quarantine_path=str(folder),
        )
    assert frame is not None
    dest = data.accept_batch(ctx.settings, ref, frame)
    start, end = data.time_bounds(frame)
    report = Path(ctx.report_dir(ref.batch_id)) / "validation.json"
    report.write_text(json.dumps(outcome.as_dict(with_gx=True), default=str))
    ctx.ledger.record_batch(
        **row,
        path=str(dest),
        status="warned" if outcome.warnings else "accepted",
        report_path=str(report),
        start_ts=start,
        end_ts=end,
    )
    return {
        "batch_id": ref.batch_id,
        "path": str(dest),
        "rows": len(frame),
        "sha256": ref.sha256,
        "status": outcome.status,
        "warnings": [w.line() for w in outcome.warnings],
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
    }
