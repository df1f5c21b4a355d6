"""Named fault points, for the fault-injection tests.

A step calls ``point("validate_batch.recorded")`` between two of its effects. Nothing happens
unless ``COSTAWARE_FAULTS`` names that point: then the process kills itself with SIGKILL —
the way an OOM-killer, a lost node or a spot reclaim ends an Airflow task, with no cleanup,
no ``finally`` and no exception handler — once. The marker file under
``COSTAWARE_FAULTS_DIR`` (default: the system's temp folder) makes the retry run through.

``step_points`` wraps a step so that ``<step>.start`` fires before it does anything and
``<step>.end`` after its last effect, just before it returns.

Two more tools for the fault harness (``tests/faults``), both off unless asked for:

* ``COSTAWARE_FAULTS_TRACE=<file>``: every point a process passes is appended to the file,
  armed or not, so the harness learns which points a clean run reaches, in which task.
* ``<point>@pause`` in ``COSTAWARE_FAULTS``: instead of dying, the process writes
  ``costaware-fault-<point>.paused`` (its pid) and waits until ``costaware-fault-<point>.resume``
  exists (at most ``PAUSE_LIMIT_S``): the harness does something to the world at that exact
  moment (restarts the database server) and lets the task go on into it.
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
TRACE_ENV = "COSTAWARE_FAULTS_TRACE"
PAUSE_LIMIT_S = 120.0
F = TypeVar("F", bound=Callable[..., Any])


def armed() -> dict[str, str]:
    """The armed points → their action (``kill``, the default, or ``pause``)."""
    out = {}
    for item in os.environ.get(ENV, "").split(","):
        name, _, action = item.strip().partition("@")
        if name:
            out[name] = action or "kill"
    return out


def point(name: str) -> None:
    """Die here with SIGKILL if ``COSTAWARE_FAULTS`` names this point and it has not fired
    (``<point>@pause``: wait for the harness instead); record the point when tracing."""
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a") as f:
            f.write(f"{name}\t{os.getpid()}\n")
    action = armed().get(name)
    if action is None:
        return
    folder = Path(os.environ.get(DIR_ENV) or tempfile.gettempdir())
    marker = folder / f"costaware-fault-{name}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # fired once already: the retry goes through
    os.close(fd)
    if action == "pause":
        _pause(marker)
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _pause(marker: Path) -> None:
    import time

    resume = marker.with_name(marker.name + ".resume")
    marker.with_name(marker.name + ".paused").write_text(str(os.getpid()))
    deadline = time.monotonic() + PAUSE_LIMIT_S
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


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
