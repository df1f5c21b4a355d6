"""The checks a label file must pass: readable, ``event_id`` + target, ids that are text or
whole numbers, a target as the model's config declares it (binary, one of the multiclass
target's classes, a regression's number), no conflicting duplicates.

Each failure says what failed, where (1-based data rows, the header not counted) and shows a
few examples, cut short and with control characters escaped so that a report, a log line or
a ledger row can always hold it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from costaware.batches.data import ID_COLUMN
from costaware.batches.validation import Finding, printable
from costaware.config import ModelConfig, category_text
from costaware.errors import BatchError
from costaware.store import storage
from costaware.store.storage import Loc

if TYPE_CHECKING:
    import pandas as pd

MAX_ID_CHARS = 1000  # event ids are short keys; a longer one is a broken export
EXAMPLES = 5
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def read_label_file(path: Loc) -> pd.DataFrame:
    """Read a Parquet or CSV label file; one that cannot be read raises BatchError."""
    if storage.size(path) == 0:
        raise BatchError(f"{path.name}: the file is empty (0 bytes)")
    kind = "Parquet" if path.suffix == ".parquet" else "CSV"
    try:
        if kind == "Parquet":
            return storage.read_parquet(path)
        return storage.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BatchError(
            f"{path.name}: {_not_utf8(storage.read_bytes(path))}; export it as UTF-8"
        ) from exc
    except Exception as exc:  # pyarrow/pandas raise many types for a corrupt file
        raise BatchError(f"{path.name}: cannot be read as {kind}: {printable(exc)}") from exc


def _not_utf8(raw: bytes) -> str:
    """Where the file stops being UTF-8 (pandas reports an offset in its buffer, not the file)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}, line {line})"
    return "not UTF-8 text"


def check_labels(
    frame: pd.DataFrame, cfg: ModelConfig, known: set[str]
) -> tuple[pd.DataFrame | None, list[Finding], list[Finding]]:
    """The clean labels (``event_id`` as text + target), failures and warnings.

    Checks run in order and a check runs only when those it relies on passed (values of a
    column that is not there are not examined)."""
    import pandas as pd

    target, positive = cfg.target.name, cfg.target.positive
    fail: list[Finding] = []
    warn: list[Finding] = []

    def bad(check: str, column: str | None, detail: str) -> None:
        fail.append(Finding(check, column, "critical", detail))

    if len(frame) == 0:
        bad("file_has_rows", None, f"no rows (columns: {_names(frame.columns)})")
    for col in (ID_COLUMN, target):
        n = sum(str(c) == col for c in frame.columns)
        if n == 0:
            bad("column_exists", col, f"missing; the file has {_names(frame.columns)}")
        elif n > 1:
            bad("column_exists", col, f"appears {n} times")
    extra = [c for c in frame.columns if str(c) not in (ID_COLUMN, target)]
    if extra:
        warn.append(
            Finding("no_other_columns", None, "warning", f"ignored extra column(s) {_names(extra)}")
        )
    if fail:
        return None, fail, warn
    frame = frame.rename(columns=str)
    ids, values = frame[ID_COLUMN], frame[target]
    if isinstance(ids.dtype, pd.CategoricalDtype):
        ids = ids.astype(object)
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)

    null_ids = ids.isna()
    if null_ids.any():
        bad("values_not_null", ID_COLUMN, f"{_count(null_ids)} empty id(s) {_rows(null_ids)}")
    wrong = ~null_ids & ~ids.map(_is_id)
    if wrong.any():
        bad(
            "id_type",
            ID_COLUMN,
            f"{_count(wrong)} id(s) that are neither text nor whole numbers "
            f"{_rows(wrong)}, e.g. {_examples(ids[wrong])}",
        )
    else:
        long = ~null_ids & ids.map(lambda v: len(str(v)) > MAX_ID_CHARS)
        if long.any():
            bad(
                "id_length",
                ID_COLUMN,
                f"{_count(long)} id(s) longer than {MAX_ID_CHARS} characters {_rows(long)}",
            )
    null_values = values.isna()
    if null_values.any():
        bad("values_not_null", target, f"{_count(null_values)} empty label(s) {_rows(null_values)}")
    kind = cfg.target.kind
    cleaned: list[Any] = []
    if kind != "binary":  # multiclass: one of target.classes; regression: a finite number
        cleaned = _other_kind_labels(values, null_values, cfg, bad)
    else:
        want = "text" if isinstance(positive, str) else "whole numbers"
        wrong = ~null_values & ~values.map(lambda v: _is_class(v, positive))
        if wrong.any():
            bad(
                "label_type",
                target,
                f"{_count(wrong)} label(s) that are not {want} like the positive class "
                f"{positive!r} {_rows(wrong)}, e.g. {_examples(values[wrong])}",
            )
        else:
            classes = sorted({_class(v, positive) for v in values[~null_values]}, key=str)
            others = [c for c in classes if c != positive]
            if len(others) > 1:
                bad(
                    "binary_classes",
                    target,
                    f"{len(classes)} classes {_examples(pd.Series(classes, dtype=object))}; "
                    f"a binary target has the positive class {positive!r} and at most one other",
                )
    if fail:
        return None, fail, warn

    clean = pd.DataFrame(
        {
            ID_COLUMN: id_text(ids),
            target: cleaned if kind != "binary" else [_class(v, positive) for v in values],
        },
        index=frame.index,
    )
    if kind == "binary" and not isinstance(positive, str):
        clean[target] = clean[target].astype("int64")
    dup = clean.duplicated(ID_COLUMN, keep=False)
    if dup.any():
        conflicting = clean[dup].groupby(ID_COLUMN)[target].nunique() > 1
        if conflicting.any():
            worst = conflicting[conflicting].index[:EXAMPLES].tolist()
            where = clean[ID_COLUMN].isin(worst)
            bad(
                "ids_unique",
                ID_COLUMN,
                f"{int(conflicting.sum())} event id(s) with different labels in the same file "
                f"{_rows(where)}, e.g. {_examples(pd.Series(worst))}; which label is true "
                "cannot be told, so the file is not used",
            )
            return None, fail, warn
        n = int(clean.duplicated(ID_COLUMN).sum())
        warn.append(
            Finding(
                "ids_unique",
                ID_COLUMN,
                "warning",
                f"{n} repeated row(s) with the same id and label dropped {_rows(dup)}",
            )
        )
        clean = clean.drop_duplicates(ID_COLUMN)
    unknown = ~clean[ID_COLUMN].isin(known)
    if unknown.any():
        warn.append(
            Finding(
                "ids_known",
                ID_COLUMN,
                "warning",
                f"{_count(unknown)} of {len(clean)} id(s) belong to no accepted or waiting "
                f"batch (kept: their batch may arrive later), e.g. "
                f"{_examples(clean[ID_COLUMN][unknown])}",
            )
        )
    return clean.reset_index(drop=True), fail, warn


