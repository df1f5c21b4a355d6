"""Finding and loading model configs: one file, a folder (one bad file never hides the
others), the DAG files' folder and cache, a model by name."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from costaware.config.budgets import BUDGETS_FILE, load_budgets
from costaware.config.model import ModelConfig
from costaware.config.parsing import ParsedYamlCache, _format_errors, _load_yaml
from costaware.errors import ConfigError
from costaware.settings import Settings


def load_model_config(path: str | Path) -> ModelConfig:
    return _load_model_config(Path(path), _load_yaml)


def _load_model_config(path: Path, parse: Callable[[str], Any]) -> ModelConfig:
    try:
        raw = parse(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such model config") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the model config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return ModelConfig.model_validate({**raw, "source_file": str(path)})
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from exc


def model_config_paths(models_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(models_dir).glob("*.yaml") if p.name != BUDGETS_FILE)


@dataclass(frozen=True)
class ModelConfigs:
    """Every model config of a folder, each file loaded on its own, so one bad file never
    hides the good ones: ``configs`` by model name, ``errors`` by file (the ConfigError
    text: the file, the key, what is allowed)."""

    folder: Path
    configs: dict[str, ModelConfig] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def error_text(self) -> str:
        return (
            f"{len(self.errors)} invalid model config(s) in {self.folder}; their DAGs are not "
            "loaded (every other model's are). Fix the file(s), or run `costaware check`:\n\n"
            + "\n\n".join(self.errors.values())
        )

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigError(self.error_text())


def load_models(models_dir: str | Path, cache: Path | None = None) -> ModelConfigs:
    """Load each ``*.yaml`` of ``models_dir``; a bad file is recorded, never raised.

    A model is found by its file name (``get_model`` reads ``<name>.yaml``), so a file whose
    ``name`` differs from its file name is an error: its runs could not find it, and two files
    could claim the same model. ``cache``: a ``ParsedYamlCache`` file to reuse parsed YAML
    from (what the DAG files do); the result is the same with or without it."""
    folder = Path(models_dir)
    found = ModelConfigs(folder)
    if not folder.is_dir():
        found.errors[str(folder)] = (
            f"{folder}: no such folder of model configs; set COSTAWARE_MODELS_DIR to the folder "
            "holding the model YAML files (default include/models)"
        )
        return found
    for path in sorted(folder.glob("*.yml")):
        found.errors[str(path)] = (
            f"{path}: not read: model configs must end in .yaml; rename it to {path.stem}.yaml"
        )
    parsed = ParsedYamlCache(cache).open() if cache is not None else None
    loaded: list[tuple[Path, ModelConfig]] = []
    for path in model_config_paths(folder):
        try:
            loaded.append((path, _load_model_config(path, parsed.parse if parsed else _load_yaml)))
        except ConfigError as exc:
            found.errors[str(path)] = str(exc)
    if parsed is not None:
        parsed.save()
    try:
        load_budgets(folder, [p.stem for p in model_config_paths(folder)])
    except ConfigError as exc:
        found.errors[str(folder / BUDGETS_FILE)] = str(exc)
    for path, cfg in loaded:
        if cfg.name != path.stem:
            others = [str(p) for p, c in loaded if c.name == cfg.name and p != path]
            also = f" (model {cfg.name!r} is also declared by {', '.join(others)})"
            found.errors[str(path)] = (
                f"{path}: invalid model config\n  name: {cfg.name!r} does not match the file "
                f"name {path.name!r}; a model's runs read <name>.yaml, so rename the file to "
                f"{cfg.name}.yaml or set name: {path.stem}" + (also if others else "")
            )
        else:
            found.configs[cfg.name] = cfg
    return found


def load_models_for_dags(settings: Settings | None = None) -> ModelConfigs:
    """The model configs the DAG files build DAGs from: ``COSTAWARE_MODELS_DIR`` when set,
    else ``include/models``. Read here, in the library, because DAG files must not read the
    environment themselves (STYLE.md). Parsed YAML is reused from ``parsed_yaml_cache``."""
    settings = settings or Settings.from_env()
    return load_models(settings.models_dir, cache=parsed_yaml_cache(settings))


def parsed_yaml_cache(settings: Settings) -> Path:
    """The ``ParsedYamlCache`` file of the DAG files: local to this machine, under
    ``COSTAWARE_HOME/cache/``, one per folder of configs (tests and benchmarks point
    ``COSTAWARE_MODELS_DIR`` elsewhere). Safe to delete at any time."""
    folder = str(settings.models_dir.resolve())
    digest = hashlib.sha256(folder.encode()).hexdigest()[:16]
    return settings.home / "cache" / f"model_configs-{digest}.json"


def load_all(models_dir: str | Path) -> dict[str, ModelConfig]:
    """Every model config of ``models_dir``; raises one ConfigError naming every bad file."""
    found = load_models(models_dir)
    found.raise_errors()
    return found.configs


def get_model(models_dir: str | Path, name: str) -> ModelConfig:
    path = Path(models_dir) / f"{name}.yaml"
    if not path.exists() or path.name == BUDGETS_FILE:
        available = [p.stem for p in model_config_paths(models_dir)]
        raise ConfigError(f"unknown model {name!r}; available: {available}")
    return load_model_config(path)
