"""Small factories for tests: model configs and batches built from the real data sets."""

from __future__ import annotations

from typing import Any

from costaware.app.replay import load_source, split_batches
from costaware.config import ModelConfig, get_model

from .conftest import ROOT


def model(name: str = "elec2", **overrides: Any) -> ModelConfig:
    """A shipped model config with some sections replaced, e.g. cost_policy={...}."""
    cfg = get_model(ROOT / "include" / "models", name)
    data = cfg.model_dump()
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ModelConfig.model_validate(data)


def batches(name: str = "elec2") -> list[tuple[str, Any]]:
    cfg = model(name)
    return list(split_batches(cfg, load_source(cfg, ROOT)))
