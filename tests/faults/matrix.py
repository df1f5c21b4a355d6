"""The fault matrix: one base state, a clean reference run per scenario, one faulted run per point.

* **Base**: Elec2 weeks 0..4 through the steps (a champion exists, and a rejected
  challenger), built once on SQLite; the PostgreSQL base is the same home folder with the
  ledger's rows copied into a PostgreSQL database used as a template.
* **Scenarios**, each run clean once from its snapshot (the *reference*), with the state
  snapshotted and captured after every task and every fault point each task passes traced:
  ``retrain`` (week 5 lands, is accepted, drifts, retrains, the challenger is promoted),
  ``quarantine`` (week 5 lands broken and goes to quarantine; the run fails for good), and
  ``rollback`` (after ``retrain``: champion ← previous_champion).
* **A case** = one fault point: restore the snapshot taken just before the task that passes
  the point, run the rest of the scenario with the point armed (the task dies by SIGKILL
  there, once; Airflow's retry runs it again with the same inputs, run id and clock), and
  compare the state with the reference's right after that task. If it equals the clean
  state (every table, file and registry entry, and the XCom the task returns) the case ends
  there: from equal states the remaining tasks are the same computation — the premise
  ``test_clean_runs_are_identical`` checks — so the final states are equal too. Otherwise
  the rest of the scenario runs and the final states are compared.
* **Watches** run beside a task: every training worker alive on the job folders is counted
  (two at once = two workers on one checkpoint folder), and any left running at the end of
  a case is killed and reported; ``KillWhileTraining`` SIGKILLs a task from outside once its
  worker has checkpointed; ``PgOutage`` stops the harness's own PostgreSQL server (a private
  cluster, never the shared one) while a task is paused at a point and starts it again as
  soon as the task has failed on it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import state
from .chain import (
    MODEL,
    Params,
    Runner,
    StateEnv,
    StepFailed,
    Task,
    Watch,
    land_week,
    plan,
    run_chain,
    week_clock,
    write_rows,
)

BASE_WEEKS = 5  # weeks 0..4: the first champion, a rejected challenger
FAULT_WEEK = 5  # drifts, retrains, promotes
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOURCE = PROJECT_ROOT / "include" / "costaware"


# -- the fault points in the code --------------------------------------------------------------
def source_points() -> list[str]:
    """Every fault point in the package: ``faults.point("…")`` calls and the ``.start`` /
    ``.end`` of every ``@step_points`` function."""
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if path.name == "faults.py":
            continue
        text = path.read_text()
        found.update(re.findall(r"""point\(\s*["']([\w.\-]+)["']\s*\)""", text))
        for name in re.findall(r"@(?:faults\.)?step_points\s*\n(?:\s*@.*\n)*\s*def\s+(\w+)", text):
            found.update({f"{name}.start", f"{name}.end"})
    return sorted(found)


def fault_class(point: str) -> str:
    if point.endswith(".start"):
        return "SIGKILL at a task's start"
    if point.endswith(".end"):
        return "SIGKILL just before a task returns"
    return "SIGKILL in the middle of a task"


# -- PostgreSQL databases of this harness ------------------------------------------------------
class Pg:
    """Creates and drops this session's databases (all named ``<prefix>_…``) on the server."""

    def __init__(self, admin_url: str, server: Any = None) -> None:
        import sqlalchemy as sa

        self.admin_url = admin_url
        self.server = server  # the PrivatePostgres behind admin_url, for outages
        self.prefix = f"cwfault_{uuid.uuid4().hex[:8]}"
        self.engine = sa.create_engine(
            admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )

    def name(self, tag: str) -> str:
        return f"{self.prefix}_{tag}".lower()

    def url(self, tag: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + self.name(tag)

    def _exec(self, sql: str) -> None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            conn.execute(sa.text(sql))

    def create(self, tag: str, template: str | None = None) -> None:
        import sqlalchemy as sa

        self.drop(tag)
        sql = f'CREATE DATABASE "{self.name(tag)}"'
        if template:
            sql += f' TEMPLATE "{self.name(template)}"'
        for _ in range(100):  # a task's connection can outlive its process by a moment
            try:
                self._exec(sql)
                return
            except sa.exc.OperationalError as exc:
                if "being accessed by other users" not in str(exc):
                    raise
                time.sleep(0.1)
        self._exec(sql)

    def drop(self, tag: str) -> None:
        self._exec(f'DROP DATABASE IF EXISTS "{self.name(tag)}" WITH (FORCE)')

    def drop_all(self) -> None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                    {"p": self.prefix + "\\_%"},
                )
            ]
        for n in names:
            self._exec(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')


def copy_ledger(src_url: str, dst_url: str) -> dict[str, int]:
    """Every ledger row from one database into a new one at the same schema revision (runs
    in a task process)."""
    import sqlalchemy as sa

    from costaware.store.ledger import Ledger

    Ledger(dst_url).engine  # noqa: B018 - creates the schema (Alembic head)
    src = sa.create_engine(src_url, poolclass=sa.pool.NullPool)
    dst = sa.create_engine(dst_url, poolclass=sa.pool.NullPool)
    smeta, dmeta = sa.MetaData(), sa.MetaData()
    smeta.reflect(src)
    dmeta.reflect(dst)
    counts = {}
    with src.connect() as s, dst.begin() as d:
        for table in dmeta.sorted_tables:
            if table.name == "alembic_version" or table.name not in smeta.tables:
                continue
            rows = [dict(r._mapping) for r in s.execute(sa.select(smeta.tables[table.name]))]
            if rows:
                d.execute(table.insert(), rows)
            counts[table.name] = len(rows)
            if "id" in table.c and dst.dialect.name == "postgresql":
                d.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 1))"
                    )
                )
    src.dispose()
    dst.dispose()
    return counts


