"""Training backends: a Protocol plus a name → class mapping."""

from __future__ import annotations

from costaware.errors import UnknownBackendError
from costaware.models.training.base import Attempt, TrainingBackend, TrainingJob, TrainingResult


def _local() -> type:
    from costaware.models.training.local import LocalBackend

    return LocalBackend


BACKENDS = {"local": _local}


def get_backend(name: str) -> type:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise UnknownBackendError("training backend", name, BACKENDS) from None


__all__ = ["BACKENDS", "Attempt", "TrainingBackend", "TrainingJob", "TrainingResult", "get_backend"]
