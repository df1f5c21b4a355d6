"""
### FinOps showback: `finops_showback`

Every day: who spent what. Writes, for each of model, team and env, a CSV of every charge and
an HTML report with a chart (cost per day and month, retraining vs serving, spot vs
on-demand, the untagged share and the biggest untagged resources) under
`$COSTAWARE_HOME/reports/finops/<day>/`. Then checks each model's monthly budget and alerts
at 50% and 80% (task log; Slack too when the `costaware_slack_webhook` Variable is set).

Trigger form: the cost source (`ledger`, or `focus` with the path of a FOCUS export) and how
many days back the report starts.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5), "owner": "finops"},
    tags=["costaware", "finops", "showback"],
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
    },
)
def finops_showback() -> None:
    @task
    def showback_report() -> dict[str, Any]:
        from costaware.costs import make_cost_source
        from costaware.costs.showback import load_charges, render_text, summarize, write_report
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
        charges = load_charges(source, start, end)
        out = settings.home / "reports" / "finops" / end.isoformat()
        paths: dict[str, Any] = {}
        for by in ("model", "team", "env"):
            summary = summarize(charges, by, start, end)
            print(render_text(summary))
            paths[by] = write_report(charges, summary, out)
        return paths

    @task
    def budget_alerts() -> list[dict[str, Any]]:
        from airflow.sdk import Variable

        from costaware.config import load_all
        from costaware.costs import make_cost_source
        from costaware.costs.budgets import alert, model_budget
        from costaware.errors import CostSourceError
        from costaware.settings import Settings
        from costaware.store.ledger import Ledger

        today = (get_current_context().get("data_interval_end") or pendulum.now("UTC")).date()
        settings = Settings.from_env()
        ledger = Ledger(settings.db_url)
        statuses = []
        for cfg in load_all(settings.models_dir).values():
            cp = cfg.cost_policy
            source = make_cost_source(cp.cost_source, ledger, cp.cost_source_options)
            tags = {"model": cfg.tags.model, "team": cfg.tags.team, "env": cfg.tags.env}
            try:
                statuses.append(model_budget(cfg.name, tags, cp.monthly_budget_usd, source, today))
            except CostSourceError as exc:
                # One model's missing data must not hide the others' alerts.
                print(f"budget {cfg.name}: spend unknown: {exc}")
        alert(statuses, slack_webhook=Variable.get("costaware_slack_webhook", default=None))
        return [s.as_dict() for s in statuses]

    showback_report() >> budget_alerts()


finops_showback()
