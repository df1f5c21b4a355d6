"""The data sections of a model config: features, time order, batches, target and drift."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from costaware.config.base import _Strict

# Evidently's drift methods that return a p-value (drift when p < threshold); the others
# return a distance (drift when distance >= threshold).
PVALUE_METHODS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "t_test",
        "mannw",
        "anderson",
        "fisher_exact",
        "cramer_von_mises",
        "g_test",
        "epps_singleton",
        "empirical_mmd",
    }
)
DISTANCE_METHODS = frozenset(
    {"psi", "wasserstein", "jensenshannon", "kl_div", "hellinger", "energy", "TVD"}
)
DRIFT_METHODS = PVALUE_METHODS | DISTANCE_METHODS
# Methods that compare numbers only: a categorical column (a categorical feature, or the
# predicted class of a multiclass model) needs one of the others (psi, chisquare, ...).
NUMERIC_ONLY_METHODS = frozenset(
    {
        "wasserstein",
        "ks",
        "t_test",
        "mannw",
        "anderson",
        "cramer_von_mises",
        "epps_singleton",
        "energy",
        "empirical_mmd",
    }
)


def category_text(value: Any) -> str:
    """A category value as text, the same for 3, 3.0 and "3" (a CSV column with a missing
    value reads integers as floats): how categories are compared everywhere."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Feature(_Strict):
    name: str
    type: Literal["numeric", "categorical"] = "numeric"
    min: float | None = None
    max: float | None = None
    categories: list[str | int] | None = None
    nullable: bool = False


class TimeOrder(_Strict):
    """How rows are ordered in time. ``column`` names a timestamp column; without one the row
    index is the clock (``start`` + index × ``freq``), as for Elec2."""

    column: str | None = None
    start: str = "2000-01-01T00:00:00"
    freq: str = "1D"


class PredictionLogBatches(_Strict):
    """``data.batches_from: prediction_log``: a batch is the labelled predictions that
    ``costaware serve`` logged in one interval (``batches/prediction_log.py``)."""

    interval_hours: float | None = Field(
        default=None, gt=0, description="one batch's interval; default batch_rows × time.freq"
    )
    label_wait_hours: float | None = Field(
        default=None,
        ge=0,
        description="an interval is taken this long after it ends; "
        "default label_delay_batches × interval_hours",
    )
    aliases: list[Literal["champion", "challenger"]] = Field(
        default=["champion"],
        min_length=1,
        description="rows scored by these aliases are taken (challenger: the canary's rows)",
    )


class DataSpec(_Strict):
    source: str = Field(description="CSV or Parquet file used by `costaware replay`")
    time: TimeOrder = TimeOrder()
    batch_rows: int = Field(gt=0)
    label_delay_batches: int = Field(default=1, ge=0)
    drop_columns: list[str] = []
    # Where retrain_<model> takes its batches: files in the landing zone, or the predictions
    # `costaware serve` logged, once labelled (README, "The live loop").
    batches_from: Literal["landing", "prediction_log"] = "landing"
    prediction_log: PredictionLogBatches = PredictionLogBatches()


class Target(_Strict):
    """The label column. ``binary``: ``positive`` is the class scored; ``multiclass``:
    ``classes`` lists every class (a model scores one probability per class, in this
    order); ``regression``: a number."""

    name: str
    kind: Literal["binary", "multiclass", "regression"] = "binary"
    positive: int | str = 1
    classes: list[int | str] | None = None

    @model_validator(mode="after")
    def _classes_fit_kind(self) -> Target:
        if self.kind == "multiclass":
            if not self.classes or len(self.classes) < 3:
                raise ValueError(
                    f"target.classes: a multiclass target lists its 3 or more classes "
                    f"(got {self.classes!r}); for two classes use kind: binary with positive"
                )
            dupes = sorted({str(c) for c in self.classes if self.classes.count(c) > 1})
            if dupes:
                raise ValueError(f"target.classes lists {dupes} twice")
        elif self.classes is not None:
            raise ValueError(
                f"target.classes is only for kind: multiclass (this target is {self.kind}); "
                "remove it" + (" and set positive" if self.kind == "binary" else "")
            )
        return self


class DriftColumn(_Strict):
    method: str
    threshold: float = Field(gt=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in DRIFT_METHODS:
            raise ValueError(f"unknown drift method {v!r}; allowed: {sorted(DRIFT_METHODS)}")
        return v


class DriftSpec(_Strict):
    method: str = "psi"
    threshold: float = Field(default=0.2, gt=0)
    columns: dict[str, DriftColumn] = {}
    prediction: DriftColumn = DriftColumn(method="psi", threshold=0.2)
    drift_share: float = Field(default=0.5, gt=0, le=1)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        return DriftColumn._known_method(v)
