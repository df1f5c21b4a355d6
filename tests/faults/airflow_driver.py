"""One run of ``retrain_elec2`` through Airflow's own executor and retry path.

``python -m tests.faults.airflow_driver '{"logical_date": "..."}'`` (from the project root,
with ``AIRFLOW__CORE__EXECUTOR=LocalExecutor`` and an execution API server to report to):
``dag.test(use_executor=True)`` queues each task to the LocalExecutor, whose supervisor runs
it in a process of its own; a task that dies (SIGKILL at a fault point) is marked failed by
the supervisor and retried by Airflow after the DAG's ``retry_delay``. The heavy libraries
are imported before the executor forks its workers, so a task costs what its step costs.

Prints one line ``RESULT {json}``: the run's state and each task's state and try number.
"""

from __future__ import annotations

import datetime as dt
import json
import sys


def main(args: dict[str, str]) -> dict[str, object]:
    from . import chain

    chain.warm()
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from costaware.app.replay import _load_dag
    from costaware.settings import Settings

    dag = _load_dag(Settings.from_env(), chain.MODEL)
    logical = dt.datetime.fromisoformat(args["logical_date"])
    run_id = f"manual__{logical.isoformat()}"
    with create_session() as session:  # an earlier case's run of the same id
        session.execute(
            sa.delete(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)
        )
    defaults = {k: dag.params[k] for k in dag.params.keys()}
    dr = dag.test(run_conf=defaults, logical_date=logical, run_after=logical, use_executor=True)
    with create_session() as session:
        run = session.scalars(
            sa.select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)
        ).one()
        tasks = {
            ti.task_id: {"state": str(getattr(ti.state, "value", ti.state)), "try": ti.try_number}
            for ti in run.get_task_instances(session=session)
        }
        state = str(getattr(run.state, "value", run.state))
    assert dr.run_id == run_id, (dr.run_id, run_id)
    return {"state": state, "run_id": run_id, "tasks": tasks}


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]))
    print("RESULT " + json.dumps(out), flush=True)