# -- one costaware state that can be snapshotted and restored ----------------------------------
@dataclass(frozen=True)
class Snapshot:
    home: Path
    db: str | None  # PostgreSQL: the template database's tag


class Backend:
    """The live state of one backend (``root/home`` + its ledger) and its snapshots."""

    LIVE = "live"

    def __init__(self, name: str, root: Path, home: Path, pg: Pg | None = None) -> None:
        # One home path for every backend: the ledger stores paths under it.
        self.name, self.root, self.home, self.pg = name, root, home, pg
        self.snaps = root / "snaps"
        self._n = 0

    def env(self) -> StateEnv:
        db = self.pg.url(self.LIVE) if self.pg else None
        return StateEnv(self.home, PROJECT_ROOT, db)

    def snapshot(self, tag: str) -> Snapshot:
        self._n += 1
        dest = self.snaps / f"{self._n:03d}-{tag}"
        shutil.copytree(self.home, dest, symlinks=True)
        db = None
        if self.pg is not None:
            db = f"s{self._n:03d}"
            self.pg.create(db, template=self.LIVE)
        return Snapshot(dest, db)

    def restore(self, snap: Snapshot) -> None:
        if self.home.exists():
            shutil.rmtree(self.home)
        shutil.copytree(snap.home, self.home, symlinks=True)
        if self.pg is not None:
            assert snap.db is not None
            self.pg.create(self.LIVE, template=snap.db)


# -- watchers: what the harness does while a task runs -----------------------------------------
class Watches(Watch):
    def __init__(self, *watches: Watch) -> None:
        self.watches = watches

    def start(self, proc: Any, step: str, try_number: int) -> None:
        for w in self.watches:
            w.start(proc, step, try_number)

    def stop(self) -> None:
        for w in self.watches:
            w.stop()


WORKER_MODULE = "costaware.models.training.worker"


