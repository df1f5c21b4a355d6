"""What ``costaware stack`` runs (see ``app/stack.py``): the plan, each component's command
and environment, and how to tell that a component is ready.

Settings come from ``deploy/common.env``, the file docker-compose.yaml reads too; this module
adds only hosts, ports, the Airflow connections made of them and per-stack secrets. Each
Celery worker gets its own empty working directory, ``TMPDIR``, ``COSTAWARE_HOME`` and
``AIRFLOW_HOME`` and reports its own host name to Airflow, so a task that relied on another
task's local disk fails, and every task instance names the worker that ran it. Task logs go to
``s3://<bucket>/logs``, where the API server reads them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costaware.errors import StackError
from costaware.settings import PROJECT_ROOT, Settings

HOST, PG, REDIS = "127.0.0.1", "127.0.0.1:5432", "127.0.0.1:6379"
SECRETS_FILE = "secrets.json"
MARKER, HOSTNAME_ENV = "COSTAWARE_STACK_ID", "COSTAWARE_WORKER_HOSTNAME"
WORKERS = ("worker1", "worker2")
PREFERRED_PORTS = {"api-server": 8080, "mlflow": 5000, "moto": 5005}
DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DB_KEYS = ("COSTAWARE_AIRFLOW_DB", "COSTAWARE_MLFLOW_DB", "COSTAWARE_LEDGER_DB")
REQUIRED = ("COSTAWARE_BUCKET", "COSTAWARE_STORAGE", "COSTAWARE_MLFLOW_ARTIFACTS", *DB_KEYS)
# Set here, not by the caller's shell: a leftover AIRFLOW_HOME, COSTAWARE_DB_URL or AWS key
# would configure a component behind the stack's back.
FOREIGN_ENV = ("AIRFLOW", "COSTAWARE_", "MLFLOW_", "AWS_", "GOOGLE_", "TMPDIR")


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in the stack: two workers on one machine would
    otherwise both record the machine's name on the task instances they run."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines with ``#`` comments, as docker-compose's ``env_file`` reads them."""
    if not path.exists():
        raise StackError(f"{path}: no such settings file (deploy/common.env of the project)")
    values = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise StackError(f"{path}:{n}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Plan:
    """What is decided before anything starts: names, ports, folders, databases."""

    stack_id: str
    root: Path  # $COSTAWARE_HOME/stack
    project_root: Path
    deploy: dict[str, str]  # deploy/common.env, then the caller's overrides
    ports: dict[str, int]
    redis_db: int
    workers: tuple[str, ...] = WORKERS  # the Celery workers' names (``make_plan(workers=)``)

    def url(self, component: str) -> str:
        return f"http://{HOST}:{self.ports[component]}"

    def pg(self, key: str, scheme: str = "postgresql+psycopg2") -> str:
        return f"{scheme}://postgres@{PG}/{self.deploy[key]}"

    @property
    def databases(self) -> list[str]:
        return [self.deploy[k] for k in DB_KEYS]

    @property
    def bucket(self) -> str:
        return self.deploy["COSTAWARE_BUCKET"]

    @property
    def task_logs(self) -> str:
        """Where task logs go: the bucket, unless deploy/common.env names another place."""
        key = "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"
        return self.deploy.get(key) or f"s3://{self.bucket}/logs"

    @property
    def broker(self) -> str:
        return f"redis://{REDIS}/{self.redis_db}"

    def worker_name(self, worker: str) -> str:
        return f"{worker}-{self.stack_id}@{socket.gethostname()}"

    @property
    def users(self) -> list[str]:
        """The UI's users (``user:role`` pairs in the simple auth manager's setting)."""
        pairs = self.deploy.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS") or "admin:admin"
        return [pair.split(":")[0].strip() for pair in pairs.split(",") if pair.strip()]


def private_overrides(prefix: str, tag: str) -> dict[str, str]:
    """Settings for a stack that shares nothing with another on this machine (tests,
    benchmarks): its own bucket and databases, named ``<prefix>_<tag>_…``, and DAGs paused until
    the caller has landed its data."""
    bucket = f"costaware-{prefix}-{tag}".replace("_", "-")
    return {
        "COSTAWARE_BUCKET": bucket,
        "COSTAWARE_STORAGE": f"s3://{bucket}/state",
        "COSTAWARE_MLFLOW_ARTIFACTS": f"s3://{bucket}/mlflow",
        "COSTAWARE_AIRFLOW_DB": f"{prefix}_{tag}_airflow",
        "COSTAWARE_MLFLOW_DB": f"{prefix}_{tag}_mlflow",
        "COSTAWARE_LEDGER_DB": f"{prefix}_{tag}_ledger",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    }


def make_plan(
    root: Path,
    project_root: Path = PROJECT_ROOT,
    overrides: dict[str, str] | None = None,
    redis_db: int = 5,
    preferred_ports: bool = True,
    workers: int = len(WORKERS),
) -> Plan:
    if workers < 1:
        raise StackError(f"workers={workers}: the stack needs at least one Celery worker")
    deploy = {**read_env_file(project_root / "deploy" / "common.env"), **(overrides or {})}
    missing = [k for k in REQUIRED if not deploy.get(k)]
    if missing:
        raise StackError(f"deploy/common.env (or the overrides) lacks {missing}; set them there")
    bad = [deploy[k] for k in DB_KEYS if not DB_NAME.fullmatch(deploy[k])]
    if bad:
        raise StackError(f"database names {bad} are not allowed; use {DB_NAME.pattern}")
    for key in ("COSTAWARE_STORAGE", "COSTAWARE_MLFLOW_ARTIFACTS"):
        url = deploy[key]
        if url.startswith("s3://") and url[5:].split("/")[0] != deploy["COSTAWARE_BUCKET"]:
            raise StackError(
                f"{key}={url} is not in the stack's bucket "
                f"COSTAWARE_BUCKET={deploy['COSTAWARE_BUCKET']}; the stack makes only that one"
            )
    names = ["moto", "mlflow", "api-server", "trigger-logs"]
    prefer = PREFERRED_PORTS if preferred_ports else {}
    ports = {n: _port(prefer.get(n)) for n in names}
    celery = tuple(f"worker{i}" for i in range(1, workers + 1))
    return Plan(secrets.token_hex(3), root, project_root, deploy, ports, redis_db, celery)


def _port(preferred: int | None) -> int:
    """The preferred port when it is free, else any free one."""
    for candidate in (preferred, 0):
        if candidate is None:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise StackError("no free TCP port on 127.0.0.1")


# --- the components ---------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path


def _bin(name: str) -> str:
    """A console script of this virtualenv (the stack runs the code this process runs)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise StackError(f"{path} is missing; install the project with `make setup`")
    return str(path)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def secrets_for(root: Path, users: list[str]) -> dict[str, Any]:
    """Airflow's own keys and the UI passwords, made once per state folder and kept (0600) so a
    restarted stack can read what it encrypted. Credentials to data live in connections."""
    path = root / SECRETS_FILE
    if path.exists():
        kept: dict[str, Any] = json.loads(path.read_text())
        kept["passwords"] = {
            u: kept["passwords"].get(u) or secrets.token_urlsafe(12) for u in users
        }
    else:
        from cryptography.fernet import Fernet

        kept = {
            "jwt_secret": secrets.token_urlsafe(32),
            "secret_key": secrets.token_urlsafe(32),
            "fernet_key": Fernet.generate_key().decode(),
            "passwords": {u: secrets.token_urlsafe(12) for u in users},
        }
    path.touch(mode=0o600)
    path.write_text(json.dumps(kept))
    return kept


def _connections(plan: Plan) -> dict[str, str]:
    """Every Airflow connection the stack needs, as ``AIRFLOW_CONN_*`` JSON: the only place
    credentials appear (moto accepts any key; the ledger trusts local connections)."""
    aws = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": plan.url("moto"), "region_name": "us-east-1"},
    }
    ledger = {
        "conn_type": "postgres",
        "host": HOST,
        "port": 5432,
        "login": "postgres",
        "schema": plan.deploy["COSTAWARE_LEDGER_DB"],
    }
    conns = {"aws_default": aws, plan.deploy.get("COSTAWARE_LEDGER_CONN_ID", ""): ledger}
    return {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in conns.items() if k}


def airflow_env(plan: Plan, home: Path, keys: dict[str, Any]) -> dict[str, str]:
    """One Airflow component's environment; ``home`` is its private COSTAWARE_HOME."""
    from costaware.app.airflow_env import airflow_env as local_env

    settings = Settings.from_env(
        {"COSTAWARE_HOME": str(home), "COSTAWARE_PROJECT_ROOT": str(plan.project_root)}
    )
    api = plan.url("api-server")
    # Task logs on the bucket (the API server reads them there): deploy/common.env may say
    # otherwise, so it comes after these.
    remote_logs = {
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": plan.task_logs,
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
    }
    return {
        **_clean_env(),
        **local_env(settings),
        **remote_logs,
        **plan.deploy,
        **_connections(plan),
        MARKER: plan.stack_id,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": plan.pg("COSTAWARE_AIRFLOW_DB"),
        "AIRFLOW__CELERY__BROKER_URL": plan.broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": plan.pg(
            "COSTAWARE_AIRFLOW_DB", "db+postgresql+psycopg2"
        ),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(plan.ports["api-server"]),
        "AIRFLOW__API__BASE_URL": api,
        # Task processes report to the API server's execution API (the default is port 8080).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(plan.ports["trigger-logs"]),
        "COSTAWARE_MLFLOW_URI": plan.url("mlflow"),
    }


