"""SIGKILL every task of ``retrain_elec2`` at its start, in its middle and just before it
returns; the retry (same inputs, run id and clock) must leave the state of a clean run.

Each task runs in its own process forked from a warm parent, as an Airflow task runs in its
own process; see ``matrix.py`` for the base, the clean references and how a case compares.
The ledger is SQLite here; ``test_step_faults_pg.py`` runs the same cases on PostgreSQL (two
modules, so pytest-xdist can run them on two workers at once).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import matrix
from .state import failures

pytestmark = pytest.mark.slow

POINTS = matrix.source_points()


def test_clean_runs_are_identical(sqlite_matrix: matrix.Matrix) -> None:
    """The premise of the comparison: two clean runs of week 5 from the same snapshot leave
    the same state (bit-identical models, rows, files; dollars within the wall-time
    tolerance). Otherwise a difference after a fault could be noise."""
    m = sqlite_matrix
    ref = m.reference("retrain")
    again = m.reference_again("retrain")
    assert (
        ref.captures[-1]["registry"]["aliases"]["champion"]
        == again["registry"]["aliases"]["champion"]
    )
    found = failures(matrix.state.diff(ref.captures[-1], again, m.tol))
    assert not found, "\n".join(f.line() for f in found)


def test_fault_points_are_all_reached(sqlite_matrix: matrix.Matrix) -> None:
    """Every fault point in the code is passed by some scenario, so every one is tried."""
    reached = {p for name in sqlite_matrix.scenarios for p in sqlite_matrix.reference(name).trace}
    assert sorted(set(POINTS) - reached) == []


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_point_converges_to_clean_state(
    sqlite_matrix: matrix.Matrix, point: str, fault_results: Path
) -> None:
    res = sqlite_matrix.case(point)
    matrix.record(fault_results, res)
    assert res.passed, res.report()


def test_sigkill_while_training_worker_runs(
    sqlite_matrix: matrix.Matrix, fault_results: Path
) -> None:
    """The task dies after its worker checkpointed a chunk; the worker goes on as an orphan.
    The retry must not run a second worker on the same checkpoint folder, must register
    one version, and the orphan must not outlive the run."""
    res = sqlite_matrix.case("train_challenger.start", action="kill-training")
    matrix.record(fault_results, res)
    assert res.passed, res.report()
