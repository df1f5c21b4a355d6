"""Realized return of promotions: keep scoring the replaced model on later labelled batches.

Called by ``measure.measure_performance`` once the champion is scored on the newest labelled
window. When the champion came from a promotion (the ledger's last alias move is that
promotion), the model it replaced is scored on the same rows of every labelled batch later
than the promotion's own evaluation window — rows neither model was chosen on — once, as its
labels arrive, and each batch's paired difference goes to the ledger (``realized_gains``,
keyed by the promotion's run and the batch: a retry writes the same row). Then every
retrain that went through the gate becomes a ``decide.realized.Outcome`` (a rejected one
realized exactly 0 and still cost its price) and ``decide.realized.summarize`` gives the
running ratio that corrects the next expected gain.
"""

from __future__ import annotations

import logging
from typing import Any

from costaware.steps.context import StepContext

log = logging.getLogger(__name__)


def track_realized(
    ctx: StepContext, champion: str, labelled: Any, order: list[str]
) -> dict[str, Any]:
    """Record the current promotion's gain on each later labelled batch not recorded yet;
    summarize every retrain's realized return. ``labelled``: the labelled rows with their
    ``batch_id``; ``order``: accepted batch ids in event-time order."""
    tracked = _record_later_batches(ctx, champion, labelled, order)
    summary = _summary(ctx, order)
    out = summary.as_dict()
    out["tracking"] = tracked
    log.info("realized return of %s's retrains: %s", ctx.model, summary.text())
    return out


def _record_later_batches(
    ctx: StepContext, champion: str, labelled: Any, order: list[str]
) -> dict[str, Any]:
    import numpy as np

    from costaware.decide.gain import regret_se
    from costaware.decide.performance import metric_points
    from costaware.models.algorithms import check_frame, encode_target
    from costaware.models.scoring import predict_scores
    from costaware.store.ledger import realized_rows, record_realized

    cfg, ledger = ctx.cfg, ctx.ledger
    promo = ledger.last_promotion(ctx.model)
    if (
        promo is None
        or promo["action"] != "promote"
        or promo["status"] != "done"
        or str(promo["to_version"]) != str(champion)
        or not promo["from_version"]
    ):
        return {"promotion": None, "note": "the champion did not replace a model by promotion"}
    evaluated = (promo["metrics"] or {}).get("holdout_batches") or []
    seen = [order.index(b) for b in evaluated if b in order]
    if not seen:
        return {
            "promotion": promo["run_id"],
            "note": "the promotion's evaluation window is unknown: no batch is known to be later",
        }
    have = {
        r["batch_id"] for r in realized_rows(ledger, ctx.model) if r["run_id"] == promo["run_id"]
    }
    later = [
        b
        for b in dict.fromkeys(labelled["batch_id"])
        if b in order and order.index(b) > max(seen) and b not in have
    ]
    base = {"promotion": promo["run_id"], "replaced_version": promo["from_version"]}
    # What is reported is every batch recorded for this promotion so far, whichever try of
    # whichever run recorded it: a retried task returns what the first try returned.
    rank = {b: i for i, b in enumerate(order)}
    recorded = sorted(have, key=lambda b: rank.get(b, -1))
    if not later:
        return {**base, "batches": recorded}
    decision = ledger.decision(ctx.model, promo["run_id"]) or {}
    gain = (decision.get("details") or {}).get("gain") or {}
    replaced = str(promo["from_version"])
    rows = labelled[labelled["batch_id"].isin(later)]
    check_frame(rows, cfg, "later labelled")  # DataError: no retry fixes the data
    y_all = np.asarray(encode_target(rows[cfg.target.name], cfg))
    feats = cfg.feature_names
    # Both models on the same rows: the champion as it serves, the model it replaced.
    new_all = np.asarray(predict_scores(ctx.registry.load(ctx.model, str(champion)), rows, feats))
    old_all = np.asarray(predict_scores(ctx.registry.load(ctx.model, replaced), rows, feats))
    batch_ids = np.asarray(rows["batch_id"])
    done = []
    for b in later:
        m = batch_ids == b
        new_p = metric_points(y_all[m], new_all[m], cfg.metric)
        old_p = metric_points(y_all[m], old_all[m], cfg.metric)
        if not (np.isfinite(new_p) and np.isfinite(old_p)):
            continue  # undefined on this batch (e.g. one class only): no evidence, not zero
        se = regret_se(y_all[m], new_all[m], [old_all[m]], cfg.metric, seed=cfg.evaluation.seed)
        batch = ledger.batch(ctx.model, b) or {}
        record_realized(
            ledger,
            model=ctx.model,
            run_id=promo["run_id"],
            batch_id=b,
            champion_version=str(champion),
            replaced_version=replaced,
            metric=cfg.metric,
            champion_points=new_p,
            replaced_points=old_p,
            gain_points=new_p - old_p,
            gain_se=se[0],
            rows=int(m.sum()),
            expected_gain=gain.get("points"),
            horizon_batches=gain.get("horizon"),
            usd=promo["usd"],
            data_time=batch.get("end_ts"),
        )
        done.append(b)
    return {**base, "batches": sorted([*recorded, *done], key=lambda b: rank.get(b, -1))}


def _summary(ctx: StepContext, order: list[str]) -> Any:
    from costaware.decide.realized import BatchGain, gated, summarize
    from costaware.store.ledger import realized_rows

    ledger = ctx.ledger
    by_run: dict[str, list[dict[str, Any]]] = {}
    for r in realized_rows(ledger, ctx.model):
        by_run.setdefault(r["run_id"], []).append(r)
    rank = {b: i for i, b in enumerate(order)}
    outcomes = []
    for a in ledger.audit(ctx.model):
        if a["action"] not in ("promote", "reject") or a["status"] != "done":
            continue
        if not a["from_version"]:
            continue  # the first model replaced nothing: no gain over anything to measure
        decision = ledger.decision(ctx.model, a["run_id"]) or {}
        gain = (decision.get("details") or {}).get("gain") or {}
        rows = sorted(by_run.get(a["run_id"], []), key=lambda r: rank.get(r["batch_id"], -1))
        outcomes.append(
            gated(
                a["run_id"],
                gain,
                a["usd"],
                a["action"] == "promote",
                tuple(BatchGain(r["batch_id"], r["gain_points"], r["gain_se"]) for r in rows),
            )
        )
    return summarize(outcomes)
