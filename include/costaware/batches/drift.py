"""Evidently 0.7: drift of each feature and of the model's scores against a reference.

Evidently is the engine of record: every column's score comes from its ``ValueDrift``
metric with the method and threshold the model config sets for that column, and the HTML
report is Evidently's own. What crosses to the next task is the compact JSON summary.

Categorical columns (string features, and a multiclass model's predicted class) are given
to Evidently as categorical and scored on their categories (PSI, Jensen-Shannon,
chi-square...; ``ModelConfig.drift_for`` never gives them a method that compares numbers),
with missing values left out as Evidently leaves them out.

Big batches (``FAST_MIN_ROWS`` rows or more) take the fast path of ``drift_fast``: the same
scores as Evidently's for PSI, Jensen-Shannon and Wasserstein, from one NumPy pass per column
(``bench/drift.py`` measures both); the HTML report is then Evidently's on a fixed-seed
sample of ``REPORT_SAMPLE_ROWS`` rows, and says so in the warnings.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from costaware.config import PVALUE_METHODS, DriftColumn, ModelConfig
from costaware.store import storage
from costaware.store.storage import Loc

if TYPE_CHECKING:
    import pandas as pd

SCORE_COLUMN = "prediction_score"
FAST_MIN_ROWS = 100_000  # reference + current rows from which the fast path is used
REPORT_SAMPLE_ROWS = 50_000
SAMPLE_SEED = 0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    threshold: float
    score: float | None
    drifted: bool
    note: str = ""

    def line(self) -> str:
        shown = "n/a" if self.score is None else f"{self.score:.4f}"
        verdict = "DRIFT" if self.drifted else (self.note or "ok")
        return f"{self.column:<18} {self.method:<12} {shown:>8} / {self.threshold:<6} {verdict}"


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    prediction: ColumnDrift | None
    drift_share: float  # drifted features / features checked
    drift_share_threshold: float
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    warnings: list[str] = field(default_factory=list)
    report_path: str | None = None

    def all_columns(self) -> list[ColumnDrift]:
        return [*self.columns, *([self.prediction] if self.prediction else [])]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drifted_columns"] = self.drifted_columns
        return d


def categorical_columns(cfg: ModelConfig) -> set[str]:
    """Columns compared as categories: categorical features, and a multiclass model's
    prediction (the predicted class). A regression model's prediction is a number."""
    cats = set(cfg.categorical_features)
    if cfg.target.kind == "multiclass":
        cats.add(SCORE_COLUMN)
    return cats


def is_drift(method: str, score: float, threshold: float) -> bool:
    """Evidently's rule: p-value tests drift below the threshold, distances at or above it."""
    return score < threshold if method in PVALUE_METHODS else score >= threshold


def _usable(series: pd.Series) -> str:
    """Why a column cannot be compared, or '' when it can."""
    if len(series) == 0:
        return "no rows"
    if series.isna().all():
        return "all values are null"
    return ""


