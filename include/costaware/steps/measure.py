"""Measurements before the checkpoint: drift of the batch, the champion's metric and the
expected gain of a retrain."""

from __future__ import annotations

import logging
from typing import Any

from costaware import faults
from costaware.batches import data
from costaware.errors import NotEnoughData
from costaware.faults import step_points
from costaware.models.registry import BORN_TAG, REFERENCE_TAG
from costaware.steps.context import StepContext
from costaware.store import storage

log = logging.getLogger(__name__)


def champion_categories(ctx: StepContext) -> dict[str, list[str]] | None:
    """The serving champion's training categories of each categorical feature without a
    declared ``categories`` list (declared ones are the suite's ExpectColumnValuesToBeInSet),
    read from its drift reference (its training data); None when there is nothing to check
    or no champion yet. Validation reports values outside them as warnings."""
    from costaware.config import category_text

    free = [f.name for f in ctx.cfg.features if f.type == "categorical" and f.categories is None]
    version = ctx.champion() if free else None
    if version is None:
        return None
    tags = ctx.registry.version_tags(ctx.model, version)
    if REFERENCE_TAG not in tags:
        return None
    reference = storage.read_parquet(storage.location(tags[REFERENCE_TAG]), columns=free)
    return {c: sorted({category_text(v) for v in reference[c].dropna()}) for c in free}


@step_points
def measure_drift(ctx: StepContext, validated: dict[str, Any]) -> dict[str, Any]:
    """Evidently drift of the batch's features and champion scores vs its training data."""

    from costaware.batches.drift import SCORE_COLUMN
    from costaware.batches.drift import measure_drift as run_drift
    from costaware.models.scoring import score

    version = ctx.champion()
    if version is None:
        return {
            "skipped": "no champion yet: nothing to compare with",
            "drift_share": 0.0,
            "drifted_columns": [],
        }
    tags = ctx.registry.version_tags(ctx.model, version)
    reference = storage.read_parquet(storage.location(tags[REFERENCE_TAG]))
    current = storage.read_parquet(storage.location(validated["path"]))
    current[SCORE_COLUMN] = score(
        ctx.registry.load(ctx.model, version), current, ctx.cfg.feature_names
    )
    html = ctx.report_dir(validated["batch_id"]) / "drift.html"
    result = run_drift(reference, current, ctx.cfg, report_path=html)
    summary = result.as_dict()
    summary["champion_version"] = version
    lines = ["  " + c.line() for c in result.all_columns()]
    log.info(
        "drift of %s vs champion v%s's training data (%d vs %d rows):\n%s",
        validated["batch_id"],
        version,
        result.current_rows,
        result.reference_rows,
        "\n".join(lines),
    )
    return summary


@step_points
def measure_performance(ctx: StepContext) -> dict[str, Any]:
    """The champion's metric on the newest labelled window, the expected gain of a retrain
    from the probe regret curve (``gain.estimate_gain_probe``, as in bench/policy.py), and
    the realized return of past retrains (``steps.realized``)."""
    from costaware.decide.gain import (
        PROBE_AGES,
        champion_regret,
        estimate_gain_probe,
        regret_curve,
        regret_se,
    )
    from costaware.decide.performance import bootstrap_se, metric_points
    from costaware.decide.policy import point_text
    from costaware.models.algorithms import check_frame, encode_target, fit_probe
    from costaware.models.scoring import predict_scores
    from costaware.store.probes import ProbeStore, in_order, probe_scores

    cfg = ctx.cfg
    labelled = data.labelled_frame(ctx.settings, cfg, ctx.ledger)
    out: dict[str, Any] = {"labelled_rows": len(labelled), "champion_version": None}
    try:
        windows = data.split_windows(labelled, cfg)
    except NotEnoughData as exc:
        out.update(windows=None, train_rows=0, note=str(exc))
        return out
    train = labelled[labelled["batch_id"].isin(windows.train_batches)]
    hold = labelled[labelled["batch_id"].isin(windows.holdout_batches)]
    out.update(windows=windows.as_dict(), train_rows=len(train), holdout_rows=len(hold))
    # Data no retry can fix fails here, at once, naming the column (DataError).
    check_frame(train, cfg, "training")
    check_frame(hold, cfg, "held-out")
    y = encode_target(hold[cfg.target.name], cfg)
    feats = cfg.feature_names

    # The probe: what a retrain on today's training window would score on the newest batch,
    # against the probes of earlier runs on the same rows (the regret of older models).
    order = list(dict.fromkeys(labelled["batch_id"]))
    store = ProbeStore(ctx.settings.probes(ctx.model))
    newest = order[-1]
    probe = store.load(newest)
    if probe is None:
        probe = store.put(newest, fit_probe(train, cfg))
    faults.point("measure_performance.probe_saved")
    probe_s = probe_scores(probe, hold, feats)
    older = [probe_scores(b, hold, feats) for b in store.older(order, PROBE_AGES)]
    seed = cfg.evaluation.seed
    curves = store.save(newest, regret_curve(y, probe_s, older, cfg.metric), order=order)
    faults.point("measure_performance.curves_saved")
    curve_se = store.save(
        newest, regret_se(y, probe_s, older, cfg.metric, seed=seed), "se", order=order
    )
    store.prune(order, PROBE_AGES + 1)
    probe_points = metric_points(y, probe_s, cfg.metric)
    out.update(probe_points=probe_points, probe_curve=curves[-1])

    version = ctx.champion()
    if version is None:
        return out
    s = predict_scores(ctx.registry.load(ctx.model, version), hold, feats)
    points = metric_points(y, s, cfg.metric)
    se = bootstrap_se(y, s, cfg.metric, seed=cfg.evaluation.seed)
    born = ctx.registry.version_tags(ctx.model, version).get(BORN_TAG)
    # Age in batches served, counted in event-time order (never by comparing batch names).
    accepted = data.accepted_batch_ids(ctx.settings, ctx.ledger, ctx.model)
    age = len(accepted) - 1 - accepted.index(born) if born in accepted else PROBE_AGES
    # The champion's regret, its sampling error, and the same for the batches it served
    # before (pooled by the estimator, so one noisy batch does not decide).
    regret, regret_err = champion_regret(y, probe_s, s, cfg.metric, seed=seed)
    served = store.series(f"champion-{version}")
    history: list[tuple[float, float | None]] = []
    for k in in_order(served, order):
        past, past_se = served[k][0], served[k][1]
        if k != newest and past is not None:
            history.append((float(past), past_se))
    store.save(newest, [regret, regret_err], f"champion-{version}", order=order)
    gain = estimate_gain_probe(
        curves,
        age,
        regret,
        curve_se=curve_se,
        champion_se=regret_err,
        champion_history=history,
        rows=len(y),
        extend=True,
    )
    out.update(
        champion_version=version,
        metric=cfg.metric,
        metric_unit=point_text(cfg.metric),
        champion_points=points,
        champion_se=se,
        champion_age_batches=age,
        gain=gain.as_dict(),
    )
    # Realized return: the model this champion replaced, scored on the same later rows, and
    # the running realized / expected ratio of every retrain (the checkpoint's correction).
    from costaware.steps.realized import track_realized

    out["realized"] = track_realized(ctx, version, labelled, accepted)
    log.info(
        "champion v%s (age %d batches): %s %.2f ± %.2f pts on %s (%d rows); a fresh probe "
        "scores %.2f → %s",
        version,
        age,
        cfg.metric,
        points,
        se,
        windows.holdout_batches,
        len(hold),
        probe_points,
        gain.basis,
    )
    return out
