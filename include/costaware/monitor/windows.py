"""The monitor's windows: where they lie, the rows each is computed on, its result, and which
results a run takes over from the previous run instead of computing them again.

* **Fixed windows**, as NannyML's chunks and dashboards draw them: window boundaries are
  ``monitor.window_origin`` plus whole multiples of ``monitor.window_hours`` (UTC; by default
  from a Monday midnight: days midnight to midnight, weeks Monday to Monday). Windows 1 … N−1 are
  closed, boundary to boundary; window 0 is the open stretch from the last boundary before
  the clock up to the clock (``"open": true`` in its result). A clock on a boundary has no
  open stretch: window 0 is then the closed window ending at the clock.
* **A sample per window** (``queries.sample_windows``): seeded by the window's start and
  drawn at a rate from the window's own count, so it is the same whichever run draws it.
* **A stable CBPE calibration**: fitted on the labelled rows of every window (their samples)
  by the first run of each window period (the newest boundary at or before the clock) and
  kept in that run's details; the runs until the next boundary use it and name that run
  (``fit_in_run``) instead of storing it again, so a calibration is up to one window old.
  A new champion version is fitted at once; a run that cannot fit one (too few labels) keeps
  no calibration and the next run tries again, as does a run whose fitting run is gone.
* **Reuse**: a closed window's result is taken from the newest previous monitor run of the
  model when its inputs (``inputs`` in the result: bounds, champion version, the window's
  served and labelled counts from the hourly counts, the calibration's key where the window
  has an estimate, the sample settings, the metric settings and RESULT_FORMAT) are all the
  same; otherwise it is computed again. A late label changes its window's labelled count,
  so that window (and only that one) is computed again. A result is the same whether reused
  or computed: ``tests/monitor/test_window_cache.py``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from costaware.config import METRIC_SPECS, category_text
from costaware.decide.performance import bootstrap_se, metric_points
from costaware.monitor import cbpe, queries
from costaware.steps.context import StepContext

ORIGIN = dt.datetime(1970, 1, 5)  # monitor.window_origin's default: a Monday midnight (UTC)
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
# The format of a window's stored result: a change to what a result holds or how it is
# computed bumps it, so no run reuses a result of another format.
RESULT_FORMAT = 1


@dataclass(frozen=True)
class Window:
    age: int  # 0 = the newest
    start: dt.datetime
    end: dt.datetime
    open: bool  # window 0 up to the clock, not yet at its boundary


def period_start(
    clock: dt.datetime, window_hours: float, origin: dt.datetime = ORIGIN
) -> dt.datetime:
    """The newest window boundary at or before ``clock`` (``origin`` is a boundary)."""
    width = round(window_hours * 3600e6)
    t = (clock - origin) // dt.timedelta(microseconds=1)
    return origin + dt.timedelta(microseconds=t - t % width)  # floor, also before the origin


def window_bounds(
    clock: dt.datetime, window_hours: float, n: int, origin: dt.datetime = ORIGIN
) -> list[Window]:
    """The run's ``n`` windows, newest first: the open stretch since the last boundary before
    ``clock`` (when the clock is not on one), then closed windows boundary to boundary."""
    width = dt.timedelta(microseconds=round(window_hours * 3600e6))
    top = period_start(clock, window_hours, origin)
    out = [Window(0, top, clock, True)] if top < clock else []
    while len(out) < n:
        i = len(out) - (1 if out and out[0].open else 0)
        out.append(Window(len(out), top - width * (i + 1), top - width * i, False))
    return out


@dataclass
class Computed:
    """What ``compute_windows`` did: the results, which ages it computed and which it took
    over, and the calibration the run used (its record, kept in the run's details)."""

    windows: list[dict[str, Any]]
    recomputed: list[int]
    reused: list[int]
    calibration: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


def compute_windows(
    ctx: StepContext,
    version: str,
    bounds: list[Window],
    counts: list[tuple[int, int, int]],
    reuse: bool = True,
) -> Computed:
    """Every window's result: taken over from the newest previous run where its inputs are
    the same (``reuse``; False computes every window, for tests and benchmarks), else
    computed from its rows."""
    cfg, spec = ctx.cfg, ctx.cfg.monitor
    kind = cfg.target.kind
    previous = queries.latest_monitor_run(ctx.ledger, ctx.model)
    details = (previous or {}).get("details") or {}
    fitted_at = period_start(ctx.clock, spec.window_hours, spec.origin).isoformat()
    calibration: cbpe.Calibration | cbpe.MulticlassCalibration | None = None
    record: dict[str, Any] | None = None
    rows: _Rows | None = None
    if kind != "regression":
        calibration, record, rows = _calibration(ctx, version, bounds, counts, previous, fitted_at)
    cal_key = None if record is None else {k: record[k] for k in ("version", "fitted_at", "rows")}
    estimates = calibration is not None and cfg.metric in CBPE_METRICS.get(kind, ())

    before = {(w["start"], w["end"]): w for w in details.get("windows") or []}
    results: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    inputs: dict[int, dict[str, Any]] = {}
    for w, (total, labelled, _) in zip(bounds, counts, strict=True):
        inputs[w.age] = {
            "format": RESULT_FORMAT,
            "version": version,
            "served": total,
            "labelled": labelled,
            "calibration": cal_key if estimates and labelled < total else None,
            "sample": {
                "rows": SAMPLE_ROWS,
                "seed": cfg.evaluation.seed,
                "whole_read_factor": queries.WHOLE_READ_FACTOR,
                "oversample": queries.OVERSAMPLE,
            },
            "metric": cfg.metric,
            "min_rows": spec.min_rows,
            "confidence": CONFIDENCE,
        }
        old = before.get((w.start.isoformat(), w.end.isoformat()))
        if (
            reuse
            and not w.open
            and old
            and not old.get("open")
            and old.get("inputs") == inputs[w.age]
        ):
            results[w.age] = {**old, "age": w.age}
        else:
            todo.append(w.age)
    if todo and rows is None:
        rows = _Rows(ctx, version, bounds, counts, todo)
    for k in todo:
        assert rows is not None
        w, (total, labelled, _) = bounds[k], counts[k]
        row: dict[str, Any] = {
            "age": k,
            "start": w.start.isoformat(),
            "end": w.end.isoformat(),
            "open": w.open,
            "served": total,
            "labelled": labelled,
            "coverage": labelled / total if total else None,
        }
        if total and labelled >= spec.min_rows:
            y, s = rows.labelled(k)
            if len(y) >= 2:
                row.update(_metric(cfg, y, s, labelled))
        if labelled < total and estimates:
            assert calibration is not None
            s, m = rows.scores(k)
            if isinstance(calibration, cbpe.MulticlassCalibration):
                est = cbpe.estimate_multiclass(calibration, s, cfg.metric, CONFIDENCE)
            else:
                est = cbpe.estimate(calibration, s, cfg.metric, CONFIDENCE)
            row["estimate"] = est.as_dict()
            if m < total:  # a sample: its share of the window and the error that implies
                se = (est.high - est.low) / (2 * 1.645) * math.sqrt(1 - m / total)
                row["estimate"]["sample"] = {"rows": m, "of": total, "sampling_se": _r(se)}
        if rows.notes.get(k):
            row["notes"] = rows.notes[k]
        row["inputs"] = inputs[k]
        results[k] = row
    windows = [results[w.age] for w in bounds]
    notes = [n for w in windows for n in w.get("notes", [])]
    reused = [w.age for w in bounds if w.age not in todo]
    return Computed(windows, todo, reused, record, notes)


def dump_calibration(cal: cbpe.Calibration | cbpe.MulticlassCalibration) -> dict[str, Any]:
    """A calibration as JSON (floats round-trip exactly through JSON)."""
    if isinstance(cal, cbpe.MulticlassCalibration):
        return {
            "classes": [None if c is None else dump_calibration(c) for c in cal.classes],
            "prior": [float(v) for v in cal.prior],
            "rows": cal.rows,
        }
    return {"x": [float(v) for v in cal.x], "y": [float(v) for v in cal.y], "rows": cal.rows}


def load_calibration(fit: dict[str, Any]) -> cbpe.Calibration | cbpe.MulticlassCalibration:
    if "classes" in fit:
        maps = tuple(None if c is None else _load_binary(c) for c in fit["classes"])
        return cbpe.MulticlassCalibration(maps, np.asarray(fit["prior"], dtype=float), fit["rows"])
    return _load_binary(fit)


def _load_binary(fit: dict[str, Any]) -> cbpe.Calibration:
    x, y = (np.asarray(fit[k], dtype=float) for k in ("x", "y"))
    return cbpe.Calibration(x, y, int(fit["rows"]))


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


def _stored_fit(
    ctx: StepContext, previous: dict[str, Any] | None, version: str, fitted_at: str
) -> tuple[dict[str, Any], int, str] | None:
    """The calibration fit of this window period and champion version that the previous run
    used: (fit, ledger id and Airflow run id of the run that fitted it), or None — a new
    period, a new champion, or the fitting run is gone."""
    record = ((previous or {}).get("details") or {}).get("calibration")
    if previous is None or not record:
        return None
    if (record.get("version"), record.get("fitted_at")) != (version, fitted_at):
        return None
    if "fit" in record:  # the previous run fitted it: its details are read already
        return record["fit"], previous["id"], previous["run_id"]
    found = queries.calibration_fit(ctx.ledger, record.get("fit_in_run"))
    if found is None or found[1] is None:
        return None
    return found[1], record["fit_in_run"], found[0]


def _calibration(
    ctx: StepContext,
    version: str,
    bounds: list[Window],
    counts: list[tuple[int, int, int]],
    previous: dict[str, Any] | None,
    fitted_at: str,
) -> tuple[
    cbpe.Calibration | cbpe.MulticlassCalibration | None, dict[str, Any] | None, _Rows | None
]:
    """The CBPE calibration this run uses, what its details keep of it, and the rows read to
    fit it (None when a stored fit was used)."""
    stored = _stored_fit(ctx, previous, version, fitted_at)
    if stored is not None:
        fit, fit_run, fit_by = stored
        calibration = load_calibration(fit)
        # The fit stays in the run that made it (hourly runs do not copy it each hour);
        # when this run's row is the fitting row (a rerun), writing it keeps the fit.
        keep = {"fit": fit} if fit_by == ctx.run_id else {"fit_in_run": fit_run}
        return (
            calibration,
            {"version": version, "fitted_at": fitted_at, "rows": calibration.rows, **keep},
            None,
        )
    rows = _Rows(ctx, version, bounds, counts, range(len(bounds)))
    fitted = rows.calibration()
    if fitted is None:
        return None, None, rows
    record = {
        "version": version,
        "fitted_at": fitted_at,
        "rows": fitted.rows,
        "fit": dump_calibration(fitted),
    }
    return fitted, record, rows


class _Rows:
    """The rows the run computes on, for the windows ``ages``: every row of a window that
    served at most SAMPLE_ROWS, else seeded samples — of its labelled rows (the metric) and
    of all its rows (the estimate); each window's rows depend on that window alone. Labels
    are read by kind; a multiclass model's class probabilities are re-scored from the logged
    features by the champion's own version (the log keeps the predicted class only)."""

    def __init__(
        self,
        ctx: StepContext,
        version: str,
        bounds: list[Window],
        counts: list[tuple[int, int, int]],
        ages: Any,
    ) -> None:
        cfg, spec = ctx.cfg, ctx.cfg.monitor
        self.cfg = cfg
        self.notes: dict[int, list[str]] = {}
        kind = cfg.target.kind
        estimates = kind != "regression"
        multiclass = kind == "multiclass"
        seed = cfg.evaluation.seed
        chosen = [(bounds[k], counts[k]) for k in ages]

        def span(w: Window, n: int) -> queries.Span:
            return queries.Span(w.age, w.start, w.end, n)

        whole = [
            span(w, t)
            for w, (t, lab, _) in chosen
            if 0 < t <= SAMPLE_ROWS and (estimates or lab >= spec.min_rows)
        ]
        # A big window is read once where it can be: a sample of all its rows serves the
        # estimate and, when at least half the window is labelled, the metric (its labelled
        # rows are then a random sample of the labelled rows, ≥ half of SAMPLE_ROWS); a
        # window labelled in full, or in less than half, gets a sample of its labelled rows.
        big_all = [
            span(w, t) for w, (t, lab, _) in chosen if t > SAMPLE_ROWS and lab < t and estimates
        ]
        big_lab = [
            span(w, lab)
            for w, (t, lab, _) in chosen
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

    def _note(self, k: int | None, text: str) -> None:
        if k is not None:  # the calibration's rows are the windows' rows: said there
            self.notes.setdefault(k, []).append(text)

    def _s(self, frame: Any, k: int | None) -> np.ndarray:
        if self.champion is None:
            return frame["score"].to_numpy(dtype=float)
        from costaware.models.scoring import predict_scores

        probs = predict_scores(self.champion, frame, self.cfg.feature_names)
        differs = int((probs.argmax(axis=1) != frame["score"].to_numpy()).sum())
        if differs:
            self._note(
                k, f"{differs} of {len(frame)} re-scored rows predict another class than logged"
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
        y = read_labels(self.cfg.target, frame["label"])
        ok = np.isfinite(y)
        if not ok.all():
            self._note(k, f"{int((~ok).sum())} labels not readable as {self.cfg.target.kind}")
        return y[ok], self._s(frame, k)[ok]

    def scores(self, k: int) -> tuple[np.ndarray, int]:
        """Window k's scores (every row, or a sample) and how many rows they are."""
        frame = self.all_by_age.get(k, self.whole.iloc[:0])
        return self._s(frame, k), len(frame)

    def calibration(self) -> cbpe.Calibration | cbpe.MulticlassCalibration | None:
        """CBPE's reference: the champion's labelled logged rows of every window (or their
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


def _r(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None
