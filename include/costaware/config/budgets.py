"""``budgets.yaml``: monthly dollars shared by several models, beside the model YAMLs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from costaware.config.base import _Strict
from costaware.config.parsing import _format_errors, _load_yaml
from costaware.errors import ConfigError

BUDGETS_FILE = "budgets.yaml"  # shared budgets, beside the model YAMLs (not a model config)
BUDGET_WINDOWS = ("@daily", "@weekly", "@monthly")


class SharedBudget(_Strict):
    """One entry of ``budgets.yaml``: models that share a team's monthly dollars (README,
    "A budget shared by several models"). ``window``: the scheduling interval in which the
    retrains worth doing are ranked against each other (by the run's clock, UTC)."""

    monthly_usd: float = Field(gt=0)
    models: list[str] = Field(min_length=1)
    window: Literal["@daily", "@weekly", "@monthly"] = "@weekly"
    # How long a window's candidates wait (rescheduled, no worker slot held) for the other
    # models of the budget to post before the window is ranked without them. 60 min: models
    # on one schedule start within minutes of each other; not tuned on any data.
    wait_minutes: float = Field(default=60, ge=0)

    @field_validator("models")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        dupes = sorted({m for m in v if v.count(m) > 1})
        if dupes:
            raise ValueError(f"models lists {dupes} twice")
        return v


class BudgetsConfig(_Strict):
    budgets: dict[str, SharedBudget] = {}

    @model_validator(mode="after")
    def _one_budget_each(self) -> BudgetsConfig:
        seen: dict[str, str] = {}
        for name, b in self.budgets.items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", name):
                raise ValueError(
                    f"budget name {name!r}: lowercase letters, digits, - and _ (it names a "
                    "lock file and appears in every decision)"
                )
            for m in b.models:
                if m in seen:
                    raise ValueError(
                        f"model {m!r} is in budgets {seen[m]!r} and {name!r}; a model draws "
                        "on one shared budget at most"
                    )
                seen[m] = name
        return self

    def of(self, model: str) -> tuple[str, SharedBudget] | None:
        """The shared budget ``model`` draws on, by name; None when it has only its own."""
        for name, b in self.budgets.items():
            if model in b.models:
                return name, b
        return None


def load_budgets(models_dir: str | Path, models: Any = None) -> BudgetsConfig:
    """``budgets.yaml`` of the model folder (none: no shared budget). ``models``: the model
    names that exist, to refuse a budget naming another one."""
    path = Path(models_dir) / BUDGETS_FILE
    if not path.exists():
        return BudgetsConfig()
    try:
        raw = _load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the shared budgets: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a top-level `budgets:` key")
    try:
        found = BudgetsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc).replace("model config", "budgets")) from exc
    if models is not None:
        for name, b in found.budgets.items():
            unknown = sorted(set(b.models) - set(models))
            if unknown:
                raise ConfigError(
                    f"{path}: budgets.{name}.models names {unknown}, which have no model "
                    f"config here; models: {sorted(models)}"
                )
    return found
