"""Great Expectations 1.x: run a model's suite on a batch and tier the result.

The GX project is the file data context in ``great_expectations/`` (suites as JSON in
``expectations/``). Each expectation's own ``severity`` decides its tier: a failed
``critical`` expectation fails the batch (quarantine); a failed ``warning`` lets it through
with the warning in the report.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from costaware.batches.data import ID_COLUMN, TIME_COLUMN
from costaware.config import ModelConfig, category_text

if TYPE_CHECKING:
    import pandas as pd

Status = Literal["pass", "warn", "fail"]
DATASOURCE = "costaware"
ASSET = "batch"
BATCH_DEFINITION = "whole_batch"
_NUMERIC_TYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "Int64",
    "Float64",
]


@dataclass(frozen=True)
class Finding:
    expectation: str
    column: str | None
    severity: str
    detail: str

    def line(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        return f"{self.expectation} on {where}: {self.detail}"


@dataclass(frozen=True)
class ValidationOutcome:
    status: Status
    suite: str
    evaluated: int
    failures: list[Finding] = field(default_factory=list)  # critical
    warnings: list[Finding] = field(default_factory=list)
    gx_result: dict[str, Any] | None = None

    def summary(self) -> str:
        if self.status == "pass":
            return f"suite {self.suite}: all {self.evaluated} expectations passed"
        lines = [
            f"suite {self.suite}: {len(self.failures)} critical failure(s), "
            f"{len(self.warnings)} warning(s) of {self.evaluated} expectations"
        ]
        lines += [f"  FAIL {f.line()}" for f in self.failures]
        lines += [f"  WARN {w.line()}" for w in self.warnings]
        return "\n".join(lines)

    def as_dict(self, with_gx: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_gx:
            d.pop("gx_result")
        return d


def one_line(text: str, limit: int = 300) -> str:
    """Text as one short line that is safe in a log, a JSON report and the ledger: control
    characters, NUL and lone surrogates (which PostgreSQL refuses) are escaped, and a long
    text is cut, saying how long it was."""
    size = len(text)
    out = "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text[:limit]
    )
    return f"{out}… ({size} characters)" if size > limit else out


def printable(value: Any, limit: int = 80) -> str:
    """A value (its repr) or an exception (its type and message), made safe by ``one_line``."""
    if isinstance(value, BaseException):
        return one_line(f"{type(value).__name__}: {value}", max(limit, 300))
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # np.float64(1.5) -> 1.5
    return one_line(repr(value), limit)


def _quiet_gx() -> None:
    # Once Airflow's logging is configured GX logs ~150 "Skipping registering function"
    # lines at INFO on import; nobody reading a task log wants them.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def get_context(gx_dir: str | Path) -> Any:
    _quiet_gx()
    import great_expectations as gx

    ctx = gx.get_context(mode="file", context_root_dir=str(gx_dir))
    return ctx


def build_suite(cfg: ModelConfig) -> Any:
    """The expectation suite a model config implies: schema, types, nulls, ranges, sets."""
    _quiet_gx()
    from great_expectations.expectations.metadata_types import FailureSeverity

    import great_expectations as gx
    import great_expectations.expectations as gxe

    CRITICAL, WARNING = FailureSeverity.CRITICAL, FailureSeverity.WARNING  # noqa: N806
    # Collected, then given to the suite at once: ExpectationSuite.add_expectation on a suite
    # whose name the active project already holds rewrites the stored suite on every call
    # (111 expectations: 25-70 s instead of 2 s, measured on this machine under load).
    expectations: list[Any] = []
    add = expectations.append
    required = [ID_COLUMN, TIME_COLUMN, *cfg.feature_names]
    add(gxe.ExpectTableRowCountToBeBetween(min_value=1, severity=CRITICAL))
    lo, hi = cfg.data.batch_rows // 2, cfg.data.batch_rows * 2
    add(gxe.ExpectTableRowCountToBeBetween(min_value=lo, max_value=hi, severity=WARNING))
    for col in required:
        add(gxe.ExpectColumnToExist(column=col, severity=CRITICAL))
    add(gxe.ExpectColumnValuesToBeUnique(column=ID_COLUMN, severity=CRITICAL))
    add(gxe.ExpectColumnValuesToNotBeNull(column=ID_COLUMN, severity=CRITICAL))
    add(gxe.ExpectColumnValuesToNotBeNull(column=TIME_COLUMN, severity=CRITICAL))
    for f in cfg.features:
        if f.nullable:
            add(gxe.ExpectColumnValuesToNotBeNull(column=f.name, mostly=0.95, severity=WARNING))
        else:
            add(gxe.ExpectColumnValuesToNotBeNull(column=f.name, severity=CRITICAL))
        if f.type == "numeric":
            add(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=f.name, type_list=_NUMERIC_TYPES, severity=CRITICAL
                )
            )
            if f.min is not None or f.max is not None:
                # A few stray values are a warning; many are a broken feed.
                add(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=f.name,
                        min_value=f.min,
                        max_value=f.max,
                        mostly=0.99,
                        severity=CRITICAL,
                    )
                )
                add(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=f.name, min_value=f.min, max_value=f.max, severity=WARNING
                    )
                )
        elif f.categories:
            add(
                gxe.ExpectColumnValuesToBeInSet(
                    column=f.name, value_set=list(f.categories), severity=CRITICAL
                )
            )
    return gx.ExpectationSuite(name=cfg.validation_suite, expectations=expectations)


def write_suite(cfg: ModelConfig, gx_dir: str | Path) -> Path:
    ctx = get_context(gx_dir)
    ctx.suites.add_or_update(build_suite(cfg))
    return Path(gx_dir) / "expectations" / f"{cfg.validation_suite}.json"


def _detail(res: Any) -> str:
    info = res.exception_info or {}
    if info.get("raised_exception"):
        msg = (str(info.get("exception_message", "")).splitlines() or [""])[0]
        return f"could not be evaluated: {one_line(msg)}"
    r = res.result or {}
    parts = []
    if "observed_value" in r:
        parts.append(f"observed {printable(r['observed_value'])}")
    if r.get("unexpected_count"):
        pct = r.get("unexpected_percent") or 0.0
        sample = ", ".join(printable(v) for v in (r.get("partial_unexpected_list") or [])[:3])
        parts.append(f"{r['unexpected_count']} unexpected value(s) ({pct:.1f}%), e.g. [{sample}]")
    kw = {
        k: v
        for k, v in res.expectation_config.kwargs.items()
        if k in ("min_value", "max_value", "type_list", "value_set", "mostly") and v is not None
    }
    if kw:
        parts.append(f"expected {kw}")
    return "; ".join(parts) or "failed"


def validate_frame(
    frame: pd.DataFrame,
    cfg: ModelConfig,
    gx_dir: str | Path,
    known_categories: dict[str, list[str]] | None = None,
) -> ValidationOutcome:
    """Run the model's suite on ``frame``. ``known_categories``: the serving model's training
    categories per categorical feature; values outside them are a warning with counts
    (``unseen_categories``), never a failure: scoring reads them as missing."""
    ctx = get_context(gx_dir)
    suite = ctx.suites.get(cfg.validation_suite)
    # The datasource is defined once in great_expectations.yml; adding it on every run would
    # rewrite that committed file from concurrent tasks.
    try:
        ds = ctx.data_sources.get(DATASOURCE)
    except (KeyError, ValueError, LookupError):
        ds = ctx.data_sources.add_pandas(DATASOURCE)
    try:
        asset = ds.get_asset(ASSET)
    except LookupError:
        asset = ds.add_dataframe_asset(ASSET)
    try:
        bdef = asset.get_batch_definition(BATCH_DEFINITION)
    except (KeyError, LookupError):
        bdef = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    result = bdef.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failures: list[Finding] = []
    warnings: list[Finding] = []
    for res in result.results:
        if res.success:
            continue
        conf = res.expectation_config
        sev = str(getattr(conf, "severity", None) or conf.meta.get("severity") or "critical")
        sev = sev.split(".")[-1].lower()
        finding = Finding(conf.type, conf.kwargs.get("column"), sev, _detail(res))
        (failures if sev == "critical" else warnings).append(finding)
    times = event_times_finding(frame)
    if times is not None:
        failures.append(times)
    warnings += unseen_categories(frame, cfg, known_categories or {})
    status: Status = "fail" if failures else ("warn" if warnings else "pass")
    return ValidationOutcome(
        status=status,
        suite=cfg.validation_suite,
        evaluated=len(result.results) + 1,
        failures=failures,
        warnings=warnings,
        gx_result=result.to_json_dict(),
    )


UNSEEN = "expect_column_values_to_be_in_training_categories"


def unseen_categories(
    frame: pd.DataFrame, cfg: ModelConfig, known: dict[str, list[str]]
) -> list[Finding]:
    """A warning per categorical feature holding values the serving model never saw in
    training, with each value's count. Scoring maps them to missing (XGBoost and LightGBM
    route missing values natively; a pipeline's encoder sees NaN), so the batch is usable;
    many unseen values say the model is out of date (the drift step sees them too)."""
    out = []
    for name, categories in known.items():
        if name not in frame.columns:
            continue  # expect_column_to_exist reports it
        seen = set(categories)
        values = frame[name].dropna().map(category_text)
        unseen = values[~values.isin(seen)]
        if unseen.empty:
            continue
        counts = unseen.value_counts()
        shown = ", ".join(f"{printable(k, 40)}: {int(v)}" for k, v in counts.iloc[:5].items())
        more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
        out.append(
            Finding(
                UNSEEN,
                name,
                "warning",
                f"{len(unseen)} of {len(frame)} value(s) in {len(counts)} categor(y/ies) not "
                f"seen in training ({{{shown}}}{more}); scored as missing. Training knew "
                f"{len(categories)}: {[printable(c, 40) for c in categories[:8]]}",
            )
        )
    return out


def event_times_finding(frame: pd.DataFrame) -> Finding | None:
    """Event times must be times: a Parquet timestamp column, or text that pandas parses the
    way the later steps parse it (one format for the column). GX 1.x has no expectation for
    this (``expect_column_values_to_be_dateutil_parseable`` refuses timestamp columns), and
    without it a batch of ``"abc"`` or of plain numbers (read as nanoseconds after 1970)
    would be accepted and then break or misorder every later run."""
    import pandas as pd

    if TIME_COLUMN not in frame.columns:
        return None  # expect_column_to_exist reports it
    col = frame.loc[:, frame.columns == TIME_COLUMN].iloc[:, 0]
    if pd.api.types.is_datetime64_any_dtype(col):
        return None
    values = col.dropna()  # empty ones: expect_column_values_to_not_be_null reports them
    is_text = values.map(lambda v: isinstance(v, str))
    try:
        with warnings.catch_warnings():  # "Could not infer format": then each value alone
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(values.where(is_text), errors="coerce", utc=True)
        bad = ~is_text | parsed.isna()
    except Exception as exc:  # whatever pandas refuses is not a time column
        return Finding(
            "expect_column_values_to_be_event_times",
            TIME_COLUMN,
            "critical",
            f"cannot be read as dates and times: {printable(exc)}",
        )
    if not bad.any():
        return None
    sample = ", ".join(printable(v) for v in values[bad].iloc[:3])
    return Finding(
        "expect_column_values_to_be_event_times",
        TIME_COLUMN,
        "critical",
        f"{int(bad.sum())} value(s) that are not dates and times in one format, e.g. "
        f"[{sample}]; expected a Parquet timestamp or ISO 8601 text like "
        "'1996-05-07T00:30:00'",
    )


def unreadable(cfg: ModelConfig, message: str) -> ValidationOutcome:
    """The outcome for a file that could not even be read: a critical failure."""
    return ValidationOutcome(
        status="fail",
        suite=cfg.validation_suite,
        evaluated=0,
        failures=[Finding("file_is_readable", None, "critical", one_line(message, 500))],
    )
