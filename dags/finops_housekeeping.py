"""
### FinOps housekeeping: `finops_housekeeping`

Every day: what SageMaker capacity is paid for and not used, and what it costs per day.

* **Endpoints** (`InService`) with no `Invocations` (CloudWatch `AWS/SageMaker`) for
  `endpoint_idle_days` → would be **deleted** (the endpoint config and model stay).
* **Notebook instances** `InService` and not started or changed for `notebook_idle_hours`
  → would be **stopped** (the volume stays).
* **Training jobs** still `InProgress` past their deadline (a `costaware:deadline` tag, else
  start + `training_max_hours`) → would be **stopped**.

By default this is a **dry run**: `find_idle` logs the table and writes the report under
`$COSTAWARE_HOME/reports/finops/housekeeping/<day>/`; nothing is touched. With `dry_run`
off, **approve_housekeeping** waits in the UI (Required actions) for Approve / Reject; only a
person's Approve acts, nobody answering within a day rejects. **apply_actions** then looks
again and acts only on what is still idle (a resource called or restarted since is left
alone). Prices: the `price_source` (`static` by default); an `ml.*` type the source does not
know is priced at its EC2 hardware's price as a lower bound ("at least").

AWS is reached through the Airflow connection `aws_conn_id` (keys or role, region,
`endpoint_url` extra), with the Amazon provider's hooks.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context, task

from costaware.app.dag_defaults import PARAM_SCHEMA, finops_dag_kwargs


@dag(
    schedule="@daily",
    **finops_dag_kwargs("housekeeping", retry_minutes=2, doc=__doc__),
    params={
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Only report what would be stopped and its $/day (the default).",
            **PARAM_SCHEMA,
        ),
        "aws_conn_id": Param(
            "aws_default",
            type="string",
            minLength=1,
            title="AWS connection",
            description="Airflow connection with the account's keys or role and region.",
            **PARAM_SCHEMA,
        ),
        "region": Param(
            None,
            type=["null", "string"],
            title="Region",
            description="Empty: the connection's region.",
            **PARAM_SCHEMA,
        ),
        "endpoint_idle_days": Param(
            7,
            type="number",
            exclusiveMinimum=0,
            title="Endpoint idle days",
            description="Days without invocations before an endpoint counts as idle "
            "(7: a whole weekly cycle).",
            **PARAM_SCHEMA,
        ),
        "notebook_idle_hours": Param(
            24,
            type="number",
            exclusiveMinimum=0,
            title="Notebook idle hours",
            description="Hours since a notebook was last started or changed.",
            **PARAM_SCHEMA,
        ),
        "training_max_hours": Param(
            24,
            type="number",
            exclusiveMinimum=0,
            title="Training max hours",
            description="Deadline of a training job without a costaware:deadline tag "
            "(24: SageMaker's default MaxRuntimeInSeconds).",
            **PARAM_SCHEMA,
        ),
        "price_source": Param(
            "static",
            type="string",
            enum=["static", "aws"],
            title="Price source",
            description="static: the built-in table; aws: the Pricing API.",
            **PARAM_SCHEMA,
        ),
    },
)
def finops_housekeeping() -> None:
    @task
    def find_idle() -> dict[str, Any]:
        from costaware.app.airflow_glue import run_clock
        from costaware.app.housekeeping import (
            aws_clients,
            limits_from_params,
            price_source,
            write_report,
        )
        from costaware.costs.idle import find_idle as find

        ctx = get_current_context()
        p = ctx["params"]
        aws = aws_clients(p["aws_conn_id"], p["region"])
        report = find(
            aws.sagemaker,
            aws.cloudwatch,
            price_source(p["price_source"]),
            run_clock(ctx),
            limits_from_params(p),
        )
        print(report.text())
        if p["dry_run"]:
            print("dry run: nothing is stopped or deleted")
        return {
            **report.as_dict(),
            "text": report.text(),
            "path": write_report(report, ctx["run_id"]),
        }

    @task.short_circuit
    def needs_approval(report: dict[str, Any]) -> bool:
        return bool(report["idle"]) and not get_current_context()["params"]["dry_run"]

    approve_housekeeping = HITLOperator(
        task_id="approve_housekeeping",
        options=["Approve", "Reject"],
        subject="Stop or delete idle SageMaker capacity?",
        body="{{ ti.xcom_pull(task_ids='find_idle')['text'] }}\n\n"
        "Approve stops the notebooks and training jobs and deletes the endpoints listed, "
        "those still idle when it runs.",
        defaults="Reject",  # nobody answered: touch nothing
        response_timeout=pendulum.duration(hours=24),
    )

    @task
    def apply_actions(report: dict[str, Any]) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowSkipException

        from costaware.app.airflow_glue import run_clock
        from costaware.app.housekeeping import (
            approved_by,
            aws_clients,
            limits_from_params,
            price_source,
            write_actions,
        )
        from costaware.costs.idle_actions import apply_actions as act

        ctx = get_current_context()
        p = ctx["params"]
        who = approved_by(ctx["ti"].xcom_pull(task_ids="approve_housekeeping"))
        if who is None:
            raise AirflowSkipException("not approved: nothing stopped or deleted")
        aws = aws_clients(p["aws_conn_id"], p["region"])
        results = act(
            aws.sagemaker,
            aws.cloudwatch,
            price_source(p["price_source"]),
            report["idle"],
            run_clock(ctx),
            limits_from_params(p),
        )
        for r in results:
            print(f"{r.kind:<13} {r.name:<32} {r.action:<23} {r.outcome} (approved by {who})")
        done = [r.as_dict() for r in results]
        write_actions(done, who, report["checked_at"][:10], ctx["run_id"])
        return done

    report = find_idle()
    needs_approval(report) >> approve_housekeeping >> apply_actions(report)


finops_housekeeping()
