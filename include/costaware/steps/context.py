"""What every step needs: the model's config, where state lives, the ledger and registry,
and the run's clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from costaware.config import ModelConfig, get_model
from costaware.models.registry import CHAMPION, Registry
from costaware.settings import Settings
from costaware.store import storage
from costaware.store.ledger import Ledger


def utc_naive(when: dt.datetime) -> dt.datetime:
    """A timestamp as naive UTC, the form the ledger stores: an aware one is converted, a
    naive one is taken to be UTC already."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    if type(when) is not dt.datetime:
        # Airflow hands out pendulum DateTimes: their differences are pendulum Intervals,
        # which cannot be divided by a timedelta. The library's clock is a plain datetime.
        when = dt.datetime(*when.timetuple()[:6], when.microsecond)
    return when


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class StepContext:
    """``clock`` is costaware's one clock (see the README, "One clock"): the Airflow run's
    logical date — or, for a manual run without one, when it was triggered — in UTC. Budget
    months, cooldowns and the dates of costs and audit rows all follow it."""

    cfg: ModelConfig
    settings: Settings
    run_id: str = "manual"
    actor: str = "costaware"
    clock: dt.datetime = field(default_factory=now_utc)

    def __post_init__(self) -> None:
        self.clock = utc_naive(self.clock)

    @classmethod
    def for_model(
        cls,
        name: str,
        run_id: str = "manual",
        actor: str = "costaware",
        settings: Settings | None = None,
        clock: dt.datetime | None = None,
    ) -> StepContext:
        settings = settings or Settings.from_env()
        cfg = get_model(settings.models_dir, name)
        return cls(cfg, settings, run_id, actor, clock or now_utc())

    @property
    def model(self) -> str:
        return self.cfg.name

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.settings.db_url)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.settings.mlflow_uri, self.settings.mlflow_artifacts)

    def champion(self) -> str | None:
        """The champion's version; None only when the registry says there is none."""
        return self.registry.alias(self.model, CHAMPION)

    def report_dir(self, batch_id: str) -> Any:
        """This batch's report folder (a ``storage.Loc``)."""
        return storage.ensure_dir(self.settings.reports(self.model) / batch_id)