def training_workers(home: str) -> list[tuple[int, float, str]]:
    """(pid, start time, job file) of every live training worker on ``home``'s job folders.

    A process whose parent is one of them is that worker's own subprocess between its fork
    and its exec, when /proc still shows the worker's command line (importing croniter, the
    worker validates its model's config, runs ``file -b python`` through
    ``platform.architecture()``): not a second worker."""
    import psutil

    found = {}
    for p in psutil.process_iter():
        try:
            cmd = p.cmdline()
            if WORKER_MODULE in cmd and any(home in a for a in cmd):
                if p.status() != psutil.STATUS_ZOMBIE:
                    found[p.pid] = (p.create_time(), cmd[-1], p.ppid())
        except psutil.Error:
            continue
    return [(pid, created, job) for pid, (created, job, ppid) in found.items() if ppid not in found]


def _alive_at_once(found: list[tuple[int, float, str]]) -> list[str]:
    """The workers of ``found`` that were alive at one same moment, each described (pid,
    parent, state, age, job folder). A scan of /proc is not a snapshot: under load it can read
    an orphan's command line just before the retry kills it, then the retry's new worker a
    moment later, and list both. So two more liveness passes follow; a worker alive in both
    was alive for the whole time between its two checks, and every such interval contains
    the moment the first pass ended: those workers coexisted."""
    import psutil

    def alive(pid: int, created: float) -> psutil.Process | None:
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                return p
        except psutil.Error:
            pass
        return None

    if len(found) < 2:
        return [str(pid) for pid, _created, _job in found]
    first = {(pid, created, job) for pid, created, job in found if alive(pid, created)}
    out = []
    for pid, created, job in sorted(first):
        p = alive(pid, created)
        if p is not None:
            with contextlib.suppress(psutil.Error):
                age = time.time() - created
                out.append(
                    f"pid {pid} (parent {p.ppid()}, {p.status()}, {age:.1f} s old, "
                    f"{Path(job).parent.name})"
                )
    return out


class WorkerWatch(Watch):
    """Counts the training workers alive at once on this home's job folders (a SIGKILLed
    task leaves its worker running as an orphan: the retry must not start a second one on
    the same checkpoint folder), and ends the workers this case started."""

    def __init__(self, home: Path) -> None:
        self.home = str(home)
        self.seen: dict[int, float] = {}  # pid → create_time
        self.max_alive = 0
        self.overlap: list[str] = []  # the workers, the first time more than one was alive
        self.orphans = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            alive = training_workers(self.home)
            for pid, created, _job in alive:
                self.seen.setdefault(pid, created)
            at_once = _alive_at_once(alive)
            if len(at_once) > max(self.max_alive, 1):
                self.overlap = at_once
            self.max_alive = max(self.max_alive, len(at_once))
            self._stop.wait(0.05)

    def start(self, proc: Any, step: str, try_number: int) -> None:
        if step != "train_challenger" or self._thread is not None:
            return  # one poll thread for the case, whichever try starts it
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def end_workers(self) -> None:
        """SIGKILL the workers of this case still running (matched by pid and start time)."""
        import psutil

        for pid, created in self.seen.items():
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                # A zombie is dead, only not reaped yet: its parent died with the killed task
                # and whoever inherits it (PID 1 here) reaps when it likes. Not an orphan.
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    self.orphans += 1
                    p.kill()
                    p.wait(5)


