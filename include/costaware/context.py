"""What every step needs: the model's config, where state lives, the ledger and registry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from costaware.config import ModelConfig, get_model
from costaware.ledger import Ledger
from costaware.registry import Registry
from costaware.settings import Settings


@dataclass
class StepContext:
    cfg: ModelConfig
    settings: Settings
    run_id: str = "manual"
    actor: str = "costaware"

    @classmethod
    def for_model(
        cls,
        name: str,
        run_id: str = "manual",
        actor: str = "costaware",
        settings: Settings | None = None,
    ) -> StepContext:
        settings = settings or Settings.from_env()
        return cls(get_model(settings.models_dir, name), settings, run_id, actor)

    @property
    def model(self) -> str:
        return self.cfg.name

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.settings.db_url)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.settings.mlflow_uri, self.settings.mlflow_artifacts)

    def report_dir(self, batch_id: str) -> str:
        path = self.settings.reports(self.model) / batch_id
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