def components(plan: Plan, keys: dict[str, Any]) -> list[Component]:
    """Infrastructure first (moto, MLflow), then Airflow; ``up`` starts them in this order."""
    logs, central = plan.root / "logs", plan.root / "home"
    mlflow_env = {
        **_clean_env(),
        MARKER: plan.stack_id,
        # The server alone writes artifacts to S3 (--serve-artifacts): workers need no keys.
        "MLFLOW_S3_ENDPOINT_URL": plan.url("moto"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = [
        Component(
            "moto",
            [_bin("moto_server"), "-H", HOST, "-p", str(plan.ports["moto"])],
            {**_clean_env(), MARKER: plan.stack_id},
            plan.root,
            logs / "moto.log",
        ),
        Component(
            "mlflow",
            [_bin("mlflow"), "server", "--host", HOST, "--port", str(plan.ports["mlflow"])]
            + ["--workers", "1", "--backend-store-uri", plan.pg("COSTAWARE_MLFLOW_DB")]
            + ["--artifacts-destination", plan.deploy["COSTAWARE_MLFLOW_ARTIFACTS"]]
            + ["--serve-artifacts"],
            mlflow_env,
            plan.root,
            logs / "mlflow.log",
        ),
    ]
    env = airflow_env(plan, central, keys)
    for name, args in (
        ("api-server", ["api-server", "--workers", "1"]),
        ("scheduler", ["scheduler"]),
        ("dag-processor", ["dag-processor"]),
        ("triggerer", ["triggerer"]),
    ):
        out.append(Component(name, [_bin("airflow"), *args], env, plan.root, logs / f"{name}.log"))
    for worker in plan.workers:
        folder = plan.root / "workers" / worker
        wenv = {
            **airflow_env(plan, folder / "home", keys),
            "TMPDIR": str(folder / "tmp"),
            HOSTNAME_ENV: plan.worker_name(worker),
        }
        argv = [_bin("airflow"), "celery", "worker", "--celery-hostname"]
        argv += [plan.worker_name(worker), "--skip-serve-logs"]  # task logs are on S3
        out.append(Component(worker, argv, wenv, folder / "cwd", logs / f"{worker}.log"))
    return out


# --- readiness ----------------------------------------------------------------------------


def _get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except OSError as exc:
        return 0, str(exc).encode()


MOTO_KEYS = "testing"  # moto accepts any key; the stack's connection and clients use this


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client for the stack's moto server (to land batches, read what runs left)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=MOTO_KEYS,
        aws_secret_access_key=MOTO_KEYS,
        region_name="us-east-1",
    )


def _bucket_ready(plan: Plan) -> str | None:
    """Create the bucket once moto answers (moto starts empty)."""
    import botocore.exceptions

    s3 = s3_client(plan.url("moto"))
    try:
        if plan.bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=plan.bucket)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        return f"S3 not answering: {exc}"
    return None


