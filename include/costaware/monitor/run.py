"""One run of ``monitor_<model>``: what the live champion is doing, and whether it decays.

For the window ending at the run's clock (``monitor.window_hours`` long) and the
``monitor.history_windows`` before it:

* request volume, and label coverage (share of the champion's predictions labelled yet) by
  age: window 0 is the newest;
* drift of the newest window's logged features and scores against the champion's training
  reference (the retrain DAG's drift step, ``batches.drift``);
* the champion's metric on each window with at least ``monitor.min_rows`` labels, with its
  sample size and a bootstrap interval; for a window without enough labels, the label-free
  CBPE estimate (``monitor.cbpe``), calibrated on the champion's labelled logged rows;
* **silent degradation**: the newest labelled window's metric below the champion's
  reference (its held-out metric when it was promoted) by more than
  ``monitor.tolerance_points`` with the interval's upper end below the reference too, or
  ``previous_champion`` better on the same labelled rows by more than the tolerance with its
  paired interval above zero. The label-free estimate of the newest window below the line
  makes the verdict ``degraded`` when ``act_on_estimate``, else ``suspect`` (an alert, no
  action). Each verdict names the window where the decay began (the oldest of the unbroken
  run of windows below the line, back from the newest condemned one).

Actions (``monitor.on_degradation``): ``alert`` (logged, recorded), ``rollback`` (the same
rollback as ``rollback_<model>``, its audit row keyed by this run), ``retrain`` (the DAG
emits an Asset event for ``retrain_<model>``). One action per champion version: a later run
that finds the same version still degraded records it and does not act again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import numpy as np

from costaware.decide.performance import bootstrap_se, metric_points, paired_bootstrap
from costaware.models.registry import CHAMPION, POINTS_TAG, PREVIOUS, REFERENCE_TAG
from costaware.monitor import cbpe, queries
from costaware.steps.context import StepContext
from costaware.store import ledger as ledger_mod
from costaware.store import storage

log = logging.getLogger(__name__)
CONFIDENCE = 0.9  # the intervals' level, as evaluation.confidence's default
CBPE_METRICS = ("roc_auc", "accuracy", "log_loss")  # binary classification (monitor.cbpe)


def run_monitor(ctx: StepContext) -> dict[str, Any]:
    cfg, spec = ctx.cfg, ctx.cfg.monitor
    aliases = ctx.registry.aliases(ctx.model)
    version = aliases.get(CHAMPION)
    end = ctx.clock
    width = dt.timedelta(hours=spec.window_hours)
    out: dict[str, Any] = {"window_end": end.isoformat(), "champion_version": version}
    if version is None:
        return _finish(ctx, out, "no_data", "none", "no champion yet: nothing is served")
    tags = ctx.registry.version_tags(ctx.model, version)
    reference = _float(tags.get(POINTS_TAG))
    positive = str(cfg.target.positive)
    # Metrics over time and CBPE are built for binary targets; other kinds get volume,
    # coverage and drift only (said in the run's details).
    binary = getattr(cfg.target, "kind", "binary") == "binary"
    if not binary:
        out["note"] = "metric windows and CBPE: binary targets only, not built for this kind"

    # One read of the champion's history (scores and labels, no features); windows are cut
    # here. Window k is [end - (k + 1) * width, end - k * width), k = 0 the newest.
    history = queries.window_rows(
        ctx.ledger,
        ctx.model,
        end - width * spec.history_windows,
        end,
        version=version,
        features=False,
    )
    age_s = np.array([(end - t).total_seconds() for t in history["ts"]], dtype=float)
    ages = np.ceil(age_s / width.total_seconds()).astype(int) - 1
    has_label = history["label"].notna().to_numpy()
    calibration: cbpe.Calibration | None = None
    if binary and has_label.sum() >= spec.min_rows:
        y_all = (history.loc[has_label, "label"] == positive).astype(int).to_numpy()
        if 0 < y_all.sum() < len(y_all):
            calibration = cbpe.calibrate(history.loc[has_label, "score"].to_numpy(), y_all)
    windows: list[dict[str, Any]] = []
    for k in range(spec.history_windows):
        w_end, w_start = end - width * k, end - width * (k + 1)
        frame = history[ages == k]
        total, labelled = len(frame), int(has_label[ages == k].sum())
        row: dict[str, Any] = {
            "age": k,
            "start": w_start.isoformat(),
            "end": w_end.isoformat(),
            "served": total,
            "labelled": labelled,
            "coverage": labelled / total if total else None,
        }
        if total:
            y = frame["label"].dropna()
            if binary and len(y) >= spec.min_rows:
                yy = (y == positive).astype(int).to_numpy()
                s = frame.loc[y.index, "score"].to_numpy()
                pts = metric_points(yy, s, cfg.metric)
                se = bootstrap_se(yy, s, cfg.metric, seed=cfg.evaluation.seed)
                row.update(points=_r(pts), low=_r(pts - 1.645 * se), high=_r(pts + 1.645 * se))
            if labelled < total and calibration is not None and cfg.metric in CBPE_METRICS:
                est = cbpe.estimate(calibration, frame["score"].to_numpy(), cfg.metric, CONFIDENCE)
                row["estimate"] = est.as_dict()
        windows.append(row)
    out["windows"] = windows
    out["reference_points"] = reference
    # Request volume: every prediction served in the newest window, canary rows included.
    out["volume"] = queries.window_counts(ctx.ledger, ctx.model, end - width, end)[0]
    out["drift"] = _drift(ctx, tags, end - width, end)

    verdict, reason, began = _verdict(ctx, windows, reference, aliases, version)
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
    from costaware.models.scoring import score

    w = next((w for w in windows if w.get("points") is not None), None)
    if w is None:
        return None
    cfg = ctx.cfg
    frame = queries.window_rows(
        ctx.ledger,
        ctx.model,
        dt.datetime.fromisoformat(w["start"]),
        dt.datetime.fromisoformat(w["end"]),
        version=version,
        labelled_only=True,
    )
    y = (frame["label"] == str(cfg.target.positive)).astype(int).to_numpy()
    prev = score(ctx.registry.load(ctx.model, previous), frame, cfg.feature_names)
    e = cfg.evaluation
    result = paired_bootstrap(
        y, frame["score"].to_numpy(), prev, cfg.metric, e.bootstrap, e.confidence, e.seed
    )
    return result.as_dict() if math.isfinite(result.gain) else None


def _drift(
    ctx: StepContext, tags: dict[str, str], start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    from costaware.batches.drift import SCORE_COLUMN, measure_drift

    ref_path = tags.get(REFERENCE_TAG)
    if not ref_path:
        return {"skipped": "the champion has no training reference tag"}
    current = queries.window_rows(
        ctx.ledger, ctx.model, start, end, max_rows=ctx.cfg.monitor.drift_max_rows
    )
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
    }


def _act(ctx: StepContext, version: str, aliases: dict[str, str], reason: str) -> str:
    wanted = ctx.cfg.monitor.on_degradation
    for past in ledger_mod.monitor_history(ctx.ledger, ctx.model):
        if (
            past["champion_version"] == version
            and past["action"] == wanted
            and past["run_id"] != ctx.run_id
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
        lines.append("  age start                served labelled  metric [interval]   estimate")
        for w in out["windows"]:
            m = "" if w.get("points") is None else f"{w['points']:.2f} [{w['low']}, {w['high']}]"
            e = w.get("estimate")
            est = "" if not e else f"{e['points']:.2f} [{e['low']}, {e['high']}]"
            lines.append(
                f"  {w['age']:>3} {w['start'][:19]:<20} {w['served']:>6} {w['labelled']:>8}  "
                f"{m:<19} {est}"
            )
    return "\n".join(lines)


def _float(value: str | None) -> float | None:
    try:
        f = float(value) if value is not None else None
    except ValueError:
        return None
    return f if f is not None and math.isfinite(f) else None


def _r(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None
