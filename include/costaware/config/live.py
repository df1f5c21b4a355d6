"""How the model lives between retrains: ``airflow`` (schedules, retries), ``serving`` and
``monitor``."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from costaware.config.base import _Strict

# Airflow's schedule presets (airflow.sdk's CRON_PRESETS); anything else must be a cron line.
SCHEDULE_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


class AirflowSpec(_Strict):
    """How Airflow runs this model's DAGs. Every key is optional; the defaults are what the
    DAGs did before the section existed."""

    retries: int = Field(default=2, ge=0, le=20)
    retry_delay_seconds: float = Field(default=30, ge=0)
    approval_timeout_hours: float = Field(
        default=24, gt=0, description="an unanswered approval is rejected after this long"
    )
    schedule: str | None = Field(
        default="@weekly", description="retrain schedule: a preset, a cron line, or null (manual)"
    )

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, v: str | None) -> str | None:
        # Checked here, not left to Airflow: a schedule Airflow rejects while building one
        # model's DAG would fail the whole DAG file, and with it every model's DAGs.
        from croniter import croniter

        if v is None or v in SCHEDULE_PRESETS or (not v.startswith("@") and croniter.is_valid(v)):
            return v
        raise ValueError(
            f"not a schedule: {v!r}; allowed: null (manual runs only), "
            f"{', '.join(SCHEDULE_PRESETS)}, or a cron line such as '0 6 * * 1'"
        )


class ServingSpec(_Strict):
    """``costaware serve``: the live model behind the registry alias ``champion`` (README,
    "The live loop")."""

    canary_share: float = Field(
        default=0.0, ge=0, le=1, description="share of requests scored by `challenger`"
    )
    alias_poll_seconds: float = Field(
        default=10.0, gt=0, description="how often the server re-reads the aliases"
    )
    flush_interval_seconds: float = Field(
        default=0.2, gt=0, description="logged predictions are written at least this often"
    )
    batch_records: int = Field(default=500, ge=1, description="records per log write")
    spool_max_mb: float = Field(
        default=256, gt=0, description="on-disk spool bound while the ledger is slow or down"
    )
    max_pending_records: int = Field(
        default=100_000, ge=1, description="records held in memory before /predict answers 503"
    )
    protect_predictions: bool = Field(
        default=False, description="/predict and /labels need the token too"
    )


class MonitorSpec(_Strict):
    """``monitor_<model>``: the live model between retrains (README, "The live loop")."""

    schedule: str | None = "@hourly"
    window_hours: float = Field(default=24, gt=0, description="one monitoring window")
    window_origin: str = Field(
        default="1970-01-05T00:00:00",
        description="a window boundary (UTC); the others are whole windows from it. The "
        "default, a Monday midnight, makes daily windows run midnight to midnight and weekly "
        "ones Monday to Monday (ISO weeks)",
    )
    history_windows: int = Field(default=28, ge=1, description="windows of metric history")
    min_rows: int = Field(
        default=30, ge=2, description="fewest labelled rows a window's metric needs"
    )
    tolerance_points: float = Field(
        default=2.0, ge=0, description="metric points below the reference that count as decay"
    )
    act_on_estimate: bool = Field(
        default=False, description="the label-free estimate alone may trigger the action"
    )
    on_degradation: Literal["alert", "rollback", "retrain"] = "alert"
    drift_max_rows: int = Field(default=200_000, ge=100)

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, v: str | None) -> str | None:
        return AirflowSpec._known_schedule(v)

    @field_validator("window_origin")
    @classmethod
    def _an_instant(cls, v: str) -> str:
        try:
            t = dt.datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(
                f"{v!r} is not an ISO date-time; write e.g. 1970-01-05T00:00:00 (UTC)"
            ) from None
        if t.tzinfo is not None and t.utcoffset() != dt.timedelta(0):
            raise ValueError(f"{v!r}: give the origin in UTC (no offset, or +00:00)")
        return v

    @property
    def origin(self) -> dt.datetime:
        """``window_origin`` as a naive UTC datetime (the ledger's clock)."""
        return dt.datetime.fromisoformat(self.window_origin).replace(tzinfo=None)
