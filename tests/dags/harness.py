"""A private costaware state driven through the real retrain DAG, week by week."""

from __future__ import annotations

from typing import Any

from costaware.app.replay import _load_dag, arrival_time, land_batch, land_labels, run_dag_once
from costaware.settings import Settings
from costaware.steps.context import StepContext

from .. import factories

WEEKS = factories.batches("elec2")


class Harness:
    """Runs weeks of Elec2 through the DAG in one private state folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dag = _load_dag(settings, "elec2")
        self.cfg = factories.model("elec2")

    @property
    def ctx(self) -> StepContext:
        return StepContext.for_model("elec2", settings=Settings.from_env())

    def week(self, i: int, conf: dict[str, Any] | None = None, land: bool = True) -> str:
        name, part = WEEKS[i]
        if land:
            land_batch(self.settings, self.cfg, name, part)
            if i >= 1:
                land_labels(self.settings, self.cfg, *WEEKS[i - 1])
        return run_dag_once(self.dag, conf, logical_date=arrival_time(self.cfg, part))

    def run(self, conf: dict[str, Any] | None = None) -> str:
        return run_dag_once(self.dag, conf)

    def decision(self, i: int) -> dict[str, Any] | None:
        return self.ctx.ledger.decision_for_batch("elec2", WEEKS[i][0])

    def champion(self) -> str | None:
        return self.ctx.registry.alias("elec2", "champion")

    def versions(self) -> list[str]:
        return self.ctx.registry.versions("elec2")
