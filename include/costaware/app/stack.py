"""``costaware stack up|down|status`` (``make stack``): the deployed topology on this machine.

The shape of docker-compose.yaml without Docker: PostgreSQL at 127.0.0.1:5432 (one database
each for Airflow, MLflow and the ledger, created when missing), Redis at 127.0.0.1:6379 as
Celery's broker, moto's server as S3 (bucket created), an MLflow tracking server keeping its
store in PostgreSQL and its artifacts in the bucket, and Airflow's scheduler, DAG processor,
triggerer, API server and two Celery workers (``--workers N``), each worker in its own empty
folder. What runs, with which settings, is ``stack_topology.py``; this module starts, waits,
stops and reports.

Every component runs in its own session (its own process group, no terminal to hang up);
Airflow's task processes change group but stay in their worker's session. ``down`` stops
exactly the processes in the stack's sessions (or carrying ``COSTAWARE_STACK_ID`` in their
environment), waits for them, and checks that none is left. The state (pids, ports, logs)
is ``$COSTAWARE_HOME/stack/stack.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from costaware.app.stack_topology import (
    DB_NAME,
    MARKER,
    PG,
    SECRETS_FILE,
    Component,
    Plan,
    Readiness,
    StackError,
    components,
    make_plan,
    secrets_for,
)
from costaware.settings import Settings

STATE_FILE, DATABASES_FILE = "stack.json", "databases.json"
__all__ = ["StackError", "up", "down", "status", "describe", "processes", "drop_data"]


# --- starting and waiting ---------------------------------------------------------------


def _start(c: Component) -> subprocess.Popen[bytes]:
    """One component in its own session (its own process group, no terminal to hang up)."""
    c.cwd.mkdir(parents=True, exist_ok=True)
    c.log.parent.mkdir(parents=True, exist_ok=True)
    with c.log.open("ab") as log:
        return subprocess.Popen(
            c.argv,
            cwd=c.cwd,
            env=c.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _failed(c: Component, what: str) -> StackError:
    return StackError(f"{c.name} {what}; its log: {c.log}\n--- last lines ---\n{_tail(c.log)}")


def ensure_databases(plan: Plan) -> list[str]:
    """Create the stack's PostgreSQL databases that do not exist yet; returns the names
    created now. An existing database is used as it is, never emptied."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2://postgres@{PG}/postgres")
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            have = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
            for name in plan.databases:
                if name not in have:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        raise StackError(f"PostgreSQL at {PG} (user postgres) is not reachable: {exc}") from exc
    finally:
        engine.dispose()
    return [n for n in plan.databases if n not in have]


def _own_databases(root: Path, plan: Plan, say: Callable[[str], None]) -> list[str]:
    """The databases this state folder's stacks created (the only ones ``--drop`` drops),
    kept in ``databases.json`` across ``up`` and ``down``."""
    path = root / DATABASES_FILE
    before = json.loads(path.read_text()) if path.exists() else []
    created = ensure_databases(plan)
    kept = [n for n in plan.databases if n in before and n not in created]
    if kept:
        say(
            f"reusing databases {kept} of an earlier stack; the bucket is new and empty "
            "(moto keeps it in memory), so their rows may name files that are gone: "
            "`make stack-down` (which drops them) gives a clean start"
        )
    owned = sorted(set(before) | set(created))
    path.write_text(json.dumps(owned))
    return owned


def _migrate(c: Component, timeout: float) -> None:
    """``airflow db migrate`` on the metadata database, before any Airflow component starts."""
    proc = _start(c)
    try:
        code = proc.wait(timeout=max(timeout, 1.0))
    except BaseException as exc:  # out of time, or interrupted: leave no migration running
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise _failed(c, f"did not finish within {timeout:.0f} s") from None
        raise
    if code != 0:
        raise _failed(c, f"failed with exit code {code}")


def _wait_ready(
    plan: Plan,
    started: dict[str, tuple[Component, subprocess.Popen[bytes]]],
    t0: float,
    deadline: float,
) -> dict[str, float]:
    """Seconds from ``t0`` until each component was ready; raises naming the first that is
    not ready by ``deadline`` or exits."""
    ready: dict[str, float] = {}
    why: dict[str, str | None] = {}
    while True:
        probe = Readiness(plan)
        for name, (c, proc) in started.items():
            if name in ready:
                continue
            if proc.poll() is not None:
                raise _failed(c, f"exited with code {proc.returncode} while starting")
            why[name] = probe.why_not(name)
            if why[name] is None:
                ready[name] = time.monotonic() - t0
        if len(ready) == len(started):
            return ready
        if time.monotonic() > deadline:
            name = next(n for n in started if n not in ready)
            raise _failed(started[name][0], f"was not ready in time ({why[name]})")
        time.sleep(1.0)


# --- up, down, status -------------------------------------------------------------------