class PgOutage(Watch):
    """Takes the harness's own PostgreSQL server down while a task is paused at ``point``
    (armed with ``@pause``), lets the task run into the outage, and starts the server again as
    soon as the task has died (at most ``limit_s`` later, and always)."""

    def __init__(self, point: str, faults_dir: Path, server: Any, limit_s: float = 8.0) -> None:
        self.point, self.faults_dir, self.limit_s = point, faults_dir, limit_s
        self.server = server  # tests/support/private_pg.PrivatePostgres
        self.outage_s: float | None = None
        self.error = ""
        self._thread: threading.Thread | None = None

    def _run(self, proc: Any) -> None:
        from multiprocessing.connection import wait

        # Watch the task through its sentinel: only the main thread reaps it (join).
        paused = self.faults_dir / f"costaware-fault-{self.point}.paused"
        resume = self.faults_dir / f"costaware-fault-{self.point}.resume"
        while not paused.exists() and not wait([proc.sentinel], 0.02):
            pass
        if not paused.exists():
            return
        t0 = time.monotonic()
        try:
            self.server.stop("fast")
            resume.write_text("go")
            wait([proc.sentinel], self.limit_s)
        except Exception as exc:  # noqa: BLE001
            self.error = str(exc)
            resume.write_text("go")
        finally:
            self.server.start()
            self.outage_s = time.monotonic() - t0

    def start(self, proc: Any, step: str, try_number: int) -> None:
        if self.outage_s is None and self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(proc,), daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


# -- scenarios and their clean reference runs --------------------------------------------------
def land_bad_week(i: int) -> str:
    """Week ``i`` with ``nswdemand`` far outside [0, 1] in ten rows: its suite fails it."""
    from costaware.app.replay import land_batch, land_labels
    from costaware.settings import Settings

    from .. import factories

    settings, cfg = Settings.from_env(), factories.model(MODEL)
    weeks = factories.batches(MODEL)
    name, part = weeks[i]
    part = part.copy()
    part.loc[part.index[:10], "nswdemand"] = 7.0
    land_batch(settings, cfg, name, part)
    land_labels(settings, cfg, *weeks[i - 1])
    return name


@dataclass(frozen=True)
class Scenario:
    name: str
    tasks: list[Task]
    prepare: Callable[[], Any] | None
    prepare_args: tuple[Any, ...] = ()
    run_id: str = ""
    actor: str = "airflow:retrain_elec2/manual"


def scenarios(clock: dt.datetime) -> dict[str, Scenario]:
    # The run id and actor ``dag.test(logical_date=clock, run_after=clock)`` gives the run,
    # so the Airflow cases (test_airflow_faults.py) compare with these references.
    run = f"manual__{clock.isoformat()}"
    return {
        "retrain": Scenario("retrain", plan(Params()), land_week, (FAULT_WEEK,), run),
        "quarantine": Scenario("quarantine", plan(Params()), land_bad_week, (FAULT_WEEK,), run),
        "rollback": Scenario(
            "rollback",
            [Task("rollback", lambda o: ((None, "fault injection: roll back"), {}))],
            None,
            (),
            f"manual__{clock.isoformat()}",
            "airflow:rollback_elec2/manual",
        ),
    }


class Converged(Exception):
    def __init__(self, index: int, findings: list[state.Finding]) -> None:
        self.index, self.findings = index, findings


def drive(
    runner: Runner,
    tasks: list[Task],
    start: int,
    outputs: dict[str, Any],
    after: Callable[[int, str, dict[str, Any], str], None],
) -> dict[str, Any]:
    """The scenario's tasks from ``start``; a task that fails for good (no retry) ends it."""
    out = dict(outputs)
    for i, task in enumerate(tasks):
        if i < start:
            continue
        failure = ""
        if task.runs(out):
            args, kwargs = task.inputs(out)
            try:
                out[task.step] = runner(task.step, *args, **kwargs)
            except StepFailed as exc:
                if not exc.final:
                    raise
                out[task.step], failure = None, str(exc).splitlines()[0]
        else:
            out[task.step] = None
        after(i, task.step, out, failure)
        if failure:
            break
    return out


@dataclass
class Reference:
    scenario: Scenario
    before: list[Snapshot] = field(default_factory=list)  # before task i
    outputs: list[dict[str, Any]] = field(default_factory=list)  # after task i
    captures: list[dict[str, Any]] = field(default_factory=list)  # after task i
    failures: list[str] = field(default_factory=list)  # after task i
    trace: dict[str, int] = field(default_factory=dict)  # point → task index
    final: Snapshot | None = None


