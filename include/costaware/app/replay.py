"""``costaware replay MODEL``: feed a model's data set batch by batch through the real DAG.

Each batch lands in the landing zone (features only), the labels of the batch
``label_delay_batches`` earlier land beside it, and the ``retrain_<model>`` DAG runs once
with ``dag.test()``. The ledger and the registry then say what happened.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costaware.batches.data import ID_COLUMN, TIME_COLUMN
from costaware.config import ModelConfig
from costaware.costs.base import Spend
from costaware.errors import ConfigError
from costaware.settings import Settings
from costaware.store import storage

if TYPE_CHECKING:
    import pandas as pd


def load_source(cfg: ModelConfig, root: Path) -> pd.DataFrame:
    """The model's data set with ``event_id`` and ``event_time`` added, in time order."""
    import pandas as pd

    from costaware.app.source_check import check_source

    path = root / cfg.data.source
    if not path.is_file():
        raise ConfigError(f"{cfg.source_file}: data.source: no such file {path}")
    frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    frame = frame.drop(columns=[c for c in cfg.data.drop_columns if c in frame.columns])
    check_source(cfg, frame, str(path))  # a config that contradicts its data fails here, whole
    if cfg.data.time.column:
        frame[TIME_COLUMN] = pd.to_datetime(frame[cfg.data.time.column])
    else:
        frame[TIME_COLUMN] = pd.date_range(
            cfg.data.time.start, periods=len(frame), freq=cfg.data.time.freq
        )
    frame[ID_COLUMN] = [f"{cfg.name}-{i}" for i in range(len(frame))]
    return frame.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)


def batch_name(cfg: ModelConfig, index: int, frame: pd.DataFrame) -> str:
    day = frame[TIME_COLUMN].iloc[0].strftime("%Y-%m-%d")
    return f"b{index:04d}_{day}"


