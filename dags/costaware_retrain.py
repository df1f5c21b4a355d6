"""
### Cost-aware retraining: `retrain_<model>`

One DAG per valid model config in `include/models/` (or `$COSTAWARE_MODELS_DIR`; an
invalid one is listed under the import errors of `costaware_model_configs.py`). Each run
takes the oldest batch waiting in the model's landing zone (or the one named in the
trigger form) through:

`collect_batch → validate_batch → measure_drift → measure_performance → estimate_cost →
cost_checkpoint → train_challenger → evaluate_challenger → promote_or_reject → publish_report`

* A batch that fails its Great Expectations suite is moved to `quarantine/` and the run
  fails loudly; nothing is trained and the champion is untouched.
* The **cost checkpoint** retrains only when the expected metric gain is worth its cost
  (`max_usd_per_point_batch`), within budget and after the cooldown; above the
  auto-approve limit or the month's budget it asks a person: **approve_retrain** waits in
  the UI (Required actions) for Approve / Reject; only an Approve trains, and nobody
  answering within the model's `airflow.approval_timeout_hours` (default 24) rejects.
* A model in a **shared budget** (`budgets.yaml` beside the model configs) asks it too:
  **cost_checkpoint** posts its retrain and waits *up for reschedule* (no worker slot) until
  the budget's other models have posted in this window or its `wait_minutes` pass; the best
  gain per dollar is funded first, and a run that is not says who outbid it.
* A challenger is promoted only if it beats the champion on the same held-out window.
* With `data.batches_from: prediction_log`, **collect_batch** first writes each ready
  interval of the prediction log (the labelled predictions `costaware serve` logged) into
  the landing zone as a batch plus its label file; from there it is a batch like any other
  (README, "The live loop").
* With `training.backend: sagemaker`, **prepare_training** writes the training window to
  S3, **train_on_sagemaker** waits for the SageMaker (spot) job deferred — the triggerer
  polls, no worker slot is held — and **train_challenger** registers the model it made.
  `training.backend: vertex` is the same with Google Cloud: **prepare_training** writes to
  `training.vertex.base_output_uri` (Cloud Storage), **train_on_vertex** waits for the
  Vertex AI custom job (Spot VMs) deferred, **train_challenger** registers its model.
* **A backlog drains**, one batch per run, oldest event first: when batches are still
  waiting after a run (whatever its outcome, a quarantine included), **check_backlog**
  lets **drain_backlog** trigger the next run of this DAG (`max_active_runs=1` queues it
  behind this one). It stops when nothing waits, when this run's batch is still in the
  landing zone (another run would only take it again: the log says which and why), and
  for a run that named its `batch`. Drained runs use the model's own settings: `force`,
  `dry_run` and a `max_usd_per_point_batch` override apply to the run they were given to.

The report of each run is in `$COSTAWARE_HOME/reports/<model>/<batch>/index.html`.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from costaware.app.dag_defaults import (
    PARAM_SCHEMA,
    approval_timeout,
    model_dag_kwargs,
    with_run_params,
)
from costaware.app.monitor_schedule import retrain_schedule
from costaware.config import ModelConfig, load_models_for_dags


def _ctx(model: str) -> Any:
    from costaware.app.airflow_glue import step_context

    return step_context(model, get_current_context())


def _run_params() -> Any:
    """The trigger form's values, validated by the library; bad input fails without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from costaware.config import RunParams
    from costaware.errors import ConfigError

    context = get_current_context()
    try:
        return RunParams.parse({**context["params"], **(context["dag_run"].conf or {})})
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from exc  # a retry cannot fix the input


