"""The fault points themselves: a named point kills its process once, with SIGKILL; the
retry passes; tracing records every point passed; ``@pause`` waits for the harness."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from costaware import faults

_FORK = multiprocessing.get_context("fork")


def _pass_points(env: dict[str, str], names: list[str], done: str) -> None:
    os.environ.update(env)
    for name in names:
        faults.point(name)
    Path(done).write_text("through")


def _run(env: dict[str, str], names: list[str], tmp_path: Path) -> tuple[int | None, bool]:
    done = tmp_path / f"done-{time.monotonic_ns()}"
    proc = _FORK.Process(target=_pass_points, args=(env, names, str(done)))
    proc.start()
    proc.join(30)
    return proc.exitcode, done.exists()


def test_an_armed_point_kills_once_then_lets_the_retry_through(tmp_path: Path) -> None:
    env = {faults.ENV: "a.middle", faults.DIR_ENV: str(tmp_path)}
    assert _run(env, ["a.start", "a.middle", "a.end"], tmp_path) == (-9, False)
    assert _run(env, ["a.start", "a.middle", "a.end"], tmp_path) == (0, True)


def test_unarmed_points_do_nothing_and_tracing_records_each_point(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    env = {faults.ENV: "other.point", faults.DIR_ENV: str(tmp_path), faults.TRACE_ENV: str(trace)}
    assert _run(env, ["b.start", "b.end"], tmp_path) == (0, True)
    assert [line.split("\t")[0] for line in trace.read_text().splitlines()] == ["b.start", "b.end"]


def test_pause_waits_for_the_harness(tmp_path: Path) -> None:
    env = {faults.ENV: "c.middle@pause", faults.DIR_ENV: str(tmp_path)}
    done = tmp_path / "done"
    proc = _FORK.Process(target=_pass_points, args=(env, ["c.middle"], str(done)))
    proc.start()
    paused = tmp_path / "costaware-fault-c.middle.paused"
    deadline = time.monotonic() + 20
    while not paused.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert paused.read_text() == str(proc.pid)
    time.sleep(0.2)
    assert proc.is_alive() and not done.exists()  # still waiting
    (tmp_path / "costaware-fault-c.middle.resume").write_text("go")
    proc.join(20)
    assert proc.exitcode == 0 and done.exists()


@pytest.mark.parametrize("spec", ["d.x", "d.x@kill", " d.x , e.y@pause "])
def test_armed_parses_actions(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV, spec)
    assert faults.armed()["d.x"] == "kill"