def split_batches(cfg: ModelConfig, frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    n = cfg.data.batch_rows
    for i in range(len(frame) // n):
        part = frame.iloc[i * n : (i + 1) * n]
        yield batch_name(cfg, i, part), part


def land_batch(settings: Settings, cfg: ModelConfig, name: str, part: pd.DataFrame) -> Any:
    """Put a batch into the model's landing zone (a folder or an object-storage prefix)."""
    path = settings.landing(cfg.name) / f"{name}.parquet"
    return storage.write_parquet(path, part[[ID_COLUMN, TIME_COLUMN, *cfg.feature_names]])


def land_labels(settings: Settings, cfg: ModelConfig, name: str, part: pd.DataFrame) -> Any:
    path = settings.labels_landing(cfg.name) / f"{name}.parquet"
    return storage.write_parquet(path, part[[ID_COLUMN, cfg.target.name]])


@dataclass
class WeekRow:
    index: int
    batch: str
    state: str
    action: str
    outcome: str
    champion: str | None
    champion_points: float | None  # the champion's metric in its unit (``MetricSpec.shown``)
    usd: float | None  # None: some attempt's cost is unknown
    seconds: float


@dataclass
class ReplaySummary:
    model: str
    rows: list[WeekRow] = field(default_factory=list)
    seconds: float = 0.0
    reports: str = ""
    log_file: str = ""

    def counts(self) -> dict[str, Any]:
        return {
            "batches": len(self.rows),
            "retrains": sum(r.outcome in ("promoted", "rejected") for r in self.rows),
            "promotions": sum(r.outcome == "promoted" for r in self.rows),
            "rejections": sum(r.outcome == "rejected" for r in self.rows),
            "skips": sum(r.action == "skip" for r in self.rows),
            "approvals needed": sum(r.action == "approve" for r in self.rows),
            "quarantined": sum(r.state == "quarantined" for r in self.rows),
            "retraining $": Spend.of(r.usd for r in self.rows).text(),
        }

    def table(self) -> str:
        head = (
            f"{'#':>3}  {'batch':<16} {'run':<8} {'decision':<8} {'outcome':<18} "
            f"{'champion':<8} {'metric':>7} {'$':>8} {'s':>5}"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            pts = "" if r.champion_points is None else f"{r.champion_points:.2f}"
            lines.append(
                f"{r.index:>3}  {r.batch:<16} {r.state:<8} {r.action:<8} "
                f"{r.outcome:<18} {('v' + r.champion) if r.champion else '-':<8} "
                f"{pts:>7} {'unknown' if r.usd is None else f'{r.usd:.4f}':>8} "
                f"{r.seconds:>5.1f}"
            )
        c = self.counts()
        lines.append("-" * len(head))
        lines.append("  ".join(f"{k}: {v}" for k, v in c.items()))
        lines.append(
            f"wall time {self.seconds:.0f} s "
            f"({self.seconds / max(1, len(self.rows)):.1f} s per batch)"
        )
        lines.append(f"reports: {self.reports}")
        lines.append(f"task logs: {self.log_file}")
        return "\n".join(lines)


def _load_dag(settings: Settings, model: str) -> Any:
    import importlib.util

    path = settings.project_root / "dags" / "costaware_retrain.py"
    spec = importlib.util.spec_from_file_location("costaware_retrain_dags", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"retrain_{model}")


def run_dag_once(dag: Any, conf: dict[str, Any] | None = None, logical_date: Any = None) -> str:
    """One ``dag.test()`` run (``dag_test_run``); returns the run's final state."""
    dr = dag_test_run(dag, conf, logical_date)
    return str(getattr(dr.state, "value", dr.state))


def dag_test_run(dag: Any, conf: dict[str, Any] | None = None, logical_date: Any = None) -> Any:
    """One ``dag.test()`` run; returns its ``DagRun``.

    The run gets fresh copies of the DAG's ``Param`` objects: Airflow's ``process_params``
    keeps each value it validates in them, where the next run in this process would read
    them (a deployment's task processes each parse the DAG file afresh). Only the params are
    copied, never the DAG: a deep copy of the whole DAG makes new instances of Airflow's
    ``NOTSET`` sentinel, and operators that test ``is NOTSET`` (``TriggerDagRunOperator``,
    the backlog drain) then fail. Every parameter is passed explicitly, from the untouched
    defaults. ``logical_date`` is the run's clock (budgets, cooldowns, cost dates): a replay
    passes the time its batch arrives, so a replayed year spends a year's budgets."""
    pristine = getattr(dag, "_costaware_pristine_params", None)
    if pristine is None:
        pristine = copy.deepcopy(dag.params)
        dag._costaware_pristine_params = pristine
    dag.params = copy.deepcopy(pristine)
    defaults = {k: pristine[k] for k in pristine.keys()}
    extra = {} if logical_date is None else {"logical_date": logical_date}
    return dag.test(run_conf={**defaults, **(conf or {})}, **extra)


def arrival_time(cfg: ModelConfig, part: pd.DataFrame) -> Any:
    """When a replayed batch lands: one time step after its newest row, in UTC."""
    import pandas as pd

    end = pd.Timestamp(part[TIME_COLUMN].max()) + pd.tseries.frequencies.to_offset(
        cfg.data.time.freq
    )
    return (end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")).to_pydatetime()


def replay(
    model: str,
    batches: int,
    start: int = 0,
    settings: Settings | None = None,
    progress: bool = True,
    quiet: bool = True,
) -> ReplaySummary:
    from tqdm import tqdm

    from costaware.app.airflow_env import apply_airflow_env, ensure_airflow_db
    from costaware.steps.context import StepContext

    settings = settings or Settings.from_env()
    ctx = StepContext.for_model(model, settings=settings)  # unknown model: fail fast
    cfg = ctx.cfg
    frame = load_source(cfg, settings.project_root)
    parts = list(split_batches(cfg, frame))
    if batches < 1 or start < 0 or start + batches > len(parts):
        raise ConfigError(
            f"{model} has {len(parts)} batches of {cfg.data.batch_rows} rows; "
            f"asked for {batches} from {start}"
        )
    apply_airflow_env(settings)
    ensure_airflow_db(settings)
    dag = _load_dag(settings, model)
    summary = ReplaySummary(model, reports=str(settings.reports(model)))
    log_file = settings.home / "logs" / f"replay_{model}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    summary.log_file = str(log_file)
    t0 = time.monotonic()
    delay = cfg.data.label_delay_batches
    bar = tqdm(
        range(start, start + batches), desc=f"replay {model}", unit="batch", disable=not progress
    )
    with log_file.open("a") as logf:
        for i in bar:
            name, part = parts[i]
            land_batch(settings, cfg, name, part)
            if i - delay >= 0:
                lname, lpart = parts[i - delay]
                land_labels(settings, cfg, lname, lpart)
            t = time.monotonic()
            with _captured(logf, quiet):
                state = run_dag_once(dag, logical_date=arrival_time(cfg, part))
            summary.rows.append(_week_row(ctx, i, name, state, time.monotonic() - t))
            last = summary.rows[-1]
            bar.set_postfix_str(f"{last.action}/{last.outcome} champion v{last.champion}")
    summary.seconds = time.monotonic() - t0
    return summary


@contextlib.contextmanager
def _captured(logf: Any, quiet: bool) -> Iterator[None]:
    """Send task logs to the replay's log file so the terminal shows progress and results."""
    if not quiet:
        yield
        return
    root = logging.getLogger()
    handler = logging.StreamHandler(logf)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_handlers, old_level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield
    finally:
        root.handlers, root.level = old_handlers, old_level
        logf.write(buf.getvalue())
        logf.flush()


def _week_row(ctx: Any, i: int, name: str, state: str, seconds: float) -> WeekRow:
    from costaware.models.registry import CHAMPION

    decision = ctx.ledger.decision_for_batch(ctx.model, name)
    batch = ctx.ledger.batch(ctx.model, name)
    quarantined = batch is not None and batch["status"] == "quarantined"
    usd: float | None = 0.0  # a run that trained nothing spent nothing
    if decision is not None:
        from costaware.steps.spend import run_spend

        spend = run_spend(ctx.ledger, ctx.model, decision["run_id"])
        usd = spend["usd"] if spend["usd_known"] or spend["unknown_attempts"] else 0.0
    points = None
    if decision is not None:
        points = (decision["details"] or {}).get("champion_points")
    if points is not None:  # as people read the metric: an RMSE of 12.3, not −12.3 points
        from costaware.config import METRIC_SPECS

        points = METRIC_SPECS[ctx.cfg.metric].shown(float(points))
    return WeekRow(
        index=i,
        batch=name,
        state="quarantined" if quarantined else state,
        action="-" if decision is None else decision["action"],
        outcome="quarantined"
        if quarantined
        else ("-" if decision is None else decision["outcome"] or "-"),
        champion=ctx.registry.alias(ctx.model, CHAMPION),
        champion_points=points,
        usd=usd,
        seconds=seconds,
    )