@dataclass
class CaseResult:
    backend: str
    scenario: str
    point: str
    fault: str
    fired: bool = False
    tries: dict[str, int] = field(default_factory=dict)
    findings: list[state.Finding] = field(default_factory=list)
    converged_after: str = ""
    error: str = ""
    max_workers: int = 0
    orphan_workers: int = 0
    seconds: float = 0.0
    note: str = ""

    @property
    def failures(self) -> list[state.Finding]:
        return state.failures(self.findings)

    @property
    def passed(self) -> bool:
        return self.fired and not self.error and not self.failures

    def as_dict(self) -> dict[str, Any]:
        counts = {k: sum(f.kind == k for f in self.findings) for k in state.KINDS}
        return {
            "backend": self.backend,
            "scenario": self.scenario,
            "point": self.point,
            "fault": self.fault,
            "fired": self.fired,
            "passed": self.passed,
            "tries": self.tries,
            "converged_after": self.converged_after,
            "error": self.error,
            "max_workers": self.max_workers,
            "orphan_workers": self.orphan_workers,
            "seconds": round(self.seconds, 1),
            "note": self.note,
            **counts,
            "findings": [f.as_dict() for f in self.findings],
        }

    def report(self) -> str:
        lines = [
            f"[{self.backend}] {self.point} ({self.scenario}): "
            f"{'PASS' if self.passed else 'FAIL'}; tries {self.tries}"
            + (
                f"; equal to the clean run after {self.converged_after}"
                if self.converged_after
                else ""
            )
        ]
        if not self.fired:
            lines.append("  the fault point did not fire")
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += ["  " + f.line() for f in self.findings]
        return "\n".join(lines)


