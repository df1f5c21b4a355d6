"""The retrain DAG's chain of steps, each step in its own process, retried like Airflow does.

``dags/costaware_retrain.py`` wires the steps of ``costaware.steps`` into tasks; ``plan``
below wires the same step functions in the same order with the same inputs (the XCom of
the upstream tasks), and ``Runner`` runs each one the way an Airflow task runs: in a
process of its own, forked from a warm parent that has already imported pandas, Great
Expectations, Evidently, MLflow and XGBoost (so a step costs what the step costs, not the
imports). A process that dies — SIGKILL at a fault point, or an exception — is run again
with the same inputs, the same run id and the same clock, up to ``retries`` times
(``default_args["retries"]`` of the DAG), and the chain continues with its output.

The parent never opens a ledger, registry or database connection of its own: forked
children would share its sockets. Everything that reads state runs in a child too.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "elec2"
STEP_MODULES = {
    "collect_batch": "costaware.steps.intake",
    "validate_batch": "costaware.steps.intake",
    "measure_drift": "costaware.steps.measure",
    "measure_performance": "costaware.steps.measure",
    "estimate_cost": "costaware.steps.checkpoint",
    "cost_checkpoint": "costaware.steps.checkpoint",
    "train_challenger": "costaware.steps.train",
    "evaluate_challenger": "costaware.steps.evaluate",
    "promote_or_reject": "costaware.steps.promote",
    "publish_report": "costaware.steps.report",
    "rollback": "costaware.steps.promote",
}
RETRAIN_STEPS = [s for s in STEP_MODULES if s != "rollback"]
WARM = [
    "pandas",
    "pyarrow.parquet",
    "numpy",
    "sqlalchemy",
    "alembic",
    "great_expectations",
    "evidently",
    "mlflow",
    "mlflow.xgboost",
    "mlflow.store.tracking.sqlalchemy_store",  # 4 s of imports, else paid by every step
    "mlflow.store.model_registry.sqlalchemy_store",
    "xgboost",
    "sklearn",
    "costaware.batches.validation",
    "costaware.batches.drift",
    "costaware.costs",
    "costaware.costs.estimate",
    "costaware.decide.gain",
    "costaware.decide.performance",
    "costaware.decide.policy",
    "costaware.models.registry",
    "costaware.models.scoring",
    "costaware.models.training",
    "costaware.store.ledger",
    "costaware.store.probes",
    *sorted(set(STEP_MODULES.values())),
]
_FORK = multiprocessing.get_context("fork")


def warm() -> None:
    """Import what the steps import, once, in the parent (children are forked from it)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name in WARM:
        importlib.import_module(name)
    for name in ("great_expectations", "mlflow", "alembic", "evidently"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class StateEnv:
    """Where one costaware state lives: its home folder and, optionally, a PostgreSQL ledger."""

    home: Path
    project_root: Path
    db_url: str | None = None

    def variables(self) -> dict[str, str | None]:
        return {
            "COSTAWARE_HOME": str(self.home),
            "COSTAWARE_PROJECT_ROOT": str(self.project_root),
            "COSTAWARE_DB_URL": self.db_url,
            "COSTAWARE_MLFLOW_URI": None,
            "COSTAWARE_MODELS_DIR": None,
        }


@dataclass
class Attempt:
    step: str
    try_number: int
    exitcode: int | None
    seconds: float
    error: str = ""

    @property
    def killed(self) -> bool:
        return self.exitcode == -9


class StepFailed(RuntimeError):
    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final  # failed without retries (the DAG's AirflowFailException)


# Exit code of a task that fails for good: the DAG turns these errors into
# AirflowFailException (validate_batch: the batch is in quarantine; promote_or_reject: the
# champion moved since the evaluation) because a retry could only fail again.
NO_RETRY = 3
NO_RETRY_ERRORS = {"ValidationFailed", "ChampionMoved"}


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _jsonable(value: Any) -> Any:
    """What an XCom round trip leaves of a step's return value."""

    def default(o: Any) -> Any:
        if hasattr(o, "item"):  # numpy scalars
            return o.item()
        if isinstance(o, (dt.datetime, dt.date)):
            return o.isoformat()
        return str(o)

    return json.loads(json.dumps(value, default=default))


def _child(
    target: Callable[..., Any],
    args: tuple[Any, ...],
    env: dict[str, str | None],
    out: Path,
    log: Path,
) -> None:
    """A step's process: its own environment, its own log file, its result as JSON."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    root = logging.getLogger()
    root.handlers = [logging.StreamHandler(os.fdopen(os.dup(fd), "w", buffering=1))]
    root.handlers[0].setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.setLevel(logging.INFO)
    try:
        result = target(*args)
        out.write_text(json.dumps(_jsonable(result)))
    except BaseException as exc:  # noqa: BLE001 - the task's failure: logged, exit code 1
        with log.open("a") as f:
            f.write(traceback.format_exc())
        os._exit(NO_RETRY if type(exc).__name__ in NO_RETRY_ERRORS else 1)
    os._exit(0)


def _call_step(
    step: str, ctx_kwargs: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    from costaware.settings import Settings
    from costaware.steps.context import StepContext

    fn = getattr(importlib.import_module(STEP_MODULES[step]), step)
    ctx = StepContext.for_model(MODEL, settings=Settings.from_env(), **ctx_kwargs)
    return fn(ctx, *args, **kwargs)


class Watch:
    """Something the harness does while a task's process runs (``start`` → ``stop``)."""

    def start(self, proc: Any, step: str, try_number: int) -> None:
        pass

    def stop(self) -> None:
        pass


class Runner:
    """Runs steps as processes of one DAG run (one run id, one clock), retrying as Airflow."""

    def __init__(
        self,
        env: StateEnv,
        run_id: str,
        clock: dt.datetime,
        logdir: Path,
        faults: list[str] | None = None,
        faults_dir: Path | None = None,
        retries: int = 2,
        watch: Watch | None = None,
        actor: str = "airflow:retrain_elec2/manual",
        timeout_s: float = 300.0,
    ) -> None:
        self.env, self.run_id, self.clock = env, run_id, clock
        self.logdir = logdir
        self.faults = list(faults or [])
        self.faults_dir = faults_dir or logdir / "faults"
        self.retries = retries
        self.watch = watch
        self.actor = actor
        self.timeout_s = timeout_s
        self.attempts: list[Attempt] = []
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.faults_dir.mkdir(parents=True, exist_ok=True)

    def child_env(self, trace: Path | None = None) -> dict[str, str | None]:
        return {
            **self.env.variables(),
            "COSTAWARE_FAULTS": ",".join(self.faults) or None,
            "COSTAWARE_FAULTS_DIR": str(self.faults_dir),
            "COSTAWARE_FAULTS_TRACE": str(trace) if trace else None,
        }

    def trace(self) -> list[tuple[str, int, str]]:
        """(step, try, point) for every fault point the tries passed, in order."""
        out = []
        for a in self.attempts:
            f = self.logdir / f"{a.step}.{a.try_number}.trace"
            if f.exists():
                for line in f.read_text().splitlines():
                    out.append((a.step, a.try_number, line.split("\t")[0]))
        return out

    def fired(self) -> list[str]:
        """The fault points that fired (their once-markers exist)."""
        prefix = "costaware-fault-"
        return sorted(
            p.name[len(prefix) :]
            for p in self.faults_dir.glob(prefix + "*")
            if not p.name.endswith((".paused", ".resume"))
        )

    def spawn(
        self, target: Callable[..., Any], args: tuple[Any, ...], name: str, try_number: int
    ) -> tuple[Any, Path, Path]:
        out = self.logdir / f"{name}.{try_number}.json"
        log = self.logdir / f"{name}.{try_number}.log"
        trace = self.logdir / f"{name}.{try_number}.trace"
        for f in (out, trace):
            f.unlink(missing_ok=True)
        proc = _FORK.Process(target=_child, args=(target, args, self.child_env(trace), out, log))
        proc.start()
        return proc, out, log

    def call(self, target: Callable[..., Any], args: tuple[Any, ...], name: str) -> Any:
        """Run ``target(*args)`` in a child; retry a dead one; return its JSON result."""
        for try_number in range(1, self.retries + 2):
            t0 = time.monotonic()
            proc, out, log = self.spawn(target, args, name, try_number)
            if self.watch is not None:
                self.watch.start(proc, name, try_number)
            try:
                proc.join(self.timeout_s)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                    raise StepFailed(f"{name} did not finish in {self.timeout_s:.0f} s; log: {log}")
            finally:
                if self.watch is not None:
                    self.watch.stop()
            code = proc.exitcode
            error = "" if code == 0 else _tail(log)
            self.attempts.append(Attempt(name, try_number, code, time.monotonic() - t0, error))
            if code == 0:
                return json.loads(out.read_text())
            if code == NO_RETRY:
                raise StepFailed(
                    f"{name} failed for good (no retry): {_last_line(error)}", final=True
                )
        raise StepFailed(
            f"{name} failed {self.retries + 1} times (run {self.run_id}); last exit code "
            f"{self.attempts[-1].exitcode}; log {log}:\n{self.attempts[-1].error}"
        )

    def __call__(self, step: str, *args: Any, **kwargs: Any) -> Any:
        ctx_kwargs = {"run_id": self.run_id, "actor": self.actor, "clock": self.clock}
        return self.call(_call_step, (step, ctx_kwargs, args, kwargs), step)

    def tries(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.attempts:
            out[a.step] = max(out.get(a.step, 0), a.try_number)
        return out


def _tail(log: Path, n: int = 2500) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@dataclass(frozen=True)
class Params:
    """The trigger form (``RunParams``) of one run."""

    force: bool = False
    dry_run: bool = False
    max_usd_per_point_batch: float | None = None
    batch: str | None = None


@dataclass(frozen=True)
class Task:
    step: str
    inputs: Callable[[dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]
    runs: Callable[[dict[str, Any]], bool] = field(default=lambda o: True)


def plan(p: Params) -> list[Task]:
    """The tasks of ``retrain_<model>`` in the DAG's order, with the DAG's inputs and
    trigger rules: no batch → the rest is skipped (short circuit); a decision that does not
    train skips training, evaluation and promotion; the report runs either way."""

    def has_batch(o: dict[str, Any]) -> bool:
        return bool(o["collect_batch"]["batch"])

    def trains(o: dict[str, Any]) -> bool:
        return has_batch(o) and bool(o["cost_checkpoint"]["train"])

    return [
        Task("collect_batch", lambda o: ((p.batch,), {})),
        Task("validate_batch", lambda o: ((o["collect_batch"]["batch"],), {}), has_batch),
        Task("measure_drift", lambda o: ((o["validate_batch"],), {}), has_batch),
        Task("measure_performance", lambda o: ((), {}), has_batch),
        Task("estimate_cost", lambda o: ((o["validate_batch"],), {}), has_batch),
        Task(
            "cost_checkpoint",
            lambda o: (
                (
                    o["validate_batch"],
                    o["measure_drift"],
                    o["measure_performance"],
                    o["estimate_cost"],
                ),
                {
                    "force": p.force,
                    "dry_run": p.dry_run,
                    "max_usd_per_point_batch": p.max_usd_per_point_batch,
                },
            ),
            has_batch,
        ),
        Task("train_challenger", lambda o: ((o["validate_batch"]["batch_id"],), {}), trains),
        Task("evaluate_challenger", lambda o: ((o["train_challenger"]["version"],), {}), trains),
        Task("promote_or_reject", lambda o: ((o["evaluate_challenger"],), {}), trains),
        Task(
            "publish_report",
            lambda o: (
                (
                    {
                        "validated": o["validate_batch"],
                        "drift": o["measure_drift"],
                        "performance": o["measure_performance"],
                        "cost": o["estimate_cost"],
                        "decision": o["cost_checkpoint"],
                        "training": o["train_challenger"],
                        "evaluation": o["evaluate_challenger"],
                        "outcome": o["promote_or_reject"],
                    },
                ),
                {},
            ),
            has_batch,
        ),
    ]


After = Callable[[int, str, dict[str, Any]], None]


def run_chain(
    run: Runner,
    params: Params | None = None,
    start: int = 0,
    outputs: dict[str, Any] | None = None,
    after: After | None = None,
) -> dict[str, Any]:
    """Run the DAG's tasks from task number ``start`` (the outputs of the earlier ones given),
    calling ``after(index, step, outputs)`` once each task is done (or skipped)."""
    tasks = plan(params or Params())
    out = dict(outputs or {})
    for i, task in enumerate(tasks):
        if i < start:
            continue
        if task.runs(out):
            args, kwargs = task.inputs(out)
            out[task.step] = run(task.step, *args, **kwargs)
        else:
            out[task.step] = None
        if after is not None:
            after(i, task.step, out)
    return out


def week_clock(i: int) -> dt.datetime:
    """When week ``i`` of Elec2 lands: the run's logical date, as ``costaware replay`` uses."""
    from costaware.app.replay import arrival_time

    from .. import factories

    name, part = factories.batches(MODEL)[i]
    return arrival_time(factories.model(MODEL), part)


def land_week(i: int) -> str:
    """Week ``i`` lands in the landing zone with the labels of week ``i - 1`` (as a replay)."""
    from costaware.app.replay import land_batch, land_labels
    from costaware.settings import Settings

    from .. import factories

    settings, cfg = Settings.from_env(), factories.model(MODEL)
    weeks = factories.batches(MODEL)
    name, part = weeks[i]
    land_batch(settings, cfg, name, part)
    if i >= 1:
        land_labels(settings, cfg, *weeks[i - 1])
    return name


def write_rows(path: str, weeks: list[int]) -> str:
    """The rows every version is scored on (the held-out and the newest week)."""
    import pandas as pd

    from .. import factories

    parts = factories.batches(MODEL)
    pd.concat([parts[i][1] for i in weeks], ignore_index=True).to_parquet(path, index=False)
    return path