def measure_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: ModelConfig,
    report_path: str | Loc | None = None,
    engine: str = "auto",
) -> DriftResult:
    """Drift of every feature (and of ``prediction_score`` when both frames carry it).

    ``engine``: ``"evidently"`` scores every column with Evidently; ``"fast"`` scores the
    columns whose method has a fast path with ``drift_fast`` (the rest with Evidently);
    ``"auto"`` is ``"fast"`` from ``FAST_MIN_ROWS`` rows on.
    """
    from costaware.batches.drift_fast import FAST_METHODS, column_score

    if engine not in ("auto", "fast", "evidently"):
        raise ValueError(f"unknown drift engine {engine!r}; allowed: ['auto', 'evidently', 'fast']")
    fast = engine == "fast" or (engine == "auto" and len(reference) + len(current) >= FAST_MIN_ROWS)

    specs: dict[str, DriftColumn] = {c: cfg.drift_for(c) for c in cfg.feature_names}
    if SCORE_COLUMN in reference.columns and SCORE_COLUMN in current.columns:
        specs[SCORE_COLUMN] = cfg.drift.prediction
    warnings, checked = [], {}
    for col, spec in specs.items():
        why = _usable(reference[col]) or _usable(current[col])
        if why:
            # An empty or all-null column is a data-quality warning, not a crash.
            warnings.append(f"{col}: not compared ({why})")
        else:
            checked[col] = spec
    result_cols: dict[str, ColumnDrift] = {}
    categorical = categorical_columns(cfg)
    if fast:
        for col, spec in list(checked.items()):
            if spec.method in FAST_METHODS and not (
                spec.method == "wasserstein" and col in categorical
            ):
                score = column_score(
                    reference[col], current[col], spec.method, spec.threshold, col in categorical
                )
                result_cols[col] = ColumnDrift(
                    col,
                    spec.method,
                    spec.threshold,
                    score,
                    is_drift(spec.method, score, spec.threshold),
                )
    rest = {c: s for c, s in checked.items() if c not in result_cols}
    report = None
    if not fast and rest:  # Evidently on the full data: verdicts and report in one run
        report = _evidently(reference, current, rest, categorical)
        result_cols.update(_columns(report, rest))
    elif rest:  # columns without a fast path are still scored on the full data
        result_cols.update(_columns(_evidently(reference, current, rest, categorical), rest))
    if report_path is not None and checked:
        if report is None:
            ref_s, cur_s = _sample(reference), _sample(current)
            report = _evidently(ref_s, cur_s, checked, categorical)
            warnings.append(
                f"HTML report drawn on a sample of {len(cur_s):,} of {len(current):,} rows "
                f"(seed {SAMPLE_SEED}); verdicts come from all rows"
            )
        storage.write_text(
            storage.location(report_path) if isinstance(report_path, str) else report_path,
            script_safe_html(report.get_html_str(as_iframe=False)),
        )
    for col, spec in specs.items():
        if col not in result_cols:  # not compared
            result_cols[col] = ColumnDrift(
                col, spec.method, spec.threshold, None, False, note="not compared"
            )
    features = [result_cols[c] for c in cfg.feature_names]
    compared = [c for c in features if c.score is not None]
    share = sum(c.drifted for c in compared) / len(compared) if compared else 0.0
    return DriftResult(
        columns=features,
        prediction=result_cols.get(SCORE_COLUMN),
        drift_share=share,
        drift_share_threshold=cfg.drift.drift_share,
        dataset_drift=share >= cfg.drift.drift_share,
        reference_rows=len(reference),
        current_rows=len(current),
        warnings=warnings,
        report_path=None if report_path is None or not checked else str(report_path),
    )


def script_safe_html(page: str) -> str:
    """Evidently's standalone page with its embedded data made inert.

    Evidently writes the report's data (column names, category values) as JSON into the
    first ``<script>`` of the page, unescaped: a ``</script>`` in a column name or a category
    ends that script and whatever follows runs in the reader's browser. JSON has ``<``, ``>``
    and ``&`` only inside strings, where ``\\u003c``, ``\\u003e`` and ``\\u0026`` are the same
    characters to the page's JavaScript, so nothing the data says can close the script. The
    block ends at the first newline + ``</script>``: JSON never holds a raw newline."""
    opening = "<script>\n"
    start = page.find(opening)
    end = page.find("\n</script>", start)
    if start < 0 or end < 0 or not page[start + len(opening) :].lstrip().startswith("var "):
        raise RuntimeError(
            "Evidently's HTML report no longer starts its data with '<script>\\n    var ...'; "
            "update costaware.batches.drift.script_safe_html for this Evidently version"
        )
    start += len(opening)
    data = page[start:end].replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return page[:start] + data + page[end:]


def _sample(frame: pd.DataFrame, rows: int = REPORT_SAMPLE_ROWS) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=SAMPLE_SEED)


def _evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    specs: dict[str, DriftColumn],
    categorical: set[str],
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    cat = [c for c in specs if c in categorical]
    num = [c for c in specs if c not in categorical]
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    metrics = [
        ValueDrift(column=c, method=s.method, threshold=s.threshold) for c, s in specs.items()
    ]
    return Report(metrics).run(
        current_data=Dataset.from_pandas(current[list(specs)], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[list(specs)], data_definition=definition),
    )


def _columns(snapshot: Any, specs: dict[str, DriftColumn]) -> dict[str, ColumnDrift]:
    out = {}
    for m in snapshot.dict()["metrics"]:
        col = m["config"]["column"]
        spec = specs[col]
        score = float(m["value"])
        out[col] = ColumnDrift(
            col, spec.method, spec.threshold, score, is_drift(spec.method, score, spec.threshold)
        )
    return out
