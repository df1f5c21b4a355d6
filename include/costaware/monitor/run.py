"""One run of ``monitor_<model>``: what the live champion is doing, and whether it decays.

Over ``monitor.history_windows`` fixed windows of ``monitor.window_hours`` (boundaries at
``monitor.window_origin`` plus whole widths; window 0, the newest, is open: from the last
boundary up to the clock, or the closed window ending at a clock on a boundary — see
``monitor.windows``):

* request volume, and label coverage (share of the champion's predictions labelled yet) by
  age: window 0 is the newest;
* drift of the newest window's logged features and scores against the champion's training
  reference (the retrain DAG's drift step, ``batches.drift``);
* the champion's metric on each window with at least ``monitor.min_rows`` labels, with its
  sample size and a bootstrap interval; for a window without enough labels, the label-free
  CBPE estimate (``monitor.cbpe``), calibrated on the champion's labelled logged rows (a
  calibration fitted once per window period and champion version: up to one window old);
* **silent degradation**: the newest labelled window's metric below the champion's
  reference (its held-out metric when it was promoted) by more than
  ``monitor.tolerance_points`` with the interval's upper end below the reference too, or
  ``previous_champion`` better on the same labelled rows by more than the tolerance with its
  paired interval above zero. The label-free estimate of the newest window below the line
  makes the verdict ``degraded`` when ``act_on_estimate``, else ``suspect`` (an alert, no
  action). Each verdict names the window where the decay began (the oldest of the unbroken
  run of windows below the line, back from the newest condemned one).

Counts come from the hourly counts of the prediction log (only what changed since the last
run is recounted); a window of more than SAMPLE_ROWS predictions is computed on a seeded
random sample of them and says so (``sample``: rows, of, sampling error). Binary, multiclass
(probabilities re-scored from the logged features by the champion's version; multiclass
CBPE) and regression (no label-free estimate: said in the run's ``note``) are handled.
A closed window whose inputs did not change since the previous run (no new rows, no late
labels, same champion and calibration) is taken over from that run's stored result
(``windows_reused``); the others are computed again (``windows_recomputed``).

Actions (``monitor.on_degradation``): ``alert`` (logged, recorded), ``rollback`` (the same
rollback as ``rollback_<model>``, its audit row keyed by this run), ``retrain`` (the DAG
emits an Asset event for ``retrain_<model>``). A rollback happens once per champion version;
a retrain is requested again once per window while the same version stays degraded (the
checkpoint decides each request afresh); a run that does not act records the degradation.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import numpy as np

from costaware.decide.performance import paired_bootstrap
from costaware.models.registry import CHAMPION, POINTS_TAG, PREVIOUS, REFERENCE_TAG
from costaware.monitor import queries
from costaware.monitor import windows as win
from costaware.steps.context import StepContext, utc_naive
from costaware.store import ledger as ledger_mod
from costaware.store import storage

log = logging.getLogger(__name__)
# Re-exported (callers import them from here): the windows' computation lives in
# monitor.windows.
CONFIDENCE = win.CONFIDENCE
SAMPLE_ROWS = win.SAMPLE_ROWS
fast_se = win.fast_se
read_labels = win.read_labels
NO_REGRESSION_ESTIMATE = (
    "no label-free estimate for regression: CBPE needs the model's probability of being "
    "right, which a regression prediction does not give; NannyML's DLE (a second model that "
    "learns the error from the features) is a different method and is not implemented"
)


def run_monitor(ctx: StepContext, reuse: bool = True) -> dict[str, Any]:
    """One monitor run at ``ctx.clock``. ``reuse=False`` computes every window again instead
    of taking unchanged closed windows from the previous run (tests and benchmarks)."""
    cfg, spec = ctx.cfg, ctx.cfg.monitor
    aliases = ctx.registry.aliases(ctx.model)
    version = aliases.get(CHAMPION)
    end = ctx.clock
    out: dict[str, Any] = {"window_end": end.isoformat(), "champion_version": version}
    if version is None:
        return _finish(ctx, out, "no_data", "none", "no champion yet: nothing is served")
    tags = ctx.registry.version_tags(ctx.model, version)
    reference = _float(tags.get(POINTS_TAG))
    if cfg.target.kind == "regression":
        out["note"] = NO_REGRESSION_ESTIMATE

    # Counts from the hourly counts (only the hours that changed since the last run are
    # recounted); results of unchanged closed windows from the previous run; rows from
    # bounded, seeded samples of the windows computed again.
    out["counts"] = queries.refresh_counts(ctx.ledger, ctx.model).as_dict()
    bounds = win.window_bounds(end, spec.window_hours, spec.history_windows, spec.origin)
    spans = [(w.start, w.end) for w in bounds]
    counts = queries.bounds_counts(ctx.ledger, ctx.model, spans, version)
    done = win.compute_windows(ctx, version, bounds, counts, reuse=reuse)
    out["windows"] = done.windows
    out["windows_recomputed"] = done.recomputed
    out["windows_reused"] = done.reused
    out["calibration"] = done.calibration
    out["reference_points"] = reference
    if done.notes:
        out["rows_note"] = "; ".join(done.notes)
    # Request volume: every prediction served in the newest window, canary rows included.
    out["volume"] = counts[0][2]
    out["drift"] = _drift(ctx, tags, bounds[0].start, bounds[0].end, counts[0][2])

    verdict, reason, began = _verdict(ctx, done.windows, reference, aliases, version)
    out.update(began=began)
    action = "none"
    if verdict == "degraded":
        action = _act(ctx, version, aliases, reason)
    elif verdict == "suspect":
        action = "alert"
        log.warning("%s: champion v%s may be decaying: %s", ctx.model, version, reason)
    return _finish(ctx, out, verdict, action, reason)


def _verdict(
    ctx: StepContext,
    windows: list[dict[str, Any]],
    reference: float | None,
    aliases: dict[str, str],
    version: str,
) -> tuple[str, str, str | None]:
    spec = ctx.cfg.monitor
    tol = spec.tolerance_points
    reasons: list[str] = []
    suspicions: list[str] = []  # the label-free estimate alone, when it may not act
    began: str | None = None
    if reference is not None:
        line = reference - tol

        def below(w: dict[str, Any], estimated: bool) -> bool:
            if w.get("points") is not None:
                return bool(w["points"] < line and w["high"] < reference)
            est = w.get("estimate")
            return bool(estimated and est and est["points"] < line and est["high"] < reference)

        labelled = next((w for w in windows if w.get("points") is not None), None)
        newest_est = windows[0].get("estimate")
        if labelled is not None and below(labelled, False):
            reasons.append(
                f"{ctx.cfg.metric} {labelled['points']:.2f} on the labelled window ending "
                f"{labelled['end']} ({labelled['labelled']} rows, {CONFIDENCE:.0%} interval "
                f"{labelled['low']:.2f}-{labelled['high']:.2f}) is below the champion's "
                f"reference {reference:.2f} minus the tolerance {tol}"
            )
        if newest_est and below(windows[0], True):
            (reasons if spec.act_on_estimate else suspicions).append(
                f"the label-free estimate {newest_est['points']:.2f} (interval "
                f"{newest_est['low']:.2f}-{newest_est['high']:.2f}) for the window ending "
                f"{windows[0]['end']} is below {reference:.2f} minus {tol}"
            )
        # When it began: from the newest window the evidence condemns (the labelled one, or
        # the newest estimate when that counts), back through the unbroken run below the line.
        first = None
        if labelled is not None and below(labelled, False):
            first = windows.index(labelled)
        elif reasons or suspicions:
            first = 0
        if first is not None:
            run = first
            while run + 1 < len(windows) and below(windows[run + 1], True):
                run += 1
            began = windows[run]["start"]
    previous = aliases.get(PREVIOUS)
    if previous and previous != version:
        cmp = _against_previous(ctx, windows, version, previous)
        if cmp is not None and cmp["gain"] > tol and cmp["low"] > 0:
            reasons.append(
                f"previous_champion v{previous} scores {cmp['challenger']:.2f} on the same "
                f"{cmp['rows']} labelled rows where champion v{version} scores "
                f"{cmp['champion']:.2f} (interval of the difference {cmp['low']:.2f} to "
                f"{cmp['high']:.2f})"
            )
    if not reasons:
        if suspicions:
            return "suspect", "; ".join(suspicions), began
        if not any(w.get("points") is not None or w.get("estimate") for w in windows):
            return "no_data", "no labelled window and no estimate yet", None
        return "ok", "no decay beyond the tolerance", began
    return "degraded", "; ".join(reasons), began


def _against_previous(
    ctx: StepContext, windows: list[dict[str, Any]], version: str, previous: str
) -> dict[str, Any] | None:
    """previous_champion minus champion on the newest labelled window's rows ("challenger"
    is the previous champion here)."""
    from costaware.models.scoring import predict_scores

    w = next((w for w in windows if w.get("points") is not None), None)
    if w is None:
        return None
    cfg = ctx.cfg
    # The window's labelled rows, or a seeded sample of SAMPLE_ROWS of them.
    span = queries.Span(
        w["age"],
        dt.datetime.fromisoformat(w["start"]),
        dt.datetime.fromisoformat(w["end"]),
        w["labelled"],
    )
    frame = queries.sample_windows(
        ctx.ledger,
        ctx.model,
        version,
        [span],
        win.SAMPLE_ROWS,
        cfg.evaluation.seed,
        features=True,
        labelled_only=True,
    )
    y = read_labels(cfg.target, frame["label"])
    ok = np.isfinite(y)
    frame, y = frame[ok], y[ok]
    if cfg.target.kind == "multiclass":
        champ = predict_scores(ctx.registry.load(ctx.model, version), frame, cfg.feature_names)
    else:
        champ = frame["score"].to_numpy(dtype=float)
    prev = predict_scores(ctx.registry.load(ctx.model, previous), frame, cfg.feature_names)
    e = cfg.evaluation
    result = paired_bootstrap(y, champ, prev, cfg.metric, e.bootstrap, e.confidence, e.seed)
    return result.as_dict() if math.isfinite(result.gain) else None


def _drift(
    ctx: StepContext, tags: dict[str, str], start: dt.datetime, end: dt.datetime, served: int
) -> dict[str, Any]:
    from costaware.batches.drift import SCORE_COLUMN, measure_drift

    ref_path = tags.get(REFERENCE_TAG)
    if not ref_path:
        return {"skipped": "the champion has no training reference tag"}
    limit = ctx.cfg.monitor.drift_max_rows
    if served <= win.SAMPLE_ROWS:  # every row of the window (all versions), as before sampling
        current = queries.window_rows(ctx.ledger, ctx.model, start, end, max_rows=limit)
        sample = None
    else:  # a seeded random sample of the window, canary rows included
        n = min(limit, win.SAMPLE_ROWS)
        span = queries.Span(0, start, end, served)
        current = queries.sample_windows(
            ctx.ledger, ctx.model, None, [span], n, ctx.cfg.evaluation.seed, features=True
        ).drop(columns="age")
        sample = {"rows": len(current), "of": served}
    if current.empty:
        return {"skipped": "nothing served in the newest window"}
    current = current.rename(columns={"score": SCORE_COLUMN})
    reference = storage.read_parquet(storage.location(ref_path))
    # The fast path where the column's method has one (same scores as Evidently's: see
    # batches/drift.py); an hourly run must not pay Evidently's 10 s on every window.
    result = measure_drift(reference, current, ctx.cfg, engine="fast")
    return {
        "drift_share": result.drift_share,
        "dataset_drift": result.dataset_drift,
        "drifted_columns": result.drifted_columns,
        "prediction": None if result.prediction is None else result.prediction.score,
        "rows": result.current_rows,
        "sample": sample,
    }


def _act(ctx: StepContext, version: str, aliases: dict[str, str], reason: str) -> str:
    """The configured action, once per champion version for ``rollback``; a ``retrain``
    request is repeated once per window while the same version stays degraded (a requested
    run the checkpoint skipped, or whose challenger was rejected, leaves the decay in place:
    the next request passes the checkpoint again, with newer labels)."""
    wanted = ctx.cfg.monitor.on_degradation
    every = dt.timedelta(hours=ctx.cfg.monitor.window_hours)
    for past in ledger_mod.monitor_history(ctx.ledger, ctx.model):
        if (
            past["champion_version"] == version
            and past["action"] == wanted
            and past["run_id"] != ctx.run_id
            and (wanted != "retrain" or ctx.clock - utc_naive(past["window_end"]) < every)
        ):
            log.info("%s: v%s already got %s (run %s)", ctx.model, version, wanted, past["run_id"])
            return "alert"
    if wanted == "rollback":
        if not aliases.get(PREVIOUS):
            log.warning("%s: degraded but no previous_champion to roll back to", ctx.model)
            return "alert"
        from costaware.steps.promote import rollback

        rollback(ctx, None, f"monitor: silent degradation: {reason}")
    return wanted


def _finish(
    ctx: StepContext, out: dict[str, Any], verdict: str, action: str, reason: str
) -> dict[str, Any]:
    out.update(verdict=verdict, action=action, reason=reason)
    ledger_mod.record_monitor_run(
        ctx.ledger,
        model=ctx.model,
        run_id=ctx.run_id,
        window_end=ctx.clock,
        champion_version=out.get("champion_version"),
        verdict=verdict,
        action=action,
        reason=reason,
        details=out,
    )
    log.info("%s", table(out))
    return out


def table(out: dict[str, Any]) -> str:
    """The run as one readable table for the task log."""
    lines = [
        f"monitor of champion v{out.get('champion_version')} at {out['window_end']}: "
        f"{out['verdict'].upper()} → {out['action']} ({out['reason']})"
    ]
    if out.get("windows"):
        lines.append(f"  reference {out.get('reference_points')}  began {out.get('began')}")
        cal = out.get("calibration")
        lines.append(
            f"  windows recomputed {out.get('windows_recomputed')}, reused "
            f"{len(out.get('windows_reused') or [])}; CBPE calibration "
            + (f"fitted {cal['fitted_at']} on {cal['rows']} rows" if cal else "none")
        )
        lines.append("  age start                served labelled  metric [interval]   estimate")
        for w in out["windows"]:
            m = "" if w.get("points") is None else f"{w['points']:.2f} [{w['low']}, {w['high']}]"
            e = w.get("estimate")
            est = "" if not e else f"{e['points']:.2f} [{e['low']}, {e['high']}]"
            mark = "*" if w.get("sample") or (e and e.get("sample")) else " "
            reused = "" if w["age"] in (out.get("windows_recomputed") or []) else "  (reused)"
            lines.append(
                f"  {w['age']:>3} {w['start'][:19]:<20} {w['served']:>6} {w['labelled']:>8}{mark} "
                f"{m:<19} {est}{' (open)' if w.get('open') else ''}{reused}"
            )
        sampled = [w for w in out["windows"] if w.get("sample")]
        if sampled:
            w = sampled[0]["sample"]
            lines.append(
                f"  * sampled windows: the metric on {w['rows']} of {w['of']} labelled rows "
                f"(sampling error ±{w['sampling_se']} points, 1 SE), the estimate on "
                f"{win.SAMPLE_ROWS} rows a window (monitor.run.SAMPLE_ROWS); details per window"
            )
    if out.get("note"):
        lines.append(f"  {out['note']}")
    return "\n".join(lines)


def _float(value: str | None) -> float | None:
    try:
        f = float(value) if value is not None else None
    except ValueError:
        return None
    return f if f is not None and math.isfinite(f) else None
