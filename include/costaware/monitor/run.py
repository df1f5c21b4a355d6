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

Counts come from the hourly counts of the prediction log (only what changed since the last
run is recounted); a window of more than SAMPLE_ROWS predictions is computed on a seeded
random sample of them and says so (``sample``: rows, of, sampling error). Binary, multiclass
(probabilities re-scored from the logged features by the champion's version; multiclass
CBPE) and regression (no label-free estimate: said in the run's ``note``) are handled.

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

from costaware.config import METRIC_SPECS, category_text
from costaware.decide.performance import bootstrap_se, metric_points, paired_bootstrap
from costaware.models.registry import CHAMPION, POINTS_TAG, PREVIOUS, REFERENCE_TAG
from costaware.monitor import cbpe, queries
from costaware.steps.context import StepContext, utc_naive
from costaware.store import ledger as ledger_mod
from costaware.store import storage

log = logging.getLogger(__name__)
CONFIDENCE = 0.9  # the intervals' level, as evaluation.confidence's default
CBPE_METRICS = {
    "binary": ("roc_auc", "accuracy", "log_loss"),
    "multiclass": cbpe.MULTICLASS_METRICS,
}
# Rows per window the monitor computes on; a bigger window is read as a seeded random sample
# of this many (queries.sample_windows). Chosen from the worst case of ROC AUC's sampling
# error, not on any data: at AUC 0.5 with balanced classes (Hanley & McNeil's variance, the
# largest), 10 000 rows give a standard error of 0.58 points, a 90 % half-width of 0.95 —
# under half of the default tolerance (2 points), so a window at the line is still told
# apart from the reference. Each sampled window says its sample and sampling error.
SAMPLE_ROWS = 10_000
NO_REGRESSION_ESTIMATE = (
    "no label-free estimate for regression: CBPE needs the model's probability of being "
    "right, which a regression prediction does not give; NannyML's DLE (a second model that "
    "learns the error from the features) is a different method and is not implemented"
)


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
    kind = cfg.target.kind
    if kind == "regression":
        out["note"] = NO_REGRESSION_ESTIMATE

    # Counts from the hourly counts (only the hours that changed since the last run are
    # recounted), rows from bounded, seeded samples of the windows that need them.
    out["counts"] = queries.refresh_counts(ctx.ledger, ctx.model).as_dict()
    counts = queries.windows_counts(
        ctx.ledger, ctx.model, end, width, spec.history_windows, version
    )
    rows = _Rows(ctx, version, end, width, counts)
    calibration = rows.calibration()
    windows: list[dict[str, Any]] = []
    for k, (total, labelled, _) in enumerate(counts):
        w_end, w_start = end - width * k, end - width * (k + 1)
        row: dict[str, Any] = {
            "age": k,
            "start": w_start.isoformat(),
            "end": w_end.isoformat(),
            "served": total,
            "labelled": labelled,
            "coverage": labelled / total if total else None,
        }
        if total and labelled >= spec.min_rows:
            y, s = rows.labelled(k)
            if len(y) >= 2:
                row.update(_metric(cfg, y, s, labelled))
        if (
            labelled < total
            and calibration is not None
            and cfg.metric in CBPE_METRICS.get(kind, ())
        ):
            s, m = rows.scores(k)
            if isinstance(calibration, cbpe.MulticlassCalibration):
                est = cbpe.estimate_multiclass(calibration, s, cfg.metric, CONFIDENCE)
            else:
                est = cbpe.estimate(calibration, s, cfg.metric, CONFIDENCE)
            row["estimate"] = est.as_dict()
            if m < total:  # a sample: its share of the window and the error that implies
                se = (est.high - est.low) / (2 * 1.645) * math.sqrt(1 - m / total)
                row["estimate"]["sample"] = {"rows": m, "of": total, "sampling_se": _r(se)}
        windows.append(row)
    out["windows"] = windows
    out["reference_points"] = reference
    if rows.notes:
        out["rows_note"] = "; ".join(rows.notes)
    # Request volume: every prediction served in the newest window, canary rows included.
    out["volume"] = counts[0][2]
    out["drift"] = _drift(ctx, tags, end - width, end, counts[0][2])

    verdict, reason, began = _verdict(ctx, windows, reference, aliases, version)
    out.update(began=began)
    action = "none"
    if verdict == "degraded":
        action = _act(ctx, version, aliases, reason)
    elif verdict == "suspect":
        action = "alert"
        log.warning("%s: champion v%s may be decaying: %s", ctx.model, version, reason)
    return _finish(ctx, out, verdict, action, reason)


def _metric(cfg: Any, y: np.ndarray, s: np.ndarray, labelled: int) -> dict[str, Any]:
    """The window's metric with its 90 % interval: on every labelled row (bootstrap, as the
    evaluation step), or on a sample of them (analytic standard error, and the sampling
    error against the whole window)."""
    pts = metric_points(y, s, cfg.metric)
    if len(y) >= labelled:
        se = bootstrap_se(y, s, cfg.metric, seed=cfg.evaluation.seed)
        return {"points": _r(pts), "low": _r(pts - 1.645 * se), "high": _r(pts + 1.645 * se)}
    se = fast_se(y, s, cfg.metric, seed=cfg.evaluation.seed)
    sampling = se * math.sqrt(1 - len(y) / labelled)  # finite population correction
    return {
        "points": _r(pts),
        "low": _r(pts - 1.645 * se),
        "high": _r(pts + 1.645 * se),
        "sample": {"rows": len(y), "of": labelled, "sampling_se": _r(sampling)},
    }


def fast_se(y: Any, s: Any, metric: str, seed: int = 0) -> float:
    """A metric's standard error in points without resampling, for big (sampled) windows:
    DeLong's for binary ROC AUC, the mean's for per-row metrics (accuracy, log loss, MAE), the
    delta method's for RMSE; the bootstrap for the others (R², macro F1, multiclass AUC)."""
    yy = np.asarray(y, dtype=float)
    ss = np.asarray(s, dtype=float)
    spec = METRIC_SPECS[metric]
    n = len(yy)
    if metric == "roc_auc" and ss.ndim == 1:
        from scipy.stats import rankdata

        pos = yy == 1
        n1, n0 = int(pos.sum()), int((~pos).sum())
        if n1 < 2 or n0 < 2:
            return float("nan")
        r_all = rankdata(ss)
        v10 = (r_all[pos] - rankdata(ss[pos])) / n0  # negatives below each positive
        v01 = 1 - (r_all[~pos] - rankdata(ss[~pos])) / n1  # positives above each negative
        return float(spec.scale * math.sqrt(v10.var(ddof=1) / n1 + v01.var(ddof=1) / n0))
    if spec.per_row_mean:
        if metric == "accuracy":
            pred = ss.argmax(axis=1) if ss.ndim == 2 else (ss >= 0.5)
            terms = (pred == yy).astype(float)
        elif metric == "log_loss" and ss.ndim == 2:
            terms = -np.log(np.clip(ss[np.arange(n), yy.astype(int)], 1e-7, 1))
        elif metric == "log_loss":
            p = np.clip(ss, 1e-7, 1 - 1e-7)
            terms = -(yy * np.log(p) + (1 - yy) * np.log(1 - p))
        else:  # mae
            terms = np.abs(ss - yy)
        return float(spec.scale * terms.std(ddof=1) / math.sqrt(n))
    if metric == "rmse":
        e2 = (ss - yy) ** 2
        rmse = math.sqrt(e2.mean())
        return float(e2.std(ddof=1) / (2 * rmse * math.sqrt(n))) if rmse > 0 else 0.0
    return bootstrap_se(yy, ss, metric, seed=seed)


def read_labels(target: Any, labels: Any) -> np.ndarray:
    """Logged labels (text) as the metrics read them — binary 0/1, multiclass the class's
    index in ``target.classes``, regression the number — NaN where one cannot be read."""
    import pandas as pd

    if target.kind == "binary":
        return (labels == str(target.positive)).astype(float).to_numpy()
    if target.kind == "multiclass":
        index = {category_text(c): float(i) for i, c in enumerate(target.classes or [])}
        return np.array([index.get(category_text(v), np.nan) for v in labels], dtype=float)
    return pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)