class Matrix:
    """The base, the references and the cases of one backend."""

    def __init__(
        self, backend: Backend, base: Snapshot, rows: str, tolerance: state.Tolerance
    ) -> None:
        self.backend, self.base, self.rows, self.tol = backend, base, rows, tolerance
        self.clock = week_clock(FAULT_WEEK)
        self.scenarios = scenarios(self.clock)
        self.refs: dict[str, Reference] = {}
        self._n = 0

    def runner(self, scenario: Scenario, tag: str, **kw: Any) -> Runner:
        self._n += 1
        logdir = self.backend.root / "runs" / f"{self._n:03d}-{tag}"
        return Runner(
            self.backend.env(), scenario.run_id, self.clock, logdir, actor=scenario.actor, **kw
        )

    def capture(self, runner: Runner) -> dict[str, Any]:
        return runner.call(state.capture, (self.rows,), "capture")

    # The clean runs.
    def reference(self, name: str) -> Reference:
        if name in self.refs:
            return self.refs[name]
        sc = self.scenarios[name]
        start = self.reference("retrain").final if name == "rollback" else self.base
        assert start is not None
        self.backend.restore(start)
        run = self.runner(sc, f"clean-{name}")
        if sc.prepare is not None:
            run.call(sc.prepare, sc.prepare_args, "prepare")
        ref = Reference(sc)
        ref.before.append(self.backend.snapshot(f"{name}-0"))

        def after(i: int, step: str, out: dict[str, Any], failure: str) -> None:
            ref.outputs.append(dict(out))
            ref.captures.append(self.capture(run))
            ref.failures.append(failure)
            ref.before.append(self.backend.snapshot(f"{name}-{i + 1}"))

        drive(run, sc.tasks, 0, {}, after)
        ref.final = ref.before[-1]
        steps = [t.step for t in sc.tasks]
        for step, _try, point in run.trace():
            if step in steps:
                ref.trace.setdefault(point, steps.index(step))
        self.refs[name] = ref
        return ref

    def reference_again(self, name: str) -> dict[str, Any]:
        """A second clean run of a scenario from the same snapshot; its final state."""
        sc = self.scenarios[name]
        start = self.reference("retrain").final if name == "rollback" else self.base
        assert start is not None
        self.backend.restore(start)
        run = self.runner(sc, f"clean-again-{name}")
        if sc.prepare is not None:
            run.call(sc.prepare, sc.prepare_args, "prepare")
        drive(run, sc.tasks, 0, {}, lambda *a: None)
        return self.capture(run)

    def scenario_of(self, point: str) -> Reference | None:
        for name in self.scenarios:
            ref = self.reference(name)
            if point in ref.trace:
                return ref
        return None

    # One faulted run.
    def case(self, point: str, action: str = "kill", note: str = "") -> CaseResult:
        """``kill``: SIGKILL at ``point``; ``pause``: PostgreSQL down while the task is at
        ``point``; ``kill-training``: SIGKILL the task of ``point`` from outside once its
        training worker has checkpointed a chunk (the worker lives on as an orphan)."""
        t0 = time.monotonic()
        ref = self.scenario_of(point)
        res = CaseResult(self.backend.name, "", point, FAULTS.get(action) or fault_class(point))
        res.note = note
        if ref is None:
            res.error = "no scenario reaches this fault point"
            return res
        sc = ref.scenario
        res.scenario = sc.name
        k = ref.trace[point]
        self.backend.restore(ref.before[k])
        workers = WorkerWatch(self.backend.home)
        armed = {"kill": [point], "pause": [f"{point}@pause"]}.get(action, [])
        run = self.runner(sc, f"{action}-{point}", faults=armed)
        watches: list[Watch] = [workers]
        outage = killer = None
        if action == "pause":
            outage = PgOutage(point, run.faults_dir, self.backend.pg.server)
            watches.append(outage)
        if action == "kill-training":
            killer = KillWhileTraining(self.backend.home)
            watches.append(killer)
        run.watch = Watches(*watches)
        outputs = ref.outputs[k - 1] if k > 0 else {}

        def fired() -> bool:
            return killer.fired if killer is not None else point in run.fired()

        compared = []

        def after(i: int, step: str, out: dict[str, Any], failure: str) -> None:
            # Compare right after the task the fault hit, then only at the end: a state that
            # is not equal there is the case's result once the scenario has run through.
            if not fired() or (compared and i < len(sc.tasks) - 1 and not failure):
                return
            compared.append(i)
            cap = self.capture(run)
            found = state.diff(ref.captures[i], cap, self.tol)
            if failure != ref.failures[i]:
                found.append(
                    state.Finding("lost", f"task {step} outcome", ref.failures[i], failure)
                )
            same_xcom = state._same(ref.outputs[i].get(step), out.get(step), "", self.tol)
            res.findings = found
            if not state.failures(found) and same_xcom:
                raise Converged(i, found)

        try:
            drive(run, sc.tasks, k, outputs, after)
        except Converged as done:
            res.converged_after = sc.tasks[done.index].step
            res.findings = done.findings
        except StepFailed as exc:
            res.error = str(exc)[-3000:]
        finally:
            workers.stop()
            res.max_workers = workers.max_alive
            workers.end_workers()
            res.orphan_workers = workers.orphans
        res.fired = fired()
        res.tries = {s: n for s, n in run.tries().items() if s not in ("capture", "prepare")}
        if res.max_workers > 1:
            res.findings.append(
                state.Finding(
                    "duplicated",
                    "training workers alive at once on one job folder: "
                    + "; ".join(workers.overlap),
                    1,
                    res.max_workers,
                )
            )
        if res.orphan_workers:
            res.findings.append(
                state.Finding(
                    "leftover",
                    "training worker still running after the run ended",
                    0,
                    res.orphan_workers,
                )
            )
        if outage is not None:
            res.note = (note + f" outage {outage.outage_s or 0:.1f} s {outage.error}").strip()
            if max(res.tries.values() or [1]) < 2:
                res.error = res.error or "no task hit the outage (no retry happened)"
        res.seconds = time.monotonic() - t0
        return res