_PING = """
import json, sys
from celery import Celery
app = Celery(broker=sys.argv[1])
try:
    replies = app.control.ping(timeout=1.0) or []
except Exception:  # the broker not answering yet is "not ready", not a failure
    replies = []
print(json.dumps(sorted(name for reply in replies for name in reply)))
"""


def _workers_answering(plan: Plan) -> set[str]:
    """Celery node names that answer a ping on the stack's broker. Asked from a child process:
    a Celery app in this one registers after-fork hooks (kombu's connection pools) that break
    every process this one forks later (the tests' task processes)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PING, plan.broker], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        return set()
    return set(json.loads(done.stdout.strip().splitlines()[-1] or "[]"))


AIRFLOW_HEALTH = {
    "scheduler": "scheduler",
    "dag-processor": "dag_processor",
    "triggerer": "triggerer",
}


class Readiness:
    """One round of readiness checks; the API server's health is fetched once per round."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._health: dict[str, Any] | None = None
        self._pings: set[str] | None = None

    def health(self) -> dict[str, Any]:
        if self._health is None:
            code, body = _get(self.plan.url("api-server") + "/api/v2/monitor/health")
            self._health = json.loads(body) if code == 200 else {"error": body.decode()[:200]}
        return self._health

    def why_not(self, name: str) -> str | None:
        """None when ``name`` is ready, else what is missing."""
        plan = self.plan
        if name == "moto":
            return _bucket_ready(plan)
        if name == "mlflow":
            code, body = _get(plan.url("mlflow") + "/health")
            return None if code == 200 else f"GET /health: {body.decode()[:200]}"
        if name in plan.workers:
            if self._pings is None:
                self._pings = _workers_answering(plan)
            node = plan.worker_name(name)
            return None if node in self._pings else f"{node} does not answer a Celery ping"
        health = self.health()
        if "error" in health:
            return f"API server health: {health['error']}"
        if name == "api-server":
            return None if health["metadatabase"]["status"] == "healthy" else "metadatabase"
        status = (health.get(AIRFLOW_HEALTH[name]) or {}).get("status")
        return None if status == "healthy" else f"health says {name} is {status}"