class _Rows:
    """The rows the run computes on, per window: every row of a window that served at most
    SAMPLE_ROWS (exactly what the monitor read before sampling existed), else seeded samples
    — of its labelled rows (the metric) and of all its rows (the estimate). Labels are read
    by kind; a multiclass model's class probabilities are re-scored from the logged features
    by the champion's own version (the log keeps the predicted class only)."""

    def __init__(
        self,
        ctx: StepContext,
        version: str,
        end: dt.datetime,
        width: dt.timedelta,
        counts: list[tuple[int, int, int]],
    ) -> None:
        cfg, spec = ctx.cfg, ctx.cfg.monitor
        self.cfg, self.counts = cfg, counts
        self.notes: list[str] = []
        kind = cfg.target.kind
        estimates = kind != "regression"
        multiclass = kind == "multiclass"
        seed = cfg.evaluation.seed

        def span(k: int, n: int) -> queries.Span:
            return queries.Span(k, end - width * (k + 1), end - width * k, n)

        whole = [
            span(k, t)
            for k, (t, lab, _) in enumerate(counts)
            if 0 < t <= SAMPLE_ROWS and (estimates or lab >= spec.min_rows)
        ]
        # A big window is read once where it can be: a sample of all its rows serves the
        # estimate and, when at least half the window is labelled, the metric (its labelled
        # rows are then a random sample of the labelled rows, ≥ half of SAMPLE_ROWS); a
        # window labelled in full, or in less than half, gets a sample of its labelled rows.
        big_all = [
            span(k, t)
            for k, (t, lab, _) in enumerate(counts)
            if t > SAMPLE_ROWS and lab < t and estimates
        ]
        big_lab = [
            span(k, lab)
            for k, (t, lab, _) in enumerate(counts)
            if t > SAMPLE_ROWS
            and lab > 0
            and (lab == t or 2 * lab < t or not estimates)
            and (estimates or lab >= spec.min_rows)
        ]
        read = queries.sample_windows
        led, model = ctx.ledger, ctx.model
        self.whole = read(led, model, version, whole, SAMPLE_ROWS, seed, features=multiclass)
        self.big_lab = read(
            led, model, version, big_lab, SAMPLE_ROWS, seed, features=multiclass, labelled_only=True
        )
        self.big_all = read(led, model, version, big_all, SAMPLE_ROWS, seed, features=multiclass)
        self.champion = ctx.registry.load(ctx.model, version) if multiclass else None
        # Split once by window (checking labels per window on the whole frames cost seconds).
        labelled = self._labelled_frame()
        self.labelled_by_age = dict(tuple(labelled.groupby("age", sort=False)))
        self.all_by_age = dict(tuple(self.whole.groupby("age", sort=False)))
        self.all_by_age.update(
            {k: f for k, f in self.big_all.groupby("age", sort=False) if k not in self.all_by_age}
        )
        self.all_labelled = labelled

    def _y(self, labels: Any) -> np.ndarray:
        return read_labels(self.cfg.target, labels)

    def _s(self, frame: Any) -> np.ndarray:
        if self.champion is None:
            return frame["score"].to_numpy(dtype=float)
        from costaware.models.scoring import predict_scores

        probs = predict_scores(self.champion, frame, self.cfg.feature_names)
        differs = int((probs.argmax(axis=1) != frame["score"].to_numpy()).sum())
        if differs:
            self.notes.append(
                f"{differs} of {len(frame)} re-scored rows predict another class than logged"
            )
        return np.asarray(probs, dtype=float)

    def _labelled_frame(self) -> Any:
        import pandas as pd

        w = self.whole[self.whole["label"].notna()]
        b = self.big_lab
        # Windows without a sample of labelled rows: the labelled rows of their all-rows sample.
        a = self.big_all[self.big_all["label"].notna() & ~self.big_all["age"].isin(b["age"])]
        return pd.concat([f for f in (w, b, a) if len(f)] or [w])

    def labelled(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) of window k's labelled rows (or every window's), unreadable
        labels dropped (and said)."""
        frame = self.all_labelled if k is None else self.labelled_by_age.get(k)
        if frame is None or len(frame) == 0:
            return np.array([]), np.array([])
        y = self._y(frame["label"])
        ok = np.isfinite(y)
        if not ok.all():
            self.notes.append(f"{int((~ok).sum())} labels not readable as {self.cfg.target.kind}")
        return y[ok], self._s(frame)[ok]

    def scores(self, k: int) -> tuple[np.ndarray, int]:
        """Window k's scores (every row, or a sample) and how many rows they are."""
        frame = self.all_by_age.get(k, self.whole.iloc[:0])
        return self._s(frame), len(frame)

    def calibration(self) -> cbpe.Calibration | cbpe.MulticlassCalibration | None:
        """CBPE's reference: the champion's labelled logged rows of the history (or their
        samples). None for regression, or too few labels (monitor.min_rows)."""
        kind = self.cfg.target.kind
        if kind == "regression":
            return None
        y, s = self.labelled(None)
        if len(y) < self.cfg.monitor.min_rows:
            return None
        if kind == "multiclass":
            return cbpe.calibrate_multiclass(s, y.astype(int))
        if 0 < y.sum() < len(y):
            return cbpe.calibrate(s, y)
        return None


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
        SAMPLE_ROWS,
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
    if served <= SAMPLE_ROWS:  # every row of the window (all versions), as before sampling
        current = queries.window_rows(ctx.ledger, ctx.model, start, end, max_rows=limit)
        sample = None
    else:  # a seeded random sample of the window, canary rows included
        n = min(limit, SAMPLE_ROWS)
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
        lines.append("  age start                served labelled  metric [interval]   estimate")
        for w in out["windows"]:
            m = "" if w.get("points") is None else f"{w['points']:.2f} [{w['low']}, {w['high']}]"
            e = w.get("estimate")
            est = "" if not e else f"{e['points']:.2f} [{e['low']}, {e['high']}]"
            mark = "*" if w.get("sample") or (e and e.get("sample")) else " "
            lines.append(
                f"  {w['age']:>3} {w['start'][:19]:<20} {w['served']:>6} {w['labelled']:>8}{mark} "
                f"{m:<19} {est}"
            )
        sampled = [w for w in out["windows"] if w.get("sample")]
        if sampled:
            w = sampled[0]["sample"]
            lines.append(
                f"  * sampled windows: the metric on {w['rows']} of {w['of']} labelled rows "
                f"(sampling error ±{w['sampling_se']} points, 1 SE), the estimate on "
                f"{SAMPLE_ROWS} rows a window (monitor.run.SAMPLE_ROWS); details per window"
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


def _r(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None