FAULTS = {
    "pause": "PostgreSQL restarted during a task",
    "kill-training": "SIGKILL of a task while its training worker runs",
}


class KillWhileTraining(Watch):
    """SIGKILLs the first try of ``train_challenger`` from outside as soon as its training
    worker has checkpointed one chunk — the node or the OOM killer taking the Airflow task
    while the worker subprocess goes on as an orphan."""

    def __init__(self, home: Path) -> None:
        self.home = str(home)
        self.fired = False
        self._thread: threading.Thread | None = None

    def _run(self, proc: Any) -> None:
        import os
        import signal
        from multiprocessing.connection import wait

        while not wait([proc.sentinel], 0.05):
            for _pid, _created, job in training_workers(self.home):
                progress = Path(job).parent / "progress.json"
                with contextlib.suppress(OSError, ValueError):
                    if json.loads(progress.read_text()).get("chunks_done", 0) >= 1:
                        os.kill(proc.pid, signal.SIGKILL)
                        self.fired = True
                        return

    def start(self, proc: Any, step: str, try_number: int) -> None:
        if step == "train_challenger" and try_number == 1 and not self.fired:
            self._thread = threading.Thread(target=self._run, args=(proc,), daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


# -- building the base ---------------------------------------------------------------------------
def build_base(backend: Backend) -> Snapshot:
    """Weeks 0..BASE_WEEKS-1 of Elec2 through the steps, as the scheduled DAG runs them."""
    if backend.home.exists():
        shutil.rmtree(backend.home)
    for i in range(BASE_WEEKS):
        clock = week_clock(i)
        run = Runner(
            backend.env(),
            f"scheduled__{clock.isoformat()}",
            clock,
            backend.root / "runs" / f"base-week{i}",
            actor="airflow:retrain_elec2/scheduled",
        )
        run.call(land_week, (i,), "land")
        run_chain(run)
    return backend.snapshot("base")


def base_on_postgres(sqlite_base: Snapshot, backend: Backend) -> Snapshot:
    """The SQLite base's home folder, its ledger rows in this backend's PostgreSQL database."""
    assert backend.pg is not None
    if backend.home.exists():
        shutil.rmtree(backend.home)
    shutil.copytree(sqlite_base.home, backend.home, symlinks=True)
    ledger = backend.home / "ledger.db"
    backend.pg.create(Backend.LIVE)
    run = Runner(backend.env(), "copy", week_clock(0), backend.root / "runs" / "base-copy")
    run.call(copy_ledger, (f"sqlite:///{ledger}", backend.pg.url(Backend.LIVE)), "copy")
    ledger.unlink()
    return backend.snapshot("base")


def rows_file(root: Path) -> str:
    run = Runner(
        StateEnv(root / "rows-home", PROJECT_ROOT), "rows", week_clock(0), root / "runs" / "rows"
    )
    return str(
        run.call(write_rows, (str(root / "rows.parquet"), [FAULT_WEEK - 1, FAULT_WEEK]), "rows")
    )


def tolerance(project_root: Path = PROJECT_ROOT) -> state.Tolerance:
    """``WALL_TOLERANCE_S`` seconds of the model's on-demand instance price."""
    from costaware.config import get_model
    from costaware.costs import make_price_source

    cfg = get_model(project_root / "include" / "models", MODEL)
    t = cfg.training
    price = make_price_source(
        cfg.cost_policy.price_source, None, cfg.cost_policy.price_source_options
    )
    hourly = price.price(t.instance_type, t.region, "on_demand").usd_per_hour
    return state.Tolerance(usd=hourly * state.WALL_TOLERANCE_S / 3600)


def record(path: Path, res: CaseResult) -> None:
    """One line per case in the session's results file (the README table is made from it)."""
    with path.open("a") as f:
        f.write(json.dumps(res.as_dict(), default=str) + "\n")