def _no_retry(step: Any, *args: Any) -> Any:
    """Run a step; data that no retry can fix (``DataError``: a string where a number is
    declared, a category outside the declared set) fails the task at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from costaware.errors import DataError

    try:
        return step(*args)
    except DataError as exc:
        raise AirflowFailException(str(exc)) from exc


def _approved_or_skip(decision: dict[str, Any]) -> None:
    """Training goes on when the checkpoint said retrain or a person approved; else skip."""
    from airflow.sdk.exceptions import AirflowSkipException

    answer = get_current_context()["ti"].xcom_pull(task_ids="approve_retrain") or {}
    # Only a person's explicit Approve spends money: the timeout's default is Reject and
    # carries no responder.
    user = answer.get("responded_by_user") or {}
    who = user.get("name") or user.get("id")
    approved = answer.get("chosen_options") == ["Approve"] and bool(who)
    if not (decision["train"] or approved):
        said = f"; approval: {answer.get('chosen_options')} by {who}" if answer else ""
        raise AirflowSkipException(f"not retraining: {decision['reason']}{said}")


def trigger_params(cfg: ModelConfig) -> dict[str, Param]:
    """The trigger form of ``retrain_<model>``: what a person may change for one run."""
    return {
        "force": Param(
            False,
            type="boolean",
            title="Force retrain",
            description="Retrain whatever the cost checkpoint says "
            "(also how a person approves an 'approve' decision).",
            **PARAM_SCHEMA,
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Decide and record the decision, but do not train.",
            **PARAM_SCHEMA,
        ),
        "max_usd_per_point_batch": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            title="Max $ per point·batch",
            description="Override the model's cost-per-gain limit for this run: dollars per "
            f"{cfg.metric} point × batch served "
            f"(config: {cfg.cost_policy.max_usd_per_point_batch}).",
            **PARAM_SCHEMA,
        ),
        "batch": Param(
            None,
            type=["null", "string"],
            title="Batch",
            description="File name (or stem) of the batch in the landing zone; "
            "empty = the oldest waiting batch.",
            **PARAM_SCHEMA,
        ),
    }


def build_retrain_dag(cfg: ModelConfig) -> Any:
    model = cfg.name

    @dag(
        **model_dag_kwargs(cfg, "retrain"),
        doc_md=__doc__,
        description=cfg.description.strip() or f"cost-aware retraining of {model}",
        schedule=retrain_schedule(cfg),  # its cron, or also the monitor's Asset event
    )
    def retrain() -> None:
        @task.short_circuit
        def collect_batch() -> dict[str, Any] | None:
            from costaware.steps.intake import collect_batch as step

            found = step(_ctx(model), _run_params().batch)
            return found["batch"]  # None: nothing waiting, the rest of the run is skipped

        @task
        def validate_batch(batch: dict[str, Any]) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from costaware.errors import ValidationFailed
            from costaware.steps.intake import validate_batch as step

            try:
                return step(_ctx(model), batch)
            except ValidationFailed as exc:
                # The batch is already in quarantine: a retry could only fail again.
                raise AirflowFailException(str(exc)) from exc

        @task
        def measure_drift(validated: dict[str, Any]) -> dict[str, Any]:
            from costaware.steps.measure import measure_drift as step

            return _no_retry(step, _ctx(model), validated)

        @task
        def measure_performance(validated: dict[str, Any]) -> dict[str, Any]:
            from costaware.steps.measure import measure_performance as step

            return _no_retry(step, _ctx(model))

        @task
        def estimate_cost(validated: dict[str, Any]) -> dict[str, Any]:
            from costaware.steps.checkpoint import estimate_cost as step

            return step(_ctx(model), validated)

        @task
        def cost_checkpoint(
            validated: dict[str, Any],
            drift: dict[str, Any],
            perf: dict[str, Any],
            cost: dict[str, Any],
        ) -> dict[str, Any]:
            from costaware.steps.checkpoint import cost_checkpoint as step

            p = _run_params()
            decision = step(
                _ctx(model),
                validated,
                drift,
                perf,
                cost,
                force=p.force,
                dry_run=p.dry_run,
                max_usd_per_point_batch=p.max_usd_per_point_batch,
            )
            if decision.get("wait_until"):
                # A shared budget's window is still open: free the worker slot, ask again later.
                import datetime as dt

                from airflow.sdk.exceptions import AirflowRescheduleException

                when = dt.datetime.fromisoformat(decision["wait_until"]).replace(tzinfo=dt.UTC)
                raise AirflowRescheduleException(when)
            return decision

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def needs_approval(decision: dict[str, Any]) -> bool:
            return decision["action"] == "approve" and not decision["dry_run"]

        # A plain HITLOperator, not ApprovalOperator: on Reject that one skips downstream by
        # raising, so the answer (who rejected, or the timeout) never reaches XCom. Here the
        # answer is always this task's result, and train_challenger is the one gate.
        approve_retrain = HITLOperator(
            task_id="approve_retrain",
            options=["Approve", "Reject"],
            subject=f"Retrain {model}? The cost checkpoint asks for a person",
            body="{{ ti.xcom_pull(task_ids='cost_checkpoint')['reason'] }}\n\n"
            "The decision's numbers are in the cost_checkpoint task log and the run report.",
            defaults="Reject",  # nobody answered within the timeout: do not spend
            response_timeout=approval_timeout(cfg),
        )

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def train_challenger(validated: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
            from costaware.steps.train import train_challenger as step

            _approved_or_skip(decision)
            return _no_retry(step, _ctx(model), validated["batch_id"])

        # training.backend: sagemaker | vertex — the data goes to S3 (GCS), the job runs there
        # and the task that waits for it is deferred (the triggerer polls, no worker slot is
        # held); the model it made is then registered as the challenger, as a local one would
        # be. Vertex's files move through a google-cloud-storage client (gcsfs, which
        # ObjectStoragePath would need for gs://, does not install beside the pins).
        def _gcs() -> Any:
            vertex = cfg.training.vertex
            if cfg.training.backend != "vertex" or vertex is None:
                return None
            from costaware.app.vertex_training import storage_client

            return storage_client(vertex.gcp_conn_id)

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, multiple_outputs=True)
        def prepare_training(
            validated: dict[str, Any], decision: dict[str, Any], cost: dict[str, Any]
        ) -> dict[str, Any]:
            from costaware.steps.cloud_training import prepare_cloud_training as step

            _approved_or_skip(decision)
            prepared = _no_retry(step, _ctx(model), validated["batch_id"], _gcs())
            # The placement's choice among the YAML's instance types (None: the YAML's).
            return {**prepared, "instance_type": (cost.get("placement") or {}).get("instance_type")}

        @task(task_id="train_challenger")
        def register_challenger(
            validated: dict[str, Any], prepared: dict[str, Any], trained: dict[str, Any]
        ) -> dict[str, Any]:
            from costaware.steps.cloud_training import register_cloud_challenger as step

            return _no_retry(step, _ctx(model), validated["batch_id"], prepared, trained, _gcs())

        @task
        def evaluate_challenger(trained: dict[str, Any]) -> dict[str, Any]:
            from costaware.steps.evaluate import evaluate_challenger as step

            return _no_retry(step, _ctx(model), trained["version"])

        @task
        def promote_or_reject(
            evaluation: dict[str, Any], trained: dict[str, Any], decision: dict[str, Any]
        ) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from costaware.errors import ChampionMoved
            from costaware.steps.promote import promote_or_reject as step

            try:
                return step(_ctx(model), evaluation)
            except ChampionMoved as exc:
                # The champion moved since the evaluation: a retry would be refused again.
                raise AirflowFailException(str(exc)) from exc

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def publish_report(
            validated: dict[str, Any],
            drift: dict[str, Any],
            perf: dict[str, Any],
            cost: dict[str, Any],
            decision: dict[str, Any],
        ) -> dict[str, Any]:
            from costaware.steps.report import publish_report as step

            ti = get_current_context()["ti"]
            results = {
                "validated": validated,
                "drift": drift,
                "performance": perf,
                "cost": cost,
                "decision": decision,
                "approval": ti.xcom_pull(task_ids="approve_retrain"),
                "training": ti.xcom_pull(task_ids="train_challenger"),
                "evaluation": ti.xcom_pull(task_ids="evaluate_challenger"),
                "outcome": ti.xcom_pull(task_ids="promote_or_reject"),
            }
            return step(_ctx(model), results)

        batch = collect_batch()
        validated = validate_batch(batch)
        drift = measure_drift(validated)
        perf = measure_performance(validated)
        cost = estimate_cost(validated)
        decision = cost_checkpoint(validated, drift, perf, cost)
        needs_approval(decision) >> approve_retrain
        if cfg.training.backend in ("sagemaker", "vertex"):
            # A cloud job: prepare its data, wait for it in the triggerer, register its model.
            if cfg.training.backend == "sagemaker":
                from costaware.app.cloud_training import (
                    SageMakerSpotTrainingOperator as CloudTraining,
                )
            else:
                from costaware.app.vertex_training import (
                    VertexSpotTrainingOperator as CloudTraining,
                )

            prepared = prepare_training(validated, decision, cost)
            approve_retrain >> prepared
            on_cloud = CloudTraining(
                task_id=f"train_on_{cfg.training.backend}",
                cfg=cfg,
                job=prepared["job"],
                instance_type=prepared["instance_type"],
            )
            trained = register_challenger(validated, prepared, on_cloud.output)
        else:
            trained = train_challenger(validated, decision)
            approve_retrain >> trained
        evaluation = evaluate_challenger(trained)
        outcome = promote_or_reject(evaluation, trained, decision)
        report = publish_report(validated, drift, perf, cost, decision)
        outcome >> report

        # A teardown: it runs whatever the run's outcome (a quarantine must not stop the
        # drain) and, unlike an all_done leaf, does not turn a failed run green.
        @task.short_circuit
        def check_backlog() -> str | None:
            from costaware.batches.data import pending_batches
            from costaware.settings import Settings
            from costaware.steps.intake import next_backlog_run

            context = get_current_context()
            taken = context["ti"].xcom_pull(task_ids="collect_batch")
            waiting = [p.stem for p in pending_batches(Settings.from_env(), model)]
            return next_backlog_run(model, context["run_id"], _run_params().batch, taken, waiting)

        drain_backlog = TriggerDagRunOperator(
            task_id="drain_backlog",
            trigger_dag_id=f"retrain_{model}",
            trigger_run_id="{{ ti.xcom_pull(task_ids='check_backlog') }}",
            logical_date=None,  # its clock is when it was triggered, as for a manual run
            conf={},  # the model's own settings: knobs given to this run are not inherited
            skip_when_already_exists=True,  # a retry after the trigger went through
            openlineage_inject_parent_info=False,  # its conf key would fail the trigger form
            note="Started by the backlog drain: batches were still waiting after the run "
            "that triggered it.",
        )
        report >> check_backlog().as_teardown() >> drain_backlog

    # The form's Params go on once the tasks exist: see with_run_params.
    return with_run_params(retrain(), trigger_params(cfg))


# A bad config is skipped here (and reported by costaware_model_configs.py), so it cannot
# hide the other models' DAGs.
for _cfg in load_models_for_dags().configs.values():
    globals()[f"retrain_{_cfg.name}"] = build_retrain_dag(_cfg)