def stack_root(home: Path | None = None) -> Path:
    return (home or Settings.from_env().home) / "stack"


def read_state(root: Path) -> dict[str, Any] | None:
    path = root / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _save(root: Path, state: dict[str, Any]) -> None:
    tmp = root / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, root / STATE_FILE)


def up(
    home: Path | None = None,
    *,
    overrides: dict[str, str] | None = None,
    redis_db: int = 5,
    timeout: float = 300.0,
    preferred_ports: bool = True,
    workers: int = 2,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start the stack under ``home/stack`` with ``workers`` Celery workers; returns its state
    (what ``stack.json`` holds).

    Nothing is left running when it fails: every process started so far is stopped."""
    root = stack_root(home)
    old = read_state(root)
    if old is not None and processes(old):
        raise StackError(
            f"a stack is already running from {root} (id {old['id']}): stop it "
            "first with `make stack-down`"
        )
    root.mkdir(parents=True, exist_ok=True)
    plan = make_plan(
        root,
        overrides=overrides,
        redis_db=redis_db,
        preferred_ports=preferred_ports,
        workers=workers,
    )
    keys = secrets_for(root, plan.users)
    _fresh_worker_folders(root, plan.workers)
    state = _initial_state(plan)
    t0 = time.monotonic()
    started: dict[str, tuple[Component, subprocess.Popen[bytes]]] = {}
    try:
        state["databases"] = _own_databases(root, plan, say)
        _save(root, state)  # from here on, `down --drop` finds what to drop
        parts = components(plan, keys)
        api = next(c for c in parts if c.name == "api-server")
        _write_passwords(Path(api.env["AIRFLOW_HOME"]), keys["passwords"])
        for c in parts:
            if c.name == "api-server":  # Airflow needs its database migrated first
                say(f"migrating Airflow's database {plan.deploy['COSTAWARE_AIRFLOW_DB']} …")
                t = time.monotonic()
                _migrate(_migration(c, root), t0 + timeout - time.monotonic())
                state["timings"]["db migrate"] = round(time.monotonic() - t, 1)
            started[c.name] = (c, _start(c))
            state["components"].append(
                {
                    "name": c.name,
                    "pid": started[c.name][1].pid,
                    "log": str(c.log),
                    "cwd": str(c.cwd),
                }
            )
            _save(root, state)
        say(f"started {', '.join(started)}; waiting until each is ready …")
        ready = _wait_ready(plan, started, t0, t0 + timeout)
    except BaseException:
        stop(state, grace=10.0)
        raise
    state["timings"].update({k: round(v, 1) for k, v in ready.items()})
    state["up_seconds"] = round(time.monotonic() - t0, 1)
    _save(root, state)
    return state


def _migration(api: Component, root: Path) -> Component:
    return Component(
        "db-migrate",
        [api.argv[0], "db", "migrate"],
        api.env,
        root,
        api.log.with_name("db-migrate.log"),
    )


def _write_passwords(airflow_home: Path, passwords: dict[str, str]) -> None:
    """Airflow's simple auth manager keeps the passwords it finds in this file, so the login
    printed by ``up`` is the one that works."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    path = airflow_home / "simple_auth_manager_passwords.json.generated"
    path.touch(mode=0o600)
    path.write_text(json.dumps(passwords) + "\n")


def _fresh_worker_folders(root: Path, workers: tuple[str, ...]) -> None:
    """Each worker starts in an empty folder: nothing a previous run left is there to lean on."""
    import shutil

    shutil.rmtree(root / "workers", ignore_errors=True)
    for worker in workers:
        for sub in ("cwd", "tmp", "home"):
            (root / "workers" / worker / sub).mkdir(parents=True)


def _initial_state(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.stack_id,
        "root": str(plan.root),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "since": time.time(),  # epoch seconds: processes older than this are not ours
        "ports": plan.ports,
        "urls": {n: plan.url(n) for n in ("api-server", "mlflow", "moto")},
        "bucket": plan.bucket,
        "storage": plan.deploy["COSTAWARE_STORAGE"],
        "databases": [],  # the ones this state folder's stacks created (see _own_databases)
        "ledger_url": plan.pg("COSTAWARE_LEDGER_DB"),
        "airflow_db_url": plan.pg("COSTAWARE_AIRFLOW_DB"),
        "broker": plan.broker,
        "workers": [plan.worker_name(w) for w in plan.workers],
        "users": plan.users,
        "secrets_file": str(plan.root / SECRETS_FILE),
        "logs": str(plan.root / "logs"),
        "task_logs": plan.task_logs,
        "components": [],
        "timings": {},
    }


def processes(state: dict[str, Any]) -> list[Any]:
    """Live processes of the stack: every process in the session of one of its components
    (each starts its own session; Airflow's task processes leave the group, not the session)
    and any process whose environment carries the stack's id (one that left the session;
    the environment of a process that set its title is not readable, hence the sessions).
    Nothing older than the stack counts: a session id is a pid, and pids are reused."""
    import psutil

    sessions = {c["pid"] for c in state["components"]}
    found = []
    for p in psutil.process_iter(["status", "create_time"]):
        if p.pid == os.getpid() or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if p.info["create_time"] < state["since"] - 1:
            continue
        try:
            if os.getsid(p.pid) in sessions or p.environ().get(MARKER) == state["id"]:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def _reap(state: dict[str, Any]) -> None:
    """Collect the exit status of components this process started itself (no zombies)."""
    for c in state["components"]:
        try:
            os.waitpid(c["pid"], os.WNOHANG)
        except ChildProcessError:
            pass


def stop(state: dict[str, Any], grace: float = 30.0) -> None:
    """SIGTERM to each component (each stops its own children), SIGKILL to every process of
    the stack still there after ``grace`` seconds, then check that none is left."""
    import psutil

    leaders = {c["pid"] for c in state["components"]}
    for p in processes(state):
        if p.pid in leaders:
            with contextlib.suppress(psutil.Error):
                p.terminate()
    deadline = time.monotonic() + grace
    while processes(state) and time.monotonic() < deadline:
        _reap(state)
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while (left := processes(state)) and time.monotonic() < deadline:
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        _reap(state)
        time.sleep(0.5)
    _reap(state)
    if left := processes(state):
        raise StackError(
            f"processes of stack {state['id']} survived SIGKILL: "
            f"{[(p.pid, p.name()) for p in left]}; stop them by hand (kill -9 PID)"
        )


def down(home: Path | None = None, *, drop: bool = False, grace: float = 30.0) -> list[str]:
    """Stop every process of the stack started from ``home``; returns the components' names.
    ``drop`` also drops its databases and empties its broker database."""
    root = stack_root(home)
    state = read_state(root)
    if state is None:
        return []
    stop(state, grace)
    if drop:
        drop_data(state)
    (root / STATE_FILE).unlink()
    return [c["name"] for c in state["components"]]


def drop_data(state: dict[str, Any]) -> None:
    """Drop the databases the stack created (never one it found) and empty its Redis database."""
    import redis
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2://postgres@{PG}/postgres")
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in state["databases"]:
                if DB_NAME.fullmatch(name):
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
    Path(state["root"], DATABASES_FILE).unlink(missing_ok=True)
    redis.Redis.from_url(state["broker"]).flushdb()


def describe(state: dict[str, Any]) -> str:
    """What ``make stack`` prints: where to click, how to log in, where the logs are."""
    keys = json.loads(Path(state["secrets_file"]).read_text())
    login = ", ".join(f"{u} / {keys['passwords'][u]}" for u in state["users"])
    urls = state["urls"]
    return "\n".join(
        [
            f"costaware stack {state['id']} is up ({state.get('up_seconds', '?')} s)",
            f"  Airflow UI   {urls['api-server']}   login {login}",
            f"  MLflow       {urls['mlflow']}",
            f"  S3 (moto)    {urls['moto']}   bucket {state['bucket']} (keys testing / testing)",
            f"  state        {state['storage']}; ledger {state['ledger_url']}",
            f"  Celery       {state['broker']}; workers {', '.join(state['workers'])}",
            f"  logs         {state['logs']}/<component>.log; task logs {state['task_logs']}",
            "  stop with    make stack-down",
        ]
    )


def status(home: Path | None = None) -> str:
    root = stack_root(home)
    state = read_state(root)
    if state is None:
        return f"no stack started from {root}"
    alive = {p.pid for p in processes(state)}
    lines = [f"stack {state['id']} ({root})"]
    for c in state["components"]:
        word = "running" if c["pid"] in alive else "STOPPED"
        lines.append(f"  {c['name']:<14} {word:<8} pid {c['pid']:<8} {c['log']}")
    return "\n".join(lines)


def add_stack_command(subparsers: Any) -> None:
    p = subparsers.add_parser("stack", help="the deployed topology on this machine (make stack)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to come up (300)")
    p.add_argument("--redis-db", type=int, default=5, help="Redis database for Celery (5)")
    p.add_argument("--workers", type=int, default=2, help="Celery workers to start (2)")
    p.add_argument(
        "--drop",
        action="store_true",
        help="with down: also drop the stack's databases and broker queue",
    )
    p.set_defaults(func=run_stack)


def run_stack(args: argparse.Namespace) -> int:
    if args.action == "up":
        state = up(
            redis_db=args.redis_db,
            timeout=args.timeout,
            workers=args.workers,
            say=lambda s: print(s, flush=True),
        )
        print(describe(state))
    elif args.action == "down":
        names = down(drop=args.drop)
        print(f"stopped {', '.join(names)}" if names else "no stack was running")
    else:
        print(status())
    return 0
