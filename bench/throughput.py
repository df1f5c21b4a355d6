"""Throughput of a backlog under Celery: 1 worker vs 2 workers (issue 8 §5, second bullet).

    python bench/throughput.py     # N = 4 weeks per model → bench/results/throughput.md
    python bench/throughput.py --weeks 2 --workers 1 --models 1 --out -   # a look, prints only

**What runs.** For each worker count, a private ``costaware stack`` (``app/stack.py``: moto as
S3, an MLflow server, Airflow's scheduler, DAG processor, triggerer, API server and 1 or 2
Celery workers) on fresh databases, a fresh bucket and an empty Redis database. Model configs
come from a scratch ``COSTAWARE_MODELS_DIR``: copies of ``include/models/elec2.yaml`` named
``elec2`` (the one-model case) and ``elec2b``, ``elec2c`` (the two-model case), manual-only
(``schedule: null``) so that nothing runs before the benchmark triggers it. Each case lands
Elec2 weeks 0..N-1 in ``s3://<bucket>/state/landing/<model>/`` with boto3 (week i's features
and week i-1's labels, as ``costaware replay`` lands them), unpauses ``retrain_<model>`` and
triggers one run per model through the REST API; the backlog drain
(``check_backlog``/``drain_backlog``, ``max_active_runs=1``) does the rest. The case ends
when every run of its DAGs has finished (a drained run is created by a task of the run before
it, so "all finished" cannot be premature). Both cases run on the same stack, one after the
other, on models that have never run before.

**What is measured** (from Airflow's metadata DB, the ledger and the process table):
- wall time of a case = last run's end - first run's ``queued_at``; runs/hour = runs / wall;
- per run: queued → start (waiting behind ``max_active_runs``) and start → end;
- per task instance that ran: queued → start (scheduler hand-off to Celery, the worker's pick-up
  and the supervisor's fork: Airflow sets ``start_date`` when the forked task process reports)
  and start → end (the task process: loading the DAG file, the task's body, reporting);
- **task start-up vs work**: start-up per task is the start → end time of ``needs_approval``
  in the same case, a task whose body is one comparison on an XCom value — everything it spends
  is what any task spends to exist (load the DAG file, fetch its context, report its state).
  Chosen over "first log line vs TI start": it needs no log parsing (the logs are on S3, and
  what Airflow logs first is its business), it comes from the same timestamps as every other
  number here, and it covers the whole life of a task process, not just the part before its
  first line.
  A run's wall time is split exactly along its critical path (from the task that ended last,
  back through the upstream task that ended last): *scheduling* (run start → first task
  queued, upstream end → task queued, last task end → run end), *queue* (queued → start),
  *start-up* (min(task duration, the trivial task's duration)) and *work* (the rest);
- CPU: seconds used by the stack's processes (with their reaped children) and by the whole
  machine during each case, as cores busy, and the 1-minute load average sampled every 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from costaware.app import stack
from costaware.app.replay import load_source, split_batches
from costaware.app.stack_topology import private_overrides, read_env_file, s3_client
from costaware.batches.data import ID_COLUMN, TIME_COLUMN
from costaware.config import ModelConfig, get_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CASES = {1: ("elec2",), 2: ("elec2b", "elec2c")}  # models per case → the model configs used
TRIVIAL = "needs_approval"  # its body: one comparison on an XCom value
UP_S, PARSE_S, RUN_S = 300.0, 180.0, 120.0  # RUN_S: a run's allowance while draining
RAW = Path(tempfile.gettempdir()) / "costaware-throughput.json"
CLAIM = "costaware:bench-throughput"  # the Redis key that claims a broker database


def _say(text: str) -> None:
    print(text, flush=True)


# --- the scratch models and the stack -------------------------------------------------------


def write_models(folder: Path) -> dict[str, ModelConfig]:
    """Copies of elec2.yaml under the names of every case, manual-only (``schedule: null``)."""
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    folder.mkdir(parents=True)
    for name in (m for models in CASES.values() for m in models):
        cfg = {**raw, "name": name, "tags": {**raw["tags"], "model": name}}
        cfg["airflow"] = {**raw.get("airflow", {}), "schedule": None}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return {p.stem: get_model(folder, p.stem) for p in sorted(folder.glob("*.yaml"))}


def reserve_redis_db(tag: str) -> int:
    """An empty Redis database for this stack's Celery queues, claimed at once with a key: a
    stack's workers connect ~40 s after it starts, and until then its database looks free to
    anyone else starting a stack (two stacks on one broker database run each other's tasks).
    ``stack.down(drop=True)`` empties the database, the claim with it."""
    import redis

    for db in range(15, 5, -1):  # from the top: tests/deploy picks the first empty one from 6
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.dbsize() == 0 and client.set(CLAIM, tag, nx=True):
            return db
    raise SystemExit("Redis at 127.0.0.1:6379 has no empty database among 6-15; free one")


def check_own_broker(state: dict[str, Any]) -> None:
    """Only this stack's workers may listen on its broker database, or the numbers are not
    this stack's (and another stack's tasks would run here)."""
    from celery import Celery

    app = Celery(broker=state["broker"])
    try:
        names = {name for reply in app.control.ping(timeout=2.0) or [] for name in reply}
    finally:
        app.close()
    if foreign := names - set(state["workers"]):
        raise RuntimeError(
            f"Celery workers of another stack {sorted(foreign)} listen on {state['broker']}; "
            "stop that stack or let this benchmark pick another Redis database"
        )


def start_stack(home: Path, workers: int, models_dir: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    overrides = {**private_overrides("cw_tp", tag), "COSTAWARE_MODELS_DIR": str(models_dir)}
    db = reserve_redis_db(tag)
    try:
        return stack.up(
            home,
            overrides=overrides,
            redis_db=db,
            timeout=UP_S,
            preferred_ports=False,
            workers=workers,
            say=lambda _: None,
        )
    except BaseException:  # up stopped what it started; give the database back
        import redis

        redis.Redis(host="127.0.0.1", port=6379, db=db).delete(CLAIM)
        raise


class Api:
    """Airflow's REST API as the stack's admin user."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.base, self.token = state["urls"]["api-server"], ""
        password = json.loads(Path(state["secrets_file"]).read_text())["passwords"]["admin"]
        code, body = self.call("POST", "/auth/token", {"username": "admin", "password": password})
        if code not in (200, 201):
            raise RuntimeError(f"login to {self.base} failed: {code} {body}")
        self.token = body["access_token"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        code, out = self.call(method, path, body)
        if code != 200:
            raise RuntimeError(f"{method} {path} answered {code}: {out}")
        return out

    def wait_parsed(self, dag_ids: list[str], logs: str) -> None:
        deadline = time.monotonic() + PARSE_S
        for dag_id in dag_ids:
            while self.call("GET", f"/api/v2/dags/{dag_id}")[0] != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{dag_id} was not parsed in {PARSE_S:.0f} s; see {logs}")
                time.sleep(2)

    def upstream(self, dag_id: str) -> dict[str, set[str]]:
        """Every task's transitive upstream tasks (the DAG's shape, from the API)."""
        tasks = self.ok("GET", f"/api/v2/dags/{dag_id}/tasks")["tasks"]
        direct: dict[str, set[str]] = {t["task_id"]: set() for t in tasks}
        for t in tasks:
            for down in t["downstream_task_ids"]:
                direct[down].add(t["task_id"])
        closed: dict[str, set[str]] = {}

        def walk(task: str) -> set[str]:
            if task not in closed:
                closed[task] = set(direct[task]).union(*(walk(u) for u in direct[task]))
            return closed[task]

        return {t: walk(t) for t in direct}


def land_weeks(s3: Any, state: dict[str, Any], cfg: ModelConfig, weeks: int) -> list[str]:
    """Weeks 0..weeks-1 of Elec2 for ``cfg``, each with the labels of the week before."""
    parts = list(split_batches(cfg, load_source(cfg, ROOT)))[:weeks]
    prefix = f"{state['storage'].split('/', 3)[3]}/landing/{cfg.name}"
    for i, (name, part) in enumerate(parts):
        _put(s3, state["bucket"], f"{prefix}/{name}.parquet", part[_features(cfg)])
        if i >= 1:
            lname, lpart = parts[i - 1]
            labels = lpart[[ID_COLUMN, cfg.target.name]]
            _put(s3, state["bucket"], f"{prefix}/labels/{lname}.parquet", labels)
    return [name for name, _ in parts]


def _features(cfg: ModelConfig) -> list[str]:
    return [ID_COLUMN, TIME_COLUMN, *cfg.feature_names]


def _put(s3: Any, bucket: str, key: str, frame: Any) -> None:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def _s3(state: dict[str, Any]) -> Any:
    return s3_client(state["urls"]["moto"])


# --- one case: land, trigger, wait, read back -----------------------------------------------


class _Span:
    """Queued → start → end, as Airflow's metadata DB records a task instance or a run."""

    queued: datetime
    start: datetime
    end: datetime

    @property
    def wait(self) -> float:
        return (self.start - self.queued).total_seconds()

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Task(_Span):
    task_id: str
    queued: datetime
    start: datetime
    end: datetime
    host: str
    tries: int


@dataclass
class Run(_Span):
    dag_id: str
    run_id: str
    state: str
    queued: datetime
    start: datetime
    end: datetime
    tasks: list[Task]
    batch: str = "?"
    decision: str = "?"


@dataclass
class Case:
    workers: int
    models: tuple[str, ...]
    runs: list[Run] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    stack_cores: float = 0.0  # CPU seconds of the stack's processes / elapsed
    machine_cores: float = 0.0  # busy CPU seconds of the whole machine / elapsed
    elapsed: float = 0.0  # trigger → all runs seen finished, by this process's clock

    @property
    def other_cores(self) -> float:
        """Cores busy outside the stack: other people's work on this machine."""
        return max(self.machine_cores - self.stack_cores, 0.0)

    @property
    def cpu_per_run(self) -> float:
        return self.stack_cores * self.elapsed / len(self.runs)

    @property
    def wall(self) -> float:
        first = min(r.queued for r in self.runs)
        return (max(r.end for r in self.runs) - first).total_seconds()

    @property
    def per_hour(self) -> float:
        return len(self.runs) / self.wall * 3600

    @property
    def trivial(self) -> float:
        return statistics.median(
            t.seconds for r in self.runs for t in r.tasks if t.task_id == TRIVIAL
        )


def stack_cpu_seconds(state: dict[str, Any]) -> float:
    """CPU seconds of the stack's live processes, with the children they have reaped (task
    processes are reaped by their Celery pool process, which lives on)."""
    import psutil

    total = 0.0
    for p in stack.processes(state):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def run_case(
    api: Api, state: dict[str, Any], models: dict[str, ModelConfig], case: Case, weeks: int
) -> Case:
    import psutil

    dags = [f"retrain_{m}" for m in case.models]
    s3 = _s3(state)
    batches = {m: land_weeks(s3, state, models[m], weeks) for m in case.models}
    for dag_id in dags:
        api.ok("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    cpu0, machine0, t0 = stack_cpu_seconds(state), psutil.cpu_times(), time.monotonic()
    for dag_id in dags:
        api.ok("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {}})
    deadline = t0 + 120 + RUN_S * weeks * len(dags)
    while not _finished(state, dags):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{dags} did not drain in {deadline - t0:.0f} s: {_states(state, dags)}; "
                f"see {state['logs']}"
            )
        case.load.append(os.getloadavg()[0])
        time.sleep(2)
    case.elapsed = elapsed = time.monotonic() - t0
    case.stack_cores = (stack_cpu_seconds(state) - cpu0) / elapsed
    machine = psutil.cpu_times()
    idle = (machine.idle + machine.iowait) - (machine0.idle + machine0.iowait)
    case.machine_cores = (os.cpu_count() or 1) - idle / elapsed
    check_own_broker(state)
    case.runs = read_runs(state, dags)
    _label(case, state, batches)
    return case


def _finished(state: dict[str, Any], dags: list[str]) -> bool:
    found = _states(state, dags)
    return all(found.get(d) for d in dags) and all(
        s in ("success", "failed") for d in dags for s in found[d]
    )


def _query(state: dict[str, Any], sql: str, dags: list[str]) -> list[Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(state["airflow_db_url"])
    try:
        with engine.connect() as conn:
            stmt = sa.text(sql).bindparams(sa.bindparam("dags", expanding=True))
            return list(conn.execute(stmt, {"dags": dags}).all())
    finally:
        engine.dispose()


def _states(state: dict[str, Any], dags: list[str]) -> dict[str, list[str]]:
    rows = _query(state, "SELECT dag_id, state FROM dag_run WHERE dag_id IN :dags", dags)
    found: dict[str, list[str]] = {}
    for dag_id, run_state in rows:
        found.setdefault(dag_id, []).append(str(run_state))
    return found


def read_runs(state: dict[str, Any], dags: list[str]) -> list[Run]:
    """The runs of ``dags`` with the task instances that went through the executor (a task
    skipped by the scheduler was never queued and took no worker time)."""
    runs = {
        (r[0], r[1]): Run(r[0], r[1], str(r[2]), r[3], r[4], r[5], [])
        for r in _query(
            state,
            "SELECT dag_id, run_id, state, queued_at, start_date, end_date FROM dag_run "
            "WHERE dag_id IN :dags ORDER BY start_date",
            dags,
        )
    }
    for row in _query(
        state,
        "SELECT dag_id, run_id, task_id, queued_dttm, start_date, end_date, hostname, try_number "
        "FROM task_instance WHERE dag_id IN :dags AND queued_dttm IS NOT NULL "
        "AND start_date IS NOT NULL AND end_date IS NOT NULL",
        dags,
    ):
        runs[(row[0], row[1])].tasks.append(Task(*row[2:]))
    return list(runs.values())


def _label(case: Case, state: dict[str, Any], batches: dict[str, list[str]]) -> None:
    """Each run's batch and decision from the ledger; every landed batch must have one run."""
    from costaware.store.ledger import Ledger

    ledger = Ledger(state["ledger_url"])
    try:
        by_run = {
            (m, d["run_id"]): d for m in case.models for d in ledger.decisions(m) if d["run_id"]
        }
    finally:
        ledger.dispose()
    for run in case.runs:
        d = by_run.get((run.dag_id.removeprefix("retrain_"), run.run_id))
        if d:
            run.batch, run.decision = d["batch_id"], f"{d['action']}/{d['outcome'] or '-'}"
    bad = [(r.run_id, r.state) for r in case.runs if r.state != "success"]
    missing = {m: set(b) - {r.batch for r in case.runs} for m, b in batches.items()}
    if bad or any(missing.values()) or len(case.runs) != sum(map(len, batches.values())):
        raise RuntimeError(
            f"the backlog did not drain one successful run per batch: failed runs {bad}, "
            f"batches without a run {missing}; see the stack's logs in {state['logs']}"
        )


# --- where a run's time goes ------------------------------------------------------------------


def split_run(run: Run, upstream: dict[str, set[str]], trivial: float) -> dict[str, float]:
    """The run's wall time along its critical path: scheduling + queue + start-up + work add up
    to start → end exactly (each step telescopes from the end of the task before it)."""
    by_id = {t.task_id: t for t in run.tasks}
    out = {"scheduling": (run.end - max(t.end for t in run.tasks)).total_seconds()}
    out.update(queue=0.0, startup=0.0, work=0.0, steps=0.0)
    task: Task | None = max(run.tasks, key=lambda t: t.end)
    while task is not None:
        out["steps"] += 1
        before = [by_id[u] for u in upstream[task.task_id] if u in by_id]
        pred = max(before, key=lambda t: t.end) if before else None
        out["scheduling"] += (task.queued - (pred.end if pred else run.start)).total_seconds()
        out["queue"] += task.wait
        out["startup"] += min(task.seconds, trivial)
        out["work"] += task.seconds - min(task.seconds, trivial)
        task = pred
    return out


def between_runs(case: Case) -> float:
    """Seconds of each model's chain of runs not inside any run (trigger → first start, and
    each run's end → the next run's start), summed over the models."""
    total = 0.0
    for dag_id in {r.dag_id for r in case.runs}:
        chain = sorted((r for r in case.runs if r.dag_id == dag_id), key=lambda r: r.start)
        span = (chain[-1].end - chain[0].queued).total_seconds()
        total += span - sum(r.seconds for r in chain)
    return total


# --- the report ---------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _base(cases: list[Case], c: Case) -> Case | None:
    """The 1-worker case with the same models as ``c`` (what the ratio compares with)."""
    return next((b for b in cases if b.models == c.models and b.workers == 1), None)


def summary_table(cases: list[Case]) -> list[str]:
    rows = [
        "| models | workers | runs | wall, s | runs / hour | 2 workers / 1 worker "
        "| run start → end, s (median) | stack CPU s / run | cores busy: stack + rest of machine "
        "| load (1 min, mean) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        base = _base(cases, c)
        ratio = f"**{c.per_hour / base.per_hour:.2f}×**" if base and c is not base else ""
        rows.append(
            f"| {len(c.models)} | {c.workers} | {len(c.runs)} | {c.wall:.0f} | {c.per_hour:.1f} "
            f"| {ratio} | {_med([r.seconds for r in c.runs]):.0f} | {c.cpu_per_run:.0f} "
            f"| {c.stack_cores:.2f} + {c.other_cores:.2f} | {_med(c.load):.1f} |"
        )
    return rows


def split_table(cases: list[Case], upstream: dict[str, set[str]]) -> list[str]:
    rows = [
        "| models | workers | trivial task, s | Σ run walls, s | scheduling | queue "
        "| task start-up | work | between runs, s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        parts = [split_run(r, upstream, c.trivial) for r in c.runs]
        walls = sum(r.seconds for r in c.runs)
        share = {k: sum(p[k] for p in parts) / walls for k in parts[0]}
        rows.append(
            f"| {len(c.models)} | {c.workers} | {c.trivial:.1f} | {walls:.0f} "
            + " ".join(f"| {share[k]:.0%}" for k in ("scheduling", "queue", "startup", "work"))
            + f" | {between_runs(c):.0f} |"
        )
    return rows


def runs_table(cases: list[Case], upstream: dict[str, set[str]]) -> list[str]:
    rows = [
        "| models | workers | model | batch | decision | waited, s | start → end, s "
        "| tasks | Σ queued → start, s | Σ start → end, s | critical path: sched / queue / "
        "start-up / work, s | hosts |",
        "|---:|---:|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in cases:
        for r in sorted(c.runs, key=lambda r: (r.dag_id, r.start)):
            p = split_run(r, upstream, c.trivial)
            hosts = sorted({t.host.split("-")[0] for t in r.tasks})
            rows.append(
                f"| {len(c.models)} | {c.workers} | {r.dag_id.removeprefix('retrain_')} "
                f"| {r.batch} | {r.decision} | {r.wait:.0f} | {r.seconds:.0f} | {len(r.tasks)} "
                f"| {sum(t.wait for t in r.tasks):.0f} | {sum(t.seconds for t in r.tasks):.0f} "
                f"| {p['scheduling']:.0f} / {p['queue']:.0f} / {p['startup']:.0f} / "
                f"{p['work']:.0f} | {', '.join(hosts)} |"
            )
    return rows


def tasks_table(cases: list[Case]) -> list[str]:
    """Median queued → start and start → end per task, per case."""
    order: list[str] = []
    for c in cases:
        for r in sorted(c.runs, key=lambda r: r.start):
            for t in sorted(r.tasks, key=lambda t: t.start):
                if t.task_id not in order:
                    order.append(t.task_id)
    head = " | ".join(f"{len(c.models)}m × {c.workers}w" for c in cases)
    rows = [
        f"| task (median queued → start / start → end, s) | {head} |",
        "|---|" + "---:|" * len(cases),
    ]
    for task_id in order:
        cells = []
        for c in cases:
            ts = [t for r in c.runs for t in r.tasks if t.task_id == task_id]
            w, d = _med([t.wait for t in ts]), _med([t.seconds for t in ts])
            cells.append(f"{w:.1f} / {d:.1f} ({len(ts)})" if ts else "")
        rows.append(f"| {task_id} | " + " | ".join(cells) + " |")
    return rows


HEAVY = ("pandas", "great_expectations", "evidently", "mlflow", "xgboost", "sklearn")


def import_seconds(module: str) -> float:
    """Seconds a fresh process with Airflow's SDK loaded (as a Celery worker is before it forks
    a task) spends importing ``module``. costaware's steps import these inside the task body
    (DAG files must parse fast), so every task process that uses one pays this, inside what the
    tables call work."""
    code = (
        "import time, airflow.sdk\n"
        "t = time.perf_counter()\n"
        f"import {module}\n"
        "print('SECONDS', time.perf_counter() - t)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("SECONDS ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"importing {module} failed: {done.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def imports_table() -> list[str]:
    found = {m: import_seconds(m) for m in HEAVY}
    return [
        "| " + " | ".join(found) + " |",
        "|" + "---:|" * len(found),
        "| " + " | ".join(f"{v:.1f} s" for v in found.values()) + " |",
    ]


def machine_note(weeks: int, load_start: tuple[float, ...]) -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    import psutil

    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs "
        f"({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, Python "
        f"{platform.python_version()}, Airflow {_version('apache-airflow')}, Celery "
        f"{_version('celery')}. Load average (1/5/15 min) at the start: "
        f"{' / '.join(f'{x:.2f}' for x in load_start)}; at the end: "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}. N = {weeks} weeks per model. "
        f"worker_concurrency = {concurrency()} (deploy/common.env), max_active_runs = 1 per "
        "model DAG."
    )


def concurrency() -> str:
    """Task slots per Celery worker, as the stack sets them."""
    deploy = read_env_file(ROOT / "deploy" / "common.env")
    return deploy.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "16 (Airflow's default)")


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def report(cases: list[Case], upstream: dict[str, set[str]], meta: dict[str, Any]) -> str:
    return "\n".join(
        [
            "# Throughput: a backlog under Celery, 1 vs 2 workers (`bench/throughput.py`)",
            "",
            meta["note"] + f" The whole benchmark took {meta['seconds'] / 60:.1f} min.",
            "",
            "## Runs per hour",
            "",
            *summary_table(cases),
            "",
            *reading(cases, upstream),
            "## Where a run's time goes (critical path, share of Σ run walls)",
            "",
            *split_table(cases, upstream),
            "",
            "Imports a task process pays for the libraries it uses (fresh process with "
            "`airflow.sdk` loaded; counted as work above):",
            "",
            *meta["imports"],
            "",
            "## Every run",
            "",
            *runs_table(cases, upstream),
            "",
            "## Every task",
            "",
            *tasks_table(cases),
            "",
        ]
    )


def _path(case: Case, upstream: dict[str, set[str]]) -> dict[str, float]:
    """Critical-path parts per run (mean over the case's runs), and per step."""
    parts = [split_run(r, upstream, case.trivial) for r in case.runs]
    return {k: statistics.mean(p[k] for p in parts) for k in parts[0]}


def reading(cases: list[Case], upstream: dict[str, set[str]]) -> list[str]:
    """What the numbers say, computed from them: the ratio, what a second worker removed, a
    warning when the rest of the machine was busier in one case than in the other, and what
    bounds throughput here."""
    lines = ["**Reading.**", ""]
    for c in cases:
        base = _base(cases, c)
        if base is None or c is base:
            continue
        b, n = _path(base, upstream), _path(c, upstream)
        lines.append(
            f"- {len(c.models)} model(s): {c.workers} workers drained the backlog "
            f"{c.per_hour / base.per_hour:.2f}× as fast as 1 ({c.per_hour:.0f} vs "
            f"{base.per_hour:.0f} runs/hour). Per run, on the critical path: waiting for a slot "
            f"{b['queue']:.1f} → {n['queue']:.1f} s, work {b['work']:.1f} → {n['work']:.1f} s. "
            f"The same tasks run slower when more of them share the {os.cpu_count()} cores, and "
            "when the rest of the machine is busier: it kept "
            f"{base.other_cores:.2f} cores busy during the 1-worker case, {c.other_cores:.2f} "
            "during this one."
            + (
                " **The background differed by more than 0.3 cores: this ratio is not the "
                "second worker's alone.**"
                if abs(base.other_cores - c.other_cores) > 0.3
                else ""
            )
        )
    free = max(cases, key=lambda c: (c.workers, -len(c.models)))
    q = _path(free, upstream)
    handoff = _med([t.wait for r in free.runs for t in r.tasks])
    fixed = q["scheduling"] + q["queue"] + q["startup"]
    busiest = max(cases, key=lambda c: (c.workers, len(c.models)))  # most slots, most runs
    cpu, cores, slots = _med([c.cpu_per_run for c in cases]), os.cpu_count() or 1, concurrency()
    lines += [
        f"- A run's start-up vs work ({len(free.models)} model, {free.workers} workers, "
        f"where no task waits for a slot): of {fixed + q['work']:.0f} s on the critical path "
        f"({q['steps']:.0f} tasks), {fixed:.1f} s ({fixed / (fixed + q['work']):.0%}) is "
        f"start-up — scheduling {q['scheduling']:.1f} s (~{q['scheduling'] / (q['steps'] + 1):.1f}"
        f" s from one task's end to the next one's queueing), hand-off to a worker "
        f"{q['queue']:.1f} s (median queued → start {handoff:.2f} s), the task process's own "
        f"start-up {q['startup']:.1f} s ({free.trivial:.2f} s per task) — and {q['work']:.1f} s"
        " is work. Work includes importing the libraries a task uses, in every task process "
        "(the import table below).",
        "- What bounds throughput here: (1) `max_active_runs=1`: one model's runs go one after "
        "the other, so its backlog drains at most at 3600 / (run + gap) runs/hour whatever the "
        f"workers; (2) `worker_concurrency` {slots} (deploy/common.env): after validate_batch a "
        "run fans out into measure_drift, measure_performance and estimate_cost, so one run "
        f"wants 3 slots and two runs 6, and one worker has {slots}; (3) {cores} cores: a run "
        f"costs the stack ~{cpu:.0f} CPU s (median over the cases), a ceiling of "
        f"~{cores * 3600 / cpu:.0f} runs/hour if the machine were the stack's alone. With "
        f"{len(busiest.models)} models and {busiest.workers} workers the machine was "
        f"{busiest.machine_cores:.2f} of {cores} cores busy ({busiest.stack_cores:.2f} the "
        f"stack, {busiest.other_cores:.2f} the rest): where that is near {cores}, more workers "
        "or slots would queue for CPU instead of for a slot.",
        "",
    ]
    return lines


# --- raw results (so a report can be redrawn without measuring again) -------------------------


def dump(cases: list[Case], upstream: dict[str, set[str]], meta: dict[str, Any]) -> str:
    def run(r: Run) -> dict[str, Any]:
        tasks = [[t.task_id, t.queued, t.start, t.end, t.host, t.tries] for t in r.tasks]
        head = [r.dag_id, r.run_id, r.state, r.queued, r.start, r.end, r.batch, r.decision]
        return {"run": head, "tasks": tasks}

    return json.dumps(
        {
            "meta": meta,
            "upstream": {k: sorted(v) for k, v in upstream.items()},
            "cases": [
                {
                    "workers": c.workers,
                    "models": c.models,
                    "load": c.load,
                    "cpu": [c.stack_cores, c.machine_cores, c.elapsed],
                    "runs": [run(r) for r in c.runs],
                }
                for c in cases
            ],
        },
        default=lambda d: d.isoformat(),
    )


def load(text: str) -> tuple[list[Case], dict[str, set[str]], dict[str, Any]]:
    raw = json.loads(text)
    when = datetime.fromisoformat
    cases = []
    for c in raw["cases"]:
        case = Case(c["workers"], tuple(c["models"]), load=c["load"])
        case.stack_cores, case.machine_cores, case.elapsed = c["cpu"]
        for r in c["runs"]:
            d, rid, st, q, s, e, batch, decision = r["run"]
            tasks = [Task(t[0], when(t[1]), when(t[2]), when(t[3]), t[4], t[5]) for t in r["tasks"]]
            case.runs.append(Run(d, rid, st, when(q), when(s), when(e), tasks, batch, decision))
        cases.append(case)
    return cases, {k: set(v) for k, v in raw["upstream"].items()}, raw["meta"]


# --- main ---------------------------------------------------------------------------------------


def measure(
    workers: int, weeks: int, case_sizes: list[int], scratch: Path
) -> tuple[list[Case], Any]:
    home = scratch / f"w{workers}"
    models_dir = scratch / f"models-w{workers}"
    models = write_models(models_dir)
    t0 = time.monotonic()
    state = start_stack(home, workers, models_dir)
    _say(f"  stack with {workers} worker(s) up in {time.monotonic() - t0:.0f} s")
    try:
        check_own_broker(state)
        api = Api(state)
        api.wait_parsed([f"retrain_{m}" for n in case_sizes for m in CASES[n]], state["logs"])
        upstream = api.upstream("retrain_elec2b")
        cases = []
        for n in case_sizes:
            t = time.monotonic()
            cases.append(run_case(api, state, models, Case(workers, CASES[n]), weeks))
            c = cases[-1]
            _say(
                f"  {n} model(s) × {workers} worker(s): {len(c.runs)} runs in {c.wall:.0f} s "
                f"({c.per_hour:.1f} / hour; case took {time.monotonic() - t:.0f} s)"
            )
        return cases, upstream
    finally:
        stack.down(home, drop=True, grace=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weeks", type=int, default=4, help="Elec2 weeks per model (4)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (1,2)")
    parser.add_argument("--models", default="1,2", help="cases: models draining at once (1,2)")
    parser.add_argument("--out", default=str(RESULTS / "throughput.md"), help="'-': print only")
    parser.add_argument("--raw", default=str(RAW), help=f"measurements as JSON ({RAW})")
    parser.add_argument("--from-raw", help="redraw the report from a --raw file; measure nothing")
    args = parser.parse_args(argv)
    if args.from_raw:
        return write(*load(Path(args.from_raw).read_text()), args.out)
    workers = [int(w) for w in args.workers.split(",")]
    sizes = [int(n) for n in args.models.split(",")]
    if not set(sizes) <= set(CASES) or args.weeks < 1:
        parser.error(f"--models takes {sorted(CASES)}; --weeks at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every stack is stopped
    load_start, t0 = os.getloadavg(), time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="costaware-throughput-"))
    cases: list[Case] = []
    ok = False
    try:
        for w in workers:
            _say(f"{w} worker(s): starting a private stack …")
            found, upstream = measure(w, args.weeks, sizes, scratch)
            cases += found
        ok = True
    finally:
        if ok:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            _say(f"stack logs kept in {scratch}")
    cases.sort(key=lambda c: (len(c.models), c.workers))
    meta: dict[str, Any] = {"note": machine_note(args.weeks, load_start)}
    meta.update(imports=imports_table(), seconds=time.monotonic() - t0)
    Path(args.raw).write_text(dump(cases, upstream, meta))
    _say(f"measurements in {args.raw}")
    return write(cases, upstream, meta, args.out)


def write(cases: list[Case], upstream: dict[str, set[str]], meta: dict[str, Any], out: str) -> int:
    text = report(cases, upstream, meta)
    _say(text)
    if out != "-":
        Path(out).write_text(text)
        _say(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
