"""Intake: take in labels, pick the batch, validate it (accept or quarantine)."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from costaware import faults
from costaware.batches import data
from costaware.batches.labels import ingest_labels
from costaware.errors import BatchError, ValidationFailed
from costaware.faults import step_points
from costaware.steps.context import StepContext
from costaware.store import storage

log = logging.getLogger(__name__)


@step_points
def collect_batch(ctx: StepContext, batch: str | None = None) -> dict[str, Any]:
    """Take in labels that arrived and pick the batch to process (None: nothing to do).

    With ``data.batches_from: prediction_log`` the intervals of the prediction log that are
    ready are first written into the landing zone (batch + label file), so they take the
    same path as landed batches."""
    from_log = []
    if ctx.cfg.data.batches_from == "prediction_log":
        from costaware.batches.prediction_log import take_ready

        from_log = [b.as_dict() for b in take_ready(ctx.settings, ctx.cfg, ctx.ledger, ctx.clock)]
    labels = ingest_labels(ctx.settings, ctx.cfg, ctx.ledger, ctx.run_id)
    ref = data.find_batch(ctx.settings, ctx.model, batch)
    if ref is None:
        log.info(
            "%s: no batch waiting in %s (labels taken in: %d)",
            ctx.model,
            ctx.settings.landing(ctx.model),
            len(labels),
        )
        return {"batch": None, "labels_ingested": labels, "from_prediction_log": from_log}
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
        storage.location(ref.path).name,
        ref.size_bytes / 1024,
        ref.sha256[:12],
        [f"{s['file']}: {s['status']}" for s in labels] or "none",
    )
    return {"batch": ref.as_dict(), "labels_ingested": labels, "from_prediction_log": from_log}


@step_points
def validate_batch(ctx: StepContext, batch: dict[str, Any]) -> dict[str, Any]:
    """Great Expectations on the batch. A failing batch goes to quarantine and this raises.

    The order makes a retry at any point converge to one state: the batch is written where it
    goes (accepted data, or a byte-identical copy in quarantine) and its report saved, then the
    ledger records it, and only then is the landing file removed. A retry of the same run that
    finds its own ledger row finishes that outcome instead of validating again."""
    from costaware.batches.validation import unreadable, validate_frame

    ref = data.BatchRef(**batch)
    seen = ctx.ledger.batch(ctx.model, ref.batch_id)
    if seen is not None and seen["run_id"] == ctx.run_id and seen["sha256"] == ref.sha256:
        return _finish_recorded(ctx, ref, seen)
    frame = None
    try:
        frame = data.read_frame(ref.path)
    except BatchError as exc:
        outcome = unreadable(ctx.cfg, str(exc))
    else:
        from costaware.steps.measure import champion_categories

        known = champion_categories(ctx)  # categories unseen in training: a warning tier
        outcome = validate_frame(frame, ctx.cfg, ctx.settings.gx_dir, known)
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
        faults.point("validate_batch.quarantine_copied")
        ctx.ledger.record_batch(
            **row,
            path=storage.text(folder),
            status="quarantined",
            report_path=storage.text(folder / "validation.json"),
        )
        return _finish_recorded(ctx, ref, ctx.ledger.batch(ctx.model, ref.batch_id))
    assert frame is not None
    dest = data.accept_batch(ctx.settings, ref, frame)
    faults.point("validate_batch.accepted_written")
    start, end = data.time_bounds(frame)
    report = ctx.report_dir(ref.batch_id) / "validation.json"
    result = {
        "batch_id": ref.batch_id,
        "path": storage.text(dest),
        "rows": len(frame),
        "sha256": ref.sha256,
        "status": outcome.status,
        "warnings": [w.line() for w in outcome.warnings],
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
    }
    data.write_json_atomic(report, {**outcome.as_dict(with_gx=True), "result": result})
    ctx.ledger.record_batch(
        **row,
        path=storage.text(dest),
        status="warned" if outcome.warnings else "accepted",
        report_path=storage.text(report),
        start_ts=start,
        end_ts=end,
    )
    faults.point("validate_batch.recorded")
    data.remove_from_landing(ref)
    return result


def _finish_recorded(ctx: StepContext, ref: data.BatchRef, row: Any) -> dict[str, Any]:
    """Complete an outcome the ledger has recorded: remove the landing file, then return the
    accepted batch's summary or raise for a quarantined one."""
    if row["status"] == "quarantined":
        folder = storage.location(row["path"])
        if not (folder / storage.location(ref.path).name).exists():  # copied before it was recorded
            data.quarantine_batch(ctx.settings, ref, _report(row))
        faults.point("validate_batch.quarantine_recorded")
        data.remove_from_landing(ref)
        raise ValidationFailed(
            f"batch {ref.batch_id} of {ctx.model} failed validation and was moved to "
            f"{folder} (original file kept there with validation.json); nothing was trained "
            f"and the champion is unchanged.\n{row['message']}",
            quarantine_path=str(folder),
        )
    data.remove_from_landing(ref)
    log.info(
        "%s: batch %s was recorded as %s by an earlier try", ctx.model, ref.batch_id, row["status"]
    )
    return dict(_report(row)["result"])


def _report(row: Any) -> dict[str, Any]:
    return dict(storage.read_json(storage.location(row["report_path"])))


def next_backlog_run(
    model: str, run_id: str, named: str | None, taken: dict[str, Any] | None, waiting: list[str]
) -> str | None:
    """The run id for the next run of the backlog, or None (and why, in the log) to stop.

    ``waiting`` holds the batch ids still in the landing zone after this run. The drain goes
    on only when this run took a batch and that batch has left the landing zone (accepted or
    quarantined): a batch whose intake failed for a reason no retry fixes would otherwise be
    taken again by every next run, forever. The id derives from this run's id, so a retry of
    the trigger finds the run it already started instead of starting a second one."""
    if named:
        log.info("%s: a run for the named batch %r does not drain the backlog", model, named)
        return None
    if taken is None:
        log.info("%s: this run took no batch; nothing to drain", model)
        return None
    if not waiting:
        log.info("%s: backlog drained: no batch waiting after %s", model, taken["batch_id"])
        return None
    if taken["batch_id"] in waiting:
        log.warning(
            "%s: stopping the backlog drain: batch %s is still in the landing zone after this "
            "run (its intake did not finish: see validate_batch's log), so the next run would "
            "take it again. %d batch(es) wait: %s. Fix or remove %s, then trigger retrain_%s.",
            model,
            taken["batch_id"],
            len(waiting),
            waiting[:5],
            taken["batch_id"],
            model,
        )
        return None
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    after = re.sub(r"[^A-Za-z0-9_.~:+-]", "-", taken["batch_id"])[:80]
    next_id = f"backlog__after_{after}__{digest}"
    log.info(
        "%s: %d batch(es) still waiting (oldest first: %s); triggering run %s",
        model,
        len(waiting),
        waiting[:5],
        next_id,
    )
    return next_id
