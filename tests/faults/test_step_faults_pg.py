"""The step-fault cases of ``test_step_faults.py`` with the ledger on PostgreSQL (a private
server: the outage cases stop it), plus outages of that server while a task runs.

A module of its own so that pytest-xdist (``--dist loadscope``) runs it beside the SQLite cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import matrix

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# ``<step>.start`` is passed before the step's body runs (``faults.step_points``): a kill there
# has written nothing on any ledger, and its retry is the clean run, which the SQLite module
# already checks from the same snapshot. Here: every point after a step has begun.
POINTS = [p for p in matrix.source_points() if not p.endswith(".start")]
# A task that meets a database outage fails; its retry must converge like after a kill.
PG_RESTART_POINTS = [
    p
    for p in (
        "validate_batch.accepted_written",
        "cost_checkpoint.start",
        "promote_or_reject.intent_recorded",
    )
    if p in matrix.source_points()
]


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_point_converges_to_clean_state(
    pg_matrix: matrix.Matrix, point: str, fault_results: Path
) -> None:
    res = pg_matrix.case(point)
    matrix.record(fault_results, res)
    assert res.passed, res.report()


@pytest.mark.parametrize("point", PG_RESTART_POINTS)
def test_postgres_restart_during_task(
    pg_matrix: matrix.Matrix, point: str, fault_results: Path
) -> None:
    """The server goes down while the task is at ``point`` and comes back a moment later:
    the task fails on the outage, Airflow's retry succeeds, the state is the clean run's."""
    res = pg_matrix.case(point, action="pause")
    matrix.record(fault_results, res)
    assert res.passed, res.report()
