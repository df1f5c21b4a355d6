"""Every error costaware raises. Messages say what was received and what is allowed."""

from __future__ import annotations


class CostawareError(Exception):
    """Base class: catch this to handle any costaware failure."""


class ConfigError(CostawareError):
    """A model config or a run's parameters are invalid."""


class UnknownBackendError(ConfigError):
    """A pluggable name (cost source, training backend, ...) is not registered."""

    def __init__(self, kind: str, name: str, available: list[str] | set[str] | dict) -> None:
        super().__init__(f"unknown {kind} {name!r}; available: {sorted(available)}")
        self.kind = kind
        self.name = name


class BatchError(CostawareError):
    """A batch cannot be found or read."""


class ValidationFailed(CostawareError):
    """A batch failed its Great Expectations suite and was quarantined."""

    def __init__(self, message: str, quarantine_path: str | None = None) -> None:
        super().__init__(message)
        self.quarantine_path = quarantine_path


class DataError(CostawareError):
    """Data that no retry can fix (a string where a number is declared, a category outside
    the declared set reaching training, a label outside the target's classes). The message
    names the column, example values and what the config declares; the DAG fails the task
    at once (``AirflowFailException``) instead of retrying it."""


class NotEnoughData(CostawareError):
    """Not enough labelled rows for the asked operation."""


class TrainingError(CostawareError):
    """A training job failed (not a spot interruption, which is retried)."""


class RegistryError(CostawareError):
    """The model registry is missing a model, version or alias."""


class RegistryUnavailable(CostawareError):
    """The model registry could not answer (down, slow, refused). Retryable: it never means
    "no champion" — only the registry's own "does not exist" answer means that."""


class ChampionMoved(RegistryError):
    """The champion is no longer the version an operation was decided against (a rollback or
    another run moved it): the alias move is refused rather than applied to a stale state."""


class CostSourceError(CostawareError):
    """A cost or price source could not answer."""


class StackError(CostawareError):
    """``costaware stack`` could not start, stop or read the stack; the message names the
    component and its log."""
