"""Training backends: a Protocol plus a name → class mapping."""

from __future__ import annotations

from costaware.errors import UnknownBackendError
from costaware.models.training.base import (
    Attempt,
    JobStatus,
    TrainingBackend,
    TrainingJob,
    TrainingResult,
    run_to_end,
)


def _local() -> type:
    from costaware.models.training.local import LocalBackend

    return LocalBackend


def _sagemaker() -> type:
    from costaware.models.training.sagemaker import SageMakerBackend

    return SageMakerBackend


def _vertex() -> type:
    from costaware.models.training.vertex import VertexBackend

    return VertexBackend


BACKENDS = {"local": _local, "sagemaker": _sagemaker, "vertex": _vertex}


def get_backend(name: str) -> type:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise UnknownBackendError("training backend", name, BACKENDS) from None


__all__ = [
    "BACKENDS",
    "Attempt",
    "JobStatus",
    "TrainingBackend",
    "TrainingJob",
    "TrainingResult",
    "get_backend",
    "run_to_end",
]
