"""
### FinOps showback: `finops_showback`

Every day: who spent what. Writes, for each of model, team and env, a CSV of every charge and
an HTML report with a chart (cost per day and month, retraining vs serving, spot vs
on-demand, the untagged share and the biggest untagged resources) under
`$COSTAWARE_HOME/reports/finops/<day>/`. Then checks each model's monthly budget and alerts
at 50% and 80%: in the task log, and in one Slack message when the Airflow connection
`costaware_slack` exists. Put the incoming-webhook URL in that connection's **password**
(the whole `https://hooks.slack.com/services/T…/B…/…`, or only `T…/B…/…` with the endpoint
in host), where Airflow masks it in every task log; the old `costaware_slack_webhook`
Variable is not read (Airflow does not mask Variables with such names).

Each model's budget counts its retraining (`purpose=retrain`) and its serving
(`purpose=serve`) spend from the model's cost source. With `aws_budgets_conn_id` set, the
account's monthly AWS Budgets are read too, through that Airflow connection (the spend AWS
computed for each). Every alert names the biggest contributors: a model's biggest runs or
serving charges; for an AWS budget, the month's biggest models and resources in the report's
cost source.

Trigger form: the cost source (`ledger`, or `focus` with the path of a FOCUS export), how
many days back the report starts, and the AWS connection for AWS Budgets (empty: not read).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from costaware.app.dag_defaults import finops_dag_kwargs


@dag(
    schedule="@daily",
    **finops_dag_kwargs("showback", retry_minutes=5, doc=__doc__),
    params={
        "source": Param(
            "ledger",
            type="string",
            enum=["ledger", "focus"],
            title="Cost source",
            description="ledger: costaware's own runs; focus: a FOCUS export",
        ),
        "focus_path": Param(
            None,
            type=["null", "string"],
            title="FOCUS export",
            description="File or folder of FOCUS CSV/Parquet (source=focus)",
        ),
        "lookback_days": Param(
            35,
            type="integer",
            minimum=1,
            maximum=400,
            title="Days back",
            description="The report covers this many days "
            "before the run's day (35 shows this month and the last).",
        ),
        "aws_budgets_conn_id": Param(
            None,
            type=["null", "string"],
            title="AWS Budgets connection",
            description="Airflow connection of the AWS account whose monthly cost budgets are "
            "checked too (empty: AWS Budgets are not read).",
        ),
    },
)
def finops_showback() -> None:
    @task
    def showback_report() -> dict[str, Any]:
        from costaware.costs import make_cost_source
        from costaware.costs.showback import render_text, showback, write_report
        from costaware.settings import Settings
        from costaware.store.ledger import Ledger

        ctx = get_current_context()
        params = ctx["params"]
        # A manual run may have no data interval (Airflow 3): then the report ends today.
        end = (ctx.get("data_interval_end") or pendulum.now("UTC")).date()
        start = end - pendulum.duration(days=int(params["lookback_days"]))
        settings = Settings.from_env()
        options = {"path": params["focus_path"]} if params["source"] == "focus" else {}
        source = make_cost_source(params["source"], Ledger(settings.db_url), options)
        out = settings.storage / "reports" / "finops" / end.isoformat()
        paths: dict[str, Any] = {}
        for by in ("model", "team", "env"):
            # A FOCUS export is streamed grouped by what each report needs; the text says
            # what loading it found (reconciliation, anomalies, tag-key merges).
            summary, charges = showback(source, by, start, end)
            print(render_text(summary))
            paths[by] = write_report(charges, summary, out)
        return paths

    @task
    def budget_alerts() -> list[dict[str, Any]]:
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException

        from costaware.config import load_models
        from costaware.costs import make_cost_source
        from costaware.costs.budgets import SLACK_CONN_ID, alert, model_budget, slack_webhook_url
        from costaware.errors import CostSourceError
        from costaware.settings import Settings
        from costaware.store.ledger import Ledger

        ctx = get_current_context()
        today = (ctx.get("data_interval_end") or pendulum.now("UTC")).date()
        settings = Settings.from_env()
        ledger = Ledger(settings.db_url)
        statuses = []
        found = load_models(settings.models_dir)
        for error in found.errors.values():  # one bad YAML must not hide the others' alerts
            print(f"budget alerts skip a model config: {error}")
        for cfg in found.configs.values():
            cp = cfg.cost_policy
            source = make_cost_source(cp.cost_source, ledger, cp.cost_source_options)
            tags = {"model": cfg.tags.model, "team": cfg.tags.team, "env": cfg.tags.env}
            try:
                statuses.append(model_budget(cfg.name, tags, cp.monthly_budget_usd, source, today))
            except CostSourceError as exc:
                # One model's missing data must not hide the others' alerts.
                print(f"budget {cfg.name}: spend unknown: {exc}")
        params = ctx["params"]
        if params.get("aws_budgets_conn_id"):
            from costaware.costs.aws_budgets import account_budgets

            options = {"path": params["focus_path"]} if params["source"] == "focus" else {}
            source = make_cost_source(params["source"], ledger, options)
            statuses += account_budgets(params["aws_budgets_conn_id"], today, source)
        else:
            print("AWS Budgets not read: no aws_budgets_conn_id in the trigger form")
        try:
            # Read in the task, never at parse time; Airflow masks the password in logs.
            conn = Connection.get(SLACK_CONN_ID)
            webhook = slack_webhook_url(conn.password, conn.host, conn.schema, conn.port)
        except AirflowNotFoundException:
            webhook = None
        if webhook is None:
            print(
                f"Slack alerts off: no Airflow connection {SLACK_CONN_ID!r} with the webhook "
                "URL in its password (alerts are in this log only)"
            )
        alert(statuses, slack_webhook=webhook)
        return [s.as_dict() for s in statuses]

    showback_report() >> budget_alerts()


finops_showback()
