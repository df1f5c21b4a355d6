"""Does a model config match its data set? ``check_source`` answers with every mismatch at
once, each naming the file, the key, the column and example values (``costaware replay`` and
``costaware init-model`` run it before anything else)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costaware.config import ModelConfig, category_text
from costaware.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def examples(values: Any, n: int = 3) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in list(dict.fromkeys(values))[:n]]


def plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def same_value(value: Any, declared: Any) -> bool:
    """A data value equals a declared one, whether read as a number or as text (1 == 1.0)."""
    try:
        return float(value) == float(declared)
    except (TypeError, ValueError):
        return str(value) == str(declared)


def is_numeric(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))


def check_source(cfg: ModelConfig, frame: pd.DataFrame, where: str) -> None:
    """Raise one ConfigError listing every way ``cfg`` contradicts its data set ``frame``
    (read from ``where``): columns missing, text where a number is declared, values outside
    the declared categories or classes, missing values where none are allowed. Ranges are
    not checked: a value out of range is bad input, which validation quarantines."""
    import pandas as pd

    problems: list[str] = []
    cols = set(frame.columns)
    if cfg.data.time.column and cfg.data.time.column in cols:
        times = pd.to_datetime(frame[cfg.data.time.column], errors="coerce", utc=True)
        bad = frame[cfg.data.time.column][times.isna()]
        if len(bad):
            problems.append(
                f"data.time.column ({cfg.data.time.column}): {len(bad)} value(s) are not "
                f"times, e.g. {examples(bad)} (rows {list(bad.index[:3])})"
            )
    elif cfg.data.time.column:
        problems.append(f"data.time.column: no column {cfg.data.time.column!r} in the data")
    for i, f in enumerate(cfg.features):
        key = f"features[{i}] ({f.name})"
        if f.name not in cols:
            problems.append(f"{key}: no such column in the data")
            continue
        col = frame[f.name]
        values = col.dropna()
        if not f.nullable and len(values) < len(col):
            rows = list(col[col.isna()].index[:3])
            problems.append(
                f"{key}.nullable: false, but {len(col) - len(values)} row(s) are empty "
                f"(rows {rows}); set nullable: true or fill them"
            )
        if f.type == "numeric" and not is_numeric(col):
            numbers = pd.to_numeric(values, errors="coerce")
            text = values[numbers.isna()]
            problems.append(
                f"{key}.type: numeric, but the column holds text, e.g. {examples(text)} "
                f"(rows {list(text.index[:3])}); declare type: categorical or fix the data"
            )
        elif f.type == "categorical" and f.categories is not None:
            allowed = {category_text(c) for c in f.categories}
            outside = values[~values.map(lambda v: category_text(plain(v))).isin(allowed)]
            if len(outside):
                problems.append(
                    f"{key}.categories: {len(outside)} row(s) hold values not listed, e.g. "
                    f"{examples(outside)} (rows {list(outside.index[:3])}); declared "
                    f"{list(f.categories)[:10]}{' …' if len(f.categories) > 10 else ''}"
                )
    t = cfg.target
    if t.name not in cols:
        problems.append(f"target.name ({t.name}): no such column in the data")
    else:
        labels = frame[t.name].dropna()
        if t.kind == "regression" and not is_numeric(labels):
            text = labels[pd.to_numeric(labels, errors="coerce").isna()]
            problems.append(
                f"target ({t.name}) kind: regression, but it holds text, e.g. {examples(text)}"
            )
        elif t.kind != "regression":
            declared = list(t.classes) if t.kind == "multiclass" and t.classes else None
            seen = {str(v) for v in labels.unique()}
            if declared is not None:
                known = {category_text(c) for c in declared}
                outside = labels[~labels.map(lambda v: category_text(plain(v))).isin(known)]
                if len(outside):
                    problems.append(
                        f"target.classes ({t.name}): {len(outside)} row(s) hold classes not "
                        f"listed, e.g. {examples(outside)} (rows {list(outside.index[:3])}); "
                        f"declared {declared}"
                    )
            elif len(seen) > 2 or not any(same_value(v, t.positive) for v in labels.unique()):
                problems.append(
                    f"target ({t.name}) kind: binary with positive {t.positive!r}, but the "
                    f"column holds {sorted(seen)[:10]}"
                )
    if problems:
        raise ConfigError(
            f"{cfg.source_file}: does not match its data {where}:\n  " + "\n  ".join(problems)
        )
