"""What a retrain must be worth: ``evaluation``, ``cost_policy`` (with the limit's deprecated
old name and the refusal of credentials), ``tags``, and the run parameters that override
them for one run."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from costaware.config.base import _Strict
from costaware.errors import ConfigError

# The package's name, as before the split: the deprecation lines are logged, and
# filtered, as costaware.config.
_log = logging.getLogger("costaware.config")


class EvaluationSpec(_Strict):
    holdout_batches: int = Field(default=1, ge=1)
    min_gain_points: float = Field(default=0.0, ge=0)
    bootstrap: int = Field(default=500, ge=50)
    confidence: float = Field(default=0.9, gt=0.5, lt=1)
    seed: int = 0
    # Fewer held-out rows than this → reject, whatever the numbers say. 30 is the usual floor
    # for a percentile bootstrap interval to be trusted (below it the interval is too narrow
    # too often), and below it one row moves accuracy by more than 3 points; not tuned to the
    # shipped data (Elec2 holds out 336 rows, Weather 90).
    min_rows: int = Field(
        default=30, ge=2, description="fewest held-out rows a champion/challenger verdict needs"
    )


CONNECTIONS = {"aws_conn_id": "aws_default", "gcp_conn_id": "google_cloud_default"}
# Parts of an option's name that say it holds a credential (aws_secret_access_key, token...).
CREDENTIAL_WORDS = "password passwd secret token credential private_key access_key api_key"
CREDENTIAL_WORDS += " keyfile key_path"


def credential_options(options: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the options (nested ones too) whose name says they hold a credential."""
    found = []
    for key, value in options.items():
        name = str(key).lower().replace("-", "_")
        if any(word in name for word in CREDENTIAL_WORDS.split()):
            found.append(f"{prefix}{key}")
        elif isinstance(value, dict):
            found += credential_options(value, f"{prefix}{key}.")
    return found


# The limit's old name (until 0.x): it was always dollars per metric point × batch served.
OLD_LIMIT_KEY, LIMIT_KEY = "max_usd_per_metric_point", "max_usd_per_point_batch"


def renamed_limit(raw: Any, where: str) -> Any:
    """``raw`` (a ``cost_policy`` mapping or run parameters) with the limit's old key moved to
    its new name, a DeprecationWarning and a log line naming ``where`` and the new key; both
    keys at once is an error (which one was meant cannot be known)."""
    if not isinstance(raw, dict) or OLD_LIMIT_KEY not in raw:
        return raw
    if raw.get(LIMIT_KEY) is not None and raw.get(OLD_LIMIT_KEY) is not None:
        raise ValueError(
            f"{where} gives both {LIMIT_KEY} ({raw[LIMIT_KEY]!r}) and its deprecated old name "
            f"{OLD_LIMIT_KEY} ({raw[OLD_LIMIT_KEY]!r}); keep only {LIMIT_KEY}"
        )
    raw = dict(raw)
    old = raw.pop(OLD_LIMIT_KEY)
    if raw.get(LIMIT_KEY) is None:
        raw[LIMIT_KEY] = old
    text = (
        f"{where}: {OLD_LIMIT_KEY} is deprecated, rename it to {LIMIT_KEY} (the same value: "
        "dollars per metric point × batch served)"
    )
    warnings.warn(text, DeprecationWarning, stacklevel=2)
    _log.warning(text)
    return raw


class CostPolicy(_Strict):
    # Dollars per metric point × batch served: a retrain is worth it when cost / expected
    # gain (points of the model's metric, summed over the batches it will serve) is at most this.
    max_usd_per_point_batch: float = Field(gt=0)
    auto_approve_usd: float = Field(ge=0)
    monthly_budget_usd: float = Field(gt=0)
    cooldown_hours: float = Field(default=0, ge=0)
    min_expected_gain_points: float = Field(default=0.5, ge=0)
    cost_source: str = "ledger"
    cost_source_options: dict[str, Any] = {}
    price_source: str = "static"
    price_source_options: dict[str, Any] = {}
    # When the cost or price source cannot answer (no data for the tag, an API failing):
    # "fallback" prices the retrain from the ledger prior / static table and flags it as a
    # fallback in the decision and the report; "fail" fails the task (Airflow retries it).
    on_source_error: Literal["fallback", "fail"] = "fallback"

    @model_validator(mode="before")
    @classmethod
    def _old_limit_name(cls, raw: Any) -> Any:
        return renamed_limit(raw, "cost_policy")

    @property
    def max_usd_per_metric_point(self) -> float:
        """Deprecated name of ``max_usd_per_point_batch`` (kept for callers of the library)."""
        return self.max_usd_per_point_batch

    @model_validator(mode="after")
    def _no_credentials(self) -> CostPolicy:
        # A model config names an Airflow connection, never a key: the YAML lives in git.
        for role, source in (("cost", self.cost_source), ("price", self.price_source)):
            options = getattr(self, f"{role}_source_options")
            found = credential_options(options)
            if not found:
                continue
            conn_option = {"aws": "aws_conn_id", "gcp": "gcp_conn_id"}.get(source)
            where = (
                f"the Airflow connection {options.get(conn_option, CONNECTIONS[conn_option])!r} "
                f"(named by {role}_source_options.{conn_option})"
                if conn_option
                else "an Airflow connection"
            )
            raise ValueError(
                f"{role}_source_options.{found[0]} holds a credential; a model config names a "
                f"connection, never a key: remove it here and put it on {where}"
            )
        return self


class Tags(_Strict):
    model: str
    team: str
    env: Literal["dev", "staging", "prod"] = "dev"


# Run parameters (the trigger form). Validated again here so the library rejects what a
# caller outside Airflow passes too.
class RunParams(_Strict):
    force: bool = False
    dry_run: bool = False
    max_usd_per_point_batch: float | None = Field(default=None, gt=0)
    batch: str | None = None

    @classmethod
    def parse(cls, conf: dict[str, Any] | None) -> RunParams:
        conf = {k: v for k, v in (conf or {}).items() if v is not None and v != ""}
        try:
            conf = renamed_limit(conf, "run parameters")
        except ValueError as exc:
            raise ConfigError(f"invalid run parameters: {exc}") from exc
        unknown = sorted(set(conf) - set(cls.model_fields))
        if unknown:
            raise ConfigError(
                f"unknown run parameter(s) {unknown}; allowed: {sorted(cls.model_fields)}"
            )
        try:
            return cls.model_validate(conf)
        except ValidationError as exc:
            msgs = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid run parameters: {msgs}") from exc
