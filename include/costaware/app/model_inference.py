"""What a data set implies for a model config: column types, ranges, categories, nullability,
the target's kind, batch size and schedule, cost settings — and what a person must check.
Used by ``costaware init-model`` (``init_model.py``).

The constants below are conventions chosen here, not tuned to any shipped data set.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from costaware.app.source_check import examples, is_numeric, plain
from costaware.config import METRIC_SPECS, category_text
from costaware.costs.prices import STATIC_PRICES
from costaware.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

# A batch needs enough rows for a drift test and a verdict: PSI over 10 bins wants about 20
# rows a bin (a rule of thumb), and 200 rows is also well above evaluation.min_rows (30).
MIN_BATCH_ROWS = 200
# Batch periods tried, shortest first: the first that holds MIN_BATCH_ROWS rows on average.
PERIODS = (("1D", "@daily"), ("7D", "@weekly"), ("30D", "@monthly"), ("91D", "@quarterly"))
# Rows a training window should hold at least (and never fewer than the default 8 batches):
# fewer leave a tree model with categorical splits little to learn from.
MIN_WINDOW_ROWS = 2000
# A text column with more distinct values than this is left an open set (no `categories`):
# a longer list is not something a person can review, and every new value would quarantine
# a batch. Unseen values are then handled at scoring time.
MAX_LISTED_CATEGORIES = 50
# A classification target has at most this many classes; more is not a classifier's job.
MAX_CLASSES = 50
# A numeric target with at most this many distinct whole numbers is read as classes.
MAX_INTEGER_CLASSES = 10
# Observed ranges are widened by this share of their span on each side (values a little
# beyond the sample are new data, not a broken feed); a non-negative column stays >= 0.
RANGE_MARGIN = 0.1
# |Spearman correlation| with the row's time above this marks a feature as a clock proxy,
# and with the target, as a possible leak (flagged for a person, never dropped).
PROXY_CORRELATION = 0.9
# A retrain is worth it when it buys this many metric points × batches served (e.g. one
# point for two batches); elec2.yaml's hand-set value is the same ratio (README).
POINT_BATCHES_PER_RETRAIN = 2.0
DEFAULT_SAMPLE_ROWS = 200_000
METRIC_FOR_KIND = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
WHY_METRIC = {
    "roc_auc": "ranks well whatever the threshold; the usual choice for a binary target",
    "log_loss": "a proper scoring rule, defined on any window (macro F1 is undefined for "
    "classes absent from a window); lower is better",
    "rmse": "the error in the target's own unit; lower is better",
}
# The defaults TrainingSpec uses; the cost estimate below prices them.
INSTANCE_TYPE, RUNTIME_MIN, OVERHEAD_MIN = "m5.xlarge", 10.0, 5.0


@dataclass
class Inferred:
    """What init-model read from the data: the config as a dict, comments, and a checklist."""

    config: dict[str, Any]
    comments: dict[str, str] = field(default_factory=dict)
    checklist: list[str] = field(default_factory=list)
    rows: int = 0
    sampled: int = 0


def _parse_times(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    import pandas as pd

    if column not in frame.columns:
        raise ConfigError(f"{where}: no column {column!r}; columns: {list(frame.columns)}")
    with warnings.catch_warnings():  # "could not infer format": the values are then checked
        warnings.simplefilter("ignore", UserWarning)
        times = pd.to_datetime(frame[column], errors="coerce", utc=True)
    bad = frame[column][times.isna()]
    if len(bad):
        raise ConfigError(
            f"{where}: column {column!r} has {len(bad)} value(s) that are not times, e.g. "
            f"{examples(bad)} (rows {list(bad.index[:3])}); fix them or choose another column"
        )
    return times


def _freq(times: pd.Series) -> str:
    """The data's own time step: the median gap between consecutive distinct times."""
    import pandas as pd

    gaps = pd.Series(times.drop_duplicates().sort_values()).diff().dropna()
    step = gaps.median() if len(gaps) else pd.Timedelta("1D")
    seconds = max(1, int(step.total_seconds()))
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _batching(n: int, times: pd.Series | None) -> tuple[int, str, str]:
    """(batch_rows, schedule, why): the shortest period holding MIN_BATCH_ROWS rows."""
    if times is None:
        rows = max(MIN_BATCH_ROWS, n // 100)
        return (
            rows,
            "@weekly",
            (f"no time column: {rows} rows, at least {MIN_BATCH_ROWS} and at most 100 batches"),
        )
    days = max((times.max() - times.min()).total_seconds() / 86400, 1e-9)
    per_day = n / days
    for period, schedule in PERIODS:
        rows = round(per_day * int(period[:-1]))
        if rows >= MIN_BATCH_ROWS:
            return (
                rows,
                schedule,
                (
                    f"about one {schedule[1:-2] if schedule != '@daily' else 'day'} of data "
                    f"({per_day:.1f} rows a day), the shortest period with >= {MIN_BATCH_ROWS} rows"
                ),
            )
    span = MIN_BATCH_ROWS / per_day
    schedule = "@monthly" if span < 60 else "@quarterly"
    return (
        MIN_BATCH_ROWS,
        schedule,
        (
            f"{MIN_BATCH_ROWS} rows (about {span:.0f} days: {per_day:.2f} rows a day is too sparse "
            "for a calendar period to hold enough rows)"
        ),
    )


def _spearman(a: pd.Series, b: pd.Series) -> float:
    both = a.notna() & b.notna()
    if both.sum() < 10 or a[both].nunique() < 2 or b[both].nunique() < 2:
        return 0.0
    r = a[both].rank().corr(b[both].rank())
    return 0.0 if r is None or math.isnan(r) else float(r)


def _infer_target(col: pd.Series, name: str) -> tuple[dict[str, Any], str]:
    values = col.dropna()
    if len(values) < len(col):
        raise ConfigError(
            f"--target {name!r}: {len(col) - len(values)} row(s) have no target "
            f"(rows {list(col[col.isna()].index[:3])}); drop them from the data first"
        )
    distinct = values.unique()
    if len(distinct) < 2:
        raise ConfigError(f"--target {name!r} has one value only ({examples(distinct)})")
    counts = values.value_counts()
    if is_numeric(values):
        whole = bool((values == values.round()).all())
        if len(distinct) == 2:
            positive = 1 if set(map(float, distinct)) == {0.0, 1.0} else plain(counts.index[-1])
            return {"name": name, "kind": "binary", "positive": plain(positive)}, (
                f"two values {sorted(plain(v) for v in distinct)}; positive {positive!r}"
            )
        if whole and len(distinct) <= MAX_INTEGER_CLASSES:
            classes = sorted(int(v) for v in distinct)
            return {"name": name, "kind": "multiclass", "classes": classes}, (
                f"{len(classes)} whole-number values: read as classes; if their order matters "
                "(a rating, a count), make it kind: regression"
            )
        return {"name": name, "kind": "regression"}, "a number"
    if len(distinct) == 2:
        positive = plain(counts.index[-1])  # the rarer class: usually the event one scores
        return {"name": name, "kind": "binary", "positive": positive}, (
            f"two values {sorted(map(str, distinct))}; positive is the rarer, {positive!r}"
        )
    if len(distinct) > MAX_CLASSES:
        raise ConfigError(
            f"--target {name!r} holds text with {len(distinct)} distinct values (more than "
            f"{MAX_CLASSES}), e.g. {examples(values)}: not a classification target; choose "
            "another column"
        )
    classes = sorted(plain(v) for v in distinct)
    return {"name": name, "kind": "multiclass", "classes": classes}, f"{len(classes)} classes"


def _infer_feature(
    col: pd.Series, times: pd.Series | None, target: pd.Series, out: Inferred
) -> dict[str, Any] | None:
    import pandas as pd

    name = str(col.name)
    values = col.dropna()
    nulls = len(col) - len(values)
    if values.empty or values.nunique() == 1:
        out.checklist.append(
            f"dropped {name!r}: {'empty' if values.empty else 'one value only'} in the data"
        )
        return None
    feat: dict[str, Any] = {"name": name}
    if is_numeric(col) or pd.api.types.is_bool_dtype(col):
        numbers = values.astype(float)
        lo, hi = float(numbers.min()), float(numbers.max())
        pad = RANGE_MARGIN * (hi - lo)
        low = lo - pad if lo < 0 else max(0.0, lo - pad)
        if bool((numbers == numbers.round()).all()):  # whole numbers: whole bounds, a 0/1
            step = math.floor(pad)  # flag stays within [0, 1]
            low = lo - step if lo < 0 else max(0.0, lo - step)
            feat.update(type="numeric", min=int(low), max=int(hi + step))
        else:
            feat.update(type="numeric", min=_round(low), max=_round(hi + pad))
        if times is not None and abs(_spearman(numbers, times[values.index])) > PROXY_CORRELATION:
            out.checklist.append(
                f"{name!r} rises or falls with time (|Spearman| > {PROXY_CORRELATION}): a "
                "model using it extrapolates on every new batch; drop it unless meant"
            )
        if is_numeric(target) and abs(_spearman(numbers, target)) > PROXY_CORRELATION:
            out.checklist.append(
                f"{name!r} follows the target almost exactly (|Spearman| > "
                f"{PROXY_CORRELATION}): is it known before the outcome? if not, drop it"
            )
    else:
        text = values.map(lambda v: category_text(plain(v)))
        distinct = text.nunique()
        if distinct > 0.5 * len(values) and distinct > MAX_LISTED_CATEGORIES:
            out.checklist.append(
                f"dropped {name!r}: an identifier or free text ({distinct} distinct values in "
                f"{len(values)} rows)"
            )
            return None
        feat["type"] = "categorical"
        if distinct <= MAX_LISTED_CATEGORIES:
            feat["categories"] = sorted(text.unique())
        else:
            out.checklist.append(
                f"{name!r} has {distinct} categories (> {MAX_LISTED_CATEGORIES}): left an open "
                "set (no `categories`); list them if new values must quarantine a batch"
            )
    if nulls:
        feat["nullable"] = True
        share = nulls / len(col)
        if share > 0.5:
            out.checklist.append(
                f"{name!r} is missing in {share:.0%} of rows: keep it only if its presence "
                "itself is informative"
            )
    return feat


def _round(x: float) -> float | int:
    if x == 0:
        return 0
    digits = max(0, 3 - int(math.floor(math.log10(abs(x)))))
    r = round(x, digits)
    return int(r) if float(r).is_integer() else r


def infer(
    name: str,
    frame: pd.DataFrame,
    target: str,
    time: str | None,
    source: str,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> Inferred:
    """The model config a data set implies, with what a person must check."""
    rows = len(frame)
    if target not in frame.columns:
        raise ConfigError(f"--target {target!r} is not a column; columns: {list(frame.columns)}")
    if time == target:
        raise ConfigError(f"--time {time!r} is also the --target")
    if rows < 3 * MIN_BATCH_ROWS:
        raise ConfigError(
            f"{source} has {rows} rows; init-model needs at least {3 * MIN_BATCH_ROWS} "
            f"(three batches of {MIN_BATCH_ROWS}) to infer a config"
        )
    all_times = _parse_times(frame, time, f"--time {time!r}") if time else None
    step = max(1, math.ceil(rows / sample_rows))
    sample = frame.iloc[::step]
    times = all_times.iloc[::step] if all_times is not None else None
    out = Inferred(config={}, rows=rows, sampled=len(sample))
    target_spec, why_target = _infer_target(sample[target], target)
    kind = target_spec["kind"]
    drop = []
    features = []
    for column in frame.columns:
        if column in (target, time):
            continue
        feat = _infer_feature(sample[column], times, sample[target], out)
        if feat is None:
            drop.append(str(column))
        else:
            features.append(feat)
    if not features:
        raise ConfigError(f"{source}: no usable feature column besides {target!r} and the time")
    batch_rows, schedule, why_batch = _batching(rows, all_times)
    window = max(8, math.ceil(MIN_WINDOW_ROWS / batch_rows))
    metric = METRIC_FOR_KIND[kind]
    spot = STATIC_PRICES[INSTANCE_TYPE][1]
    retrain_usd = spot * (RUNTIME_MIN + OVERHEAD_MIN) / 60
    per_point = float(f"{retrain_usd / POINT_BATCHES_PER_RETRAIN:.2g}")
    batches_per_month = {"@daily": 30, "@weekly": 4, "@monthly": 1, "@quarterly": 1}[schedule]
    budget = float(f"{max(1.0, retrain_usd * batches_per_month * 2):.2g}")
    data: dict[str, Any] = {"source": source}
    if time:
        data["time"] = {"column": time, "freq": _freq(all_times)}  # type: ignore[arg-type]
    data.update(batch_rows=batch_rows, label_delay_batches=1)
    if drop:
        data["drop_columns"] = drop
    out.config = {
        "name": name,
        "description": f"Onboarded by `costaware init-model` from {source} "
        f"({rows} rows) on {dt.date.today().isoformat()}; review it before use.",
        "data": data,
        "features": features,
        "target": target_spec,
        "validation_suite": f"{name}_batch",
        "drift": {"method": "psi", "threshold": 0.2},
        "metric": metric,
        "evaluation": {"holdout_batches": 1, "min_gain_points": 0.5},
        "training": {
            "backend": "local",
            "algorithm": "xgboost",
            "window_batches": window,
            "min_train_rows": 500,
            "num_boost_round": 100,
            "chunk_rounds": 25,
            "params": {},
            "instance_type": INSTANCE_TYPE,
            "expected_runtime_minutes": RUNTIME_MIN,
            "billing_overhead_minutes": OVERHEAD_MIN,
        },
        "cost_policy": {
            "max_usd_per_point_batch": per_point,
            "auto_approve_usd": float(f"{max(0.05, 10 * retrain_usd):.2g}"),
            "monthly_budget_usd": budget,
            "cooldown_hours": 0,
            "min_expected_gain_points": 0.5,
            "cost_source": "ledger",
            "price_source": "static",
        },
        "tags": {"model": name, "team": "unassigned", "env": "dev"},
        "airflow": {"schedule": schedule},
    }
    spec = METRIC_SPECS[metric]
    out.comments = {
        "data.time": "the timestamp column orders rows and sets batch windows; freq is the "
        "median gap between consecutive times (a batch arrives one step after its newest row)",
        "data.batch_rows": why_batch,
        "data.label_delay_batches": "labels arrive one batch late: set it to your real delay",
        "data.drop_columns": "not features: see the checklist printed by init-model",
        "target": f"{kind}: {why_target}",
        "drift": "PSI per column; 0.2 is the usual 'large shift' rule of thumb (0.1 small, "
        "0.25 large)",
        "metric": f"{WHY_METRIC[metric]}; points are {spec.unit}",
        "evaluation": "the newest labelled batch (>= 200 rows, above evaluation.min_rows 30) "
        "is held out; a challenger must win by half a point",
        "training": f"XGBoost: native categorical and missing-value support; window of "
        f"{window} batches (>= 8 and >= {MIN_WINDOW_ROWS} rows); params {{}} are XGBoost's "
        "defaults; 100 rounds in 4 checkpointed chunks; instance, runtime and overhead are "
        "costaware's defaults",
        "cost_policy": f"a retrain costs about ${retrain_usd:.4f} ({INSTANCE_TYPE} spot "
        f"${spot}/h × {RUNTIME_MIN + OVERHEAD_MIN:.0f} min); worth it when it buys "
        f"{POINT_BATCHES_PER_RETRAIN:g} points × batches; auto-approve up to 10 retrains' "
        "cost; the month's budget pays for two retrains a batch (and at least $1)",
        "tags": "team is for showback: set it",
        "airflow": "the schedule matches the batch period",
    }
    out.checklist[:0] = [
        f"target {target!r}: {kind} ({why_target})",
        f"metric {metric}: one point is {spec.unit}; max_usd_per_point_batch "
        f"${per_point} prices a point × batch — set what one is worth to you",
        f"feature ranges are the observed ones widened by {RANGE_MARGIN:.0%} of their span: "
        "replace them with physical or business limits where you know them",
        "data.label_delay_batches is 1: set it to how many batches late your labels arrive",
        "tags.team is 'unassigned': set the team that pays for this model",
    ]
    if time is None:
        out.checklist.append(
            "no --time: the row index is the clock (data.time.start/freq are placeholders)"
        )
    if step > 1:
        out.checklist.append(
            f"inferred from every {step}th row ({len(sample)} of {rows}): categories seen only "
            "in other rows are missing from the lists"
        )
    return out
