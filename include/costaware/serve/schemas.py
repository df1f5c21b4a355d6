"""Request and response bodies. A row is checked against the model's features from its YAML:
every feature present, nothing else, numbers finite, nulls only where the feature is
``nullable``, categories from the listed ones. A bad row is a 422 naming the row and field.

Ranges (``min``/``max``) are not enforced here: a value outside the training range is drift,
which the monitor must see in the log, not a malformed request to refuse.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from costaware.config import ModelConfig

MAX_ID = 100  # the ledger's request_id column


class RowError(ValueError):
    """What is wrong with a request body, as FastAPI's 422 ``detail`` list."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def parse_rows(body: Any, cfg: ModelConfig) -> list[dict[str, Any]]:
    """``{"rows": [row, ...]}`` or one ``row`` → the rows' feature dicts."""
    if isinstance(body, dict) and "rows" in body:
        rows, where = body["rows"], ["body", "rows"]
        extra = sorted(set(body) - {"rows"})
        if extra:
            raise RowError([_err(["body", extra[0]], "unknown key; allowed: ['rows']")])
        if not isinstance(rows, list) or not rows:
            raise RowError([_err(where, "must be a non-empty list of rows")])
    else:
        rows, where = [body], ["body"]
    errors: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        loc = [*where, i] if where[-1] == "rows" else where
        if not isinstance(row, dict):
            errors.append(_err(loc, f"a row is an object of features; got {type(row).__name__}"))
            continue
        out.append(_check_row(row, cfg, loc, errors))
    if errors:
        raise RowError(errors[:20])
    return out


def _check_row(
    row: dict[str, Any], cfg: ModelConfig, loc: list[Any], errors: list[dict[str, Any]]
) -> dict[str, Any]:
    names = cfg.feature_names
    for key in row:
        if key not in names:
            errors.append(_err([*loc, key], f"not a feature of {cfg.name}; features: {names}"))
    clean: dict[str, Any] = {}
    for f in cfg.features:
        if f.name not in row:
            errors.append(_err([*loc, f.name], "field required", "missing"))
            continue
        value = row[f.name]
        if value is None:
            if not f.nullable:
                errors.append(_err([*loc, f.name], "may not be null (the feature is not nullable)"))
            clean[f.name] = None
        elif f.type == "numeric":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(_err([*loc, f.name], f"a number; got {value!r}"))
            elif not math.isfinite(value):
                errors.append(_err([*loc, f.name], f"a finite number; got {value!r}"))
            else:
                clean[f.name] = float(value)
        else:
            if f.categories is not None and value not in f.categories:
                errors.append(_err([*loc, f.name], f"one of {f.categories}; got {value!r}"))
            clean[f.name] = value
    return clean


def _err(loc: list[Any], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=MAX_ID)
    label: int | float | str


class LabelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[LabelIn] = Field(min_length=1, max_length=100_000)


class CanaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    share: float = Field(ge=0, le=1)