def _is_whole(v: Any) -> bool:
    import numpy as np

    if isinstance(v, bool | np.bool_):
        return False
    if isinstance(v, int | np.integer):
        return True
    if isinstance(v, float | np.floating):
        return bool(np.isfinite(v)) and float(v).is_integer()
    # One stray word makes a whole CSV column text: "1" still reads as 1, so the report
    # points at the word, not at every row.
    return isinstance(v, str) and _INTEGER.fullmatch(v.strip()) is not None


def _is_id(v: Any) -> bool:
    return isinstance(v, str) or _is_whole(v)


def _other_kind_labels(
    values: pd.Series, null_values: pd.Series, cfg: ModelConfig, bad: Any
) -> list[Any]:
    """Labels of a multiclass target (as its declared class, matched as text: 3, 3.0 and
    "3" agree) or a regression target (as float); a wrong one is a failure via ``bad``."""
    import math

    target = cfg.target.name
    if cfg.target.kind == "regression":

        def number(v: Any) -> float | None:
            try:
                x = float(v.strip() if isinstance(v, str) else v)
            except (TypeError, ValueError):
                return None
            return x if math.isfinite(x) and not isinstance(v, bool) else None

        out = [number(v) for v in values]
        wrong = ~null_values & values.map(lambda v: number(v) is None)
        if wrong.any():
            bad(
                "label_type",
                target,
                f"{_count(wrong)} label(s) that are not finite numbers (target kind "
                f"regression) {_rows(wrong)}, e.g. {_examples(values[wrong])}",
            )
        return out
    classes = {category_text(c): c for c in cfg.target.classes or []}

    def key(v: Any) -> str:
        v = v.strip() if isinstance(v, str) else v.item() if hasattr(v, "item") else v
        return category_text(v)

    wrong = ~null_values & ~values.map(lambda v: key(v) in classes)
    if wrong.any():
        bad(
            "label_classes",
            target,
            f"{_count(wrong)} label(s) outside target.classes {list(classes.values())} "
            f"{_rows(wrong)}, e.g. {_examples(values[wrong])}",
        )
    return [classes.get(key(v)) for v in values]


def _is_class(v: Any, positive: int | str) -> bool:
    return isinstance(v, str) if isinstance(positive, str) else _is_whole(v)


def _class(v: Any, positive: int | str) -> int | str:
    return str(v) if isinstance(positive, str) else int(v.strip() if isinstance(v, str) else v)


def id_text(ids: pd.Series) -> pd.Series:
    """Ids as text, the one form labels are stored and joined in: 7, 7.0 and "7" agree."""
    return ids.map(lambda v: v if isinstance(v, str) else str(int(v)) if _is_whole(v) else str(v))


def _count(mask: pd.Series) -> int:
    return int(mask.sum())


def _rows(mask: pd.Series) -> str:
    """Where: 1-based data rows (the header is not counted)."""
    import numpy as np

    at = (np.flatnonzero(mask.to_numpy()) + 1).tolist()
    more = f" and {len(at) - EXAMPLES} more" if len(at) > EXAMPLES else ""
    return f"at row(s) {', '.join(map(str, at[:EXAMPLES]))}{more}"


def _examples(values: pd.Series) -> str:
    return "[" + ", ".join(printable(v) for v in values.iloc[:EXAMPLES]) + "]"


def _names(columns: Any) -> str:
    names = [printable(str(c)) for c in columns]
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return "[" + ", ".join(names[:10]) + "]" + more
