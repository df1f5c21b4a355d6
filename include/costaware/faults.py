"""Named fault points, for the fault-injection tests.

A step calls ``point("validate_batch.recorded")`` between two of its effects. Nothing happens
unless ``COSTAWARE_FAULTS`` names that point: then the process kills itself with SIGKILL —
the way an OOM-killer, a lost node or a spot reclaim ends an Airflow task, with no cleanup,
no ``finally`` and no exception handler — once. The marker file under
``COSTAWARE_FAULTS_DIR`` (default: the system's temp folder) makes the retry run through.

``step_points`` wraps a step so that ``<step>.start`` fires before it does anything and
``<step>.end`` after its last effect, just before it returns.
"""

from __future__ import annotations

import functools
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ENV = "COSTAWARE_FAULTS"
DIR_ENV = "COSTAWARE_FAULTS_DIR"
F = TypeVar("F", bound=Callable[..., Any])


def armed() -> list[str]:
    return [p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()]


def point(name: str) -> None:
    """Die here with SIGKILL if ``COSTAWARE_FAULTS`` names this point and it has not fired."""
    if name not in armed():
        return
    marker = Path(os.environ.get(DIR_ENV) or tempfile.gettempdir()) / f"costaware-fault-{name}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # fired once already: the retry goes through
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def step_points(func: F) -> F:
    """Fault points ``<name>.start`` and ``<name>.end`` around a step."""
    name = func.__name__

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        point(f"{name}.start")
        out = func(*args, **kwargs)
        point(f"{name}.end")
        return out

    return wrapper  # type: ignore[return-value]
