"""docker-compose.yaml, .env.example, the Dockerfile and .dockerignore, checked without an engine.

Debian's ``docker-compose`` (1.29) validates the file and resolves it: interpolation from a
``.env`` filled from ``.env.example``, ``env_file`` merged into ``environment``, anchors
expanded, bind paths made absolute. The checks below then look for mistakes compose accepts
and a deployment trips on. Each check has a test that plants its mistake in a copy and
expects the check to name it, so none of them can pass by checking nothing.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
CONSTRAINTS = ROOT / "constraints.txt"
REQUIRED_SERVICES = {
    "postgres", "redis", "minio", "minio-init", "mlflow", "airflow-init", "airflow-apiserver",
    "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker-1", "airflow-worker-2",
    "statsd-exporter", "prometheus-token", "prometheus", "grafana",
}  # fmt: skip
DEPLOY = ROOT / "deploy"
# Airflow's StatsD settings the dashboards rely on: metric names without variables in them,
# dag_id / task_id as tags the exporter turns into labels (statsd-mapping.yml), and the prefix
# the dashboard's Airflow panels query (airflow_<name>, tests/ui/test_dashboards.py).
STATSD_SETTINGS = {
    "AIRFLOW__METRICS__STATSD_ON": "true",
    "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "true",
    "AIRFLOW__METRICS__LEGACY_NAMES_ON": "false",
}
# The restart policies of long-running services; a one-shot service (an init) has "no".
RESTARTING = {"always", "unless-stopped"}
# An environment key that names a secret (not a file or a connection id holding one).
SECRET_KEY_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|FERNET|ACCESS_KEY|PRIVATE_KEY|API_KEY)(?!.*_(FILE|PATH|CONN_ID)$)"
)
ONLY_A_REFERENCE = re.compile(r"\$?\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:?\-][^}]*)?\}")
LITERAL_SECRETS = {
    "password=<literal>": re.compile(r"password=(?!\$)\S", re.I),
    "a URL with a literal password": re.compile(r"://[^/\s:@]+:(?!\$)[^@\s/]+@"),
    '"password": "<literal>"': re.compile(r'"password"\s*:\s*"(?!\$)[^"]'),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "aws_secret_access_key=<literal>": re.compile(r"aws_secret_access_key\s*[=:]\s*(?!\$)\S", re.I),
}
# ${VAR}, ${VAR:-default}, ${VAR:?message}, $VAR; `$$` is compose's escape for a literal `$`.
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


# --- reading the files --------------------------------------------------------------------


def read_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an env file (compose's env_file / .env syntax, no quoting used)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def strings_in(node: Any) -> Iterator[str]:
    """Every key and string value of a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)
    elif isinstance(node, str):
        yield node


def environments(raw: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(service, key, value) of every `environment` entry, in map or list form."""
    for name, service in raw.get("services", {}).items():
        env = service.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in items:
            yield name, key, "" if value is None else str(value)


def compose_config(compose_file: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` in a clean environment, so no variable of this shell leaks in."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail(
            "docker-compose is not installed: `apt-get install -y docker-compose` (.ci/run does)"
        )
    cmd = [tool, "--env-file", str(env_file), "-f", str(compose_file)]
    cmd += ["--project-directory", str(ROOT), "config"]
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(cmd, env=clean, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def filled_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .env as a user makes it: .env.example copied into a folder of its own."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copy(ROOT / ".env.example", path)
    return path


@pytest.fixture(scope="module")
def resolved(filled_env: Path) -> dict[str, Any]:
    done = compose_config(COMPOSE, filled_env)
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def common() -> dict[str, str]:
    return read_env_file((ROOT / "deploy" / "common.env").read_text())


# --- the checks: each returns the problems it found, in words -----------------------------


def check_images(cfg: dict[str, Any]) -> list[str]:
    return [
        f"{name}: neither image nor build"
        for name, svc in cfg["services"].items()
        if not svc.get("image") and not svc.get("build")
    ]


def has_healthcheck(svc: dict[str, Any]) -> bool:
    check = svc.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable")


def check_dependencies(cfg: dict[str, Any]) -> list[str]:
    services, problems = cfg["services"], []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        deps = {d: {} for d in deps} if isinstance(deps, list) else deps
        for dep, how in deps.items():
            condition = (how or {}).get("condition", "service_started")
            target = services.get(dep)
            if target is None:
                problems.append(f"{name}: depends_on names unknown service {dep!r}")
            elif condition == "service_healthy" and not has_healthcheck(target):
                problems.append(
                    f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck"
                )
            elif condition == "service_completed_successfully" and (
                target.get("restart") in RESTARTING
            ):
                problems.append(
                    f"{name}: waits for {dep} to complete, but {dep} restarts "
                    f"(restart: {target['restart']})"
                )
    return problems


def check_healthchecks(cfg: dict[str, Any]) -> list[str]:
    return [
        f"{name}: a long-running service (restart: {svc['restart']}) without a healthcheck"
        for name, svc in cfg["services"].items()
        if svc.get("restart") in RESTARTING and not has_healthcheck(svc)
    ]


def mounts(svc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, source) of each volume entry: kind is "bind" or "volume" (anonymous skipped)."""
    for entry in svc.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("source"):
                yield entry.get("type", "volume"), str(entry["source"])
        elif ":" in entry:
            source = entry.split(":", 1)[0]
            yield ("bind" if source.startswith(("/", ".", "~")) else "volume"), source


def check_volumes(cfg: dict[str, Any], repo: Path = ROOT) -> list[str]:
    declared, used, problems = set(cfg.get("volumes") or {}), set(), []
    for name, svc in cfg["services"].items():
        for kind, source in mounts(svc):
            if kind == "volume":
                used.add(source)
                if source not in declared:
                    problems.append(f"{name}: named volume {source} is not declared under volumes:")
                continue
            path = (repo / source).resolve()
            if not path.is_relative_to(repo):
                problems.append(f"{name}: bind mount {source} is outside the repository")
            elif not path.exists():
                problems.append(f"{name}: bind mount {source} does not exist in the repository")
    problems += [f"volume {v} is declared but no service mounts it" for v in declared - used]
    return problems


def published(svc: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(host ip, host port, protocol) of each published port, short or long syntax."""
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published"):
                yield (
                    entry.get("host_ip", ""),
                    str(entry["published"]),
                    entry.get("protocol", "tcp"),
                )
            continue
        spec, _, proto = str(entry).partition("/")
        parts = spec.rsplit(":", 2)
        if len(parts) >= 2:
            yield (parts[0] if len(parts) == 3 else ""), parts[-2], proto or "tcp"


def check_ports(cfg: dict[str, Any]) -> list[str]:
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    problems = []
    for name, svc in cfg["services"].items():
        for ip, port, proto in published(svc):
            other = seen.get((port, proto))
            if other and (other[1] == ip or "" in (ip, other[1]) or "0.0.0.0" in (ip, other[1])):
                problems.append(f"{name} and {other[0]} both publish host port {port}/{proto}")
            seen[(port, proto)] = (name, ip)
    return problems


def airflow_services(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in cfg["services"].items() if n.startswith("airflow-")}


def check_common_env(cfg: dict[str, Any], common: dict[str, str]) -> list[str]:
    """deploy/common.env reaches every Airflow service unchanged: compose sets only the rest."""
    problems = []
    for name, svc in airflow_services(cfg).items():
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        for key, value in common.items():
            if key not in env:
                problems.append(f"{name}: {key} from deploy/common.env does not reach it")
            elif env[key] != value:
                problems.append(
                    f"{name}: {key}={env[key]!r} overrides deploy/common.env's {value!r}"
                )
    return problems


def check_database_names(cfg: dict[str, Any], common: dict[str, str]) -> list[str]:
    """The URLs compose hands to Airflow name the databases (and their owner roles) of
    deploy/common.env, the names postgres-init.sh creates; the buckets are COSTAWARE_BUCKET."""
    problems = []
    for name, svc in airflow_services(cfg).items():
        env = svc.get("environment") or {}
        urls = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("COSTAWARE_AIRFLOW_DB", None),
            "AIRFLOW__CELERY__RESULT_BACKEND": ("COSTAWARE_AIRFLOW_DB", None),
            "AIRFLOW_CONN_COSTAWARE_LEDGER": ("COSTAWARE_LEDGER_DB", "json"),
        }
        for key, (db_key, form) in urls.items():
            if key not in env:
                problems.append(f"{name}: {key} is not set")
                continue
            if form == "json":
                conn = json.loads(env[key])
                user, database = conn.get("login"), conn.get("schema")
            else:
                parts = urlsplit(env[key])
                user, database = parts.username, parts.path.lstrip("/")
            if (user, database) != (common[db_key], common[db_key]):
                problems.append(
                    f"{name}: {key} connects as {user!r} to {database!r}; deploy/common.env's "
                    f"{db_key} is {common[db_key]!r} (database and owner role)"
                )
    for key in ("COSTAWARE_STORAGE", "COSTAWARE_MLFLOW_ARTIFACTS"):
        if urlsplit(common[key]).netloc != common["COSTAWARE_BUCKET"]:
            problems.append(f"deploy/common.env: {key} is not in COSTAWARE_BUCKET")
    for name, svc in airflow_services(cfg).items():
        logs = (svc.get("environment") or {}).get("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER")
        if logs is None or urlsplit(logs).netloc != common["COSTAWARE_BUCKET"]:
            problems.append(f"{name}: task logs ({logs}) are not in COSTAWARE_BUCKET")
    return problems


def check_topology(cfg: dict[str, Any]) -> list[str]:
    services = cfg["services"]
    problems = [f"missing service {s}" for s in sorted(REQUIRED_SERVICES - set(services))]
    workers = {
        n: s.get("hostname")
        for n, s in services.items()
        if "celery worker" in str(s.get("command"))
    }
    if len(workers) != 2 or len(set(workers.values())) != 2 or None in workers.values():
        problems.append(f"want two Celery workers with distinct hostnames, got {workers}")
    mlflow = " ".join(strings_in(services.get("mlflow", {}).get("command")))
    for flag in ("--serve-artifacts", "--artifacts-destination", '--backend-store-uri "postgresql'):
        if flag not in mlflow:
            problems.append(f"mlflow: the server command lacks {flag}")
    return problems


def listens_on(svc: dict[str, Any]) -> set[str]:
    """Each "port/proto" a service declares it listens on: `expose` and the container side of
    `ports` (what other services can reach by its name)."""
    found = set()
    for entry in svc.get("expose") or []:
        port, _, proto = str(entry).partition("/")
        found.add(f"{port}/{proto or 'tcp'}")
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            found.add(f"{entry['target']}/{entry.get('protocol', 'tcp')}")
        else:
            spec, _, proto = str(entry).partition("/")
            found.add(f"{spec.rsplit(':', 1)[-1]}/{proto or 'tcp'}")
    return found


def check_reachable(cfg: dict[str, Any], where: str, address: str, proto: str = "tcp") -> list[str]:
    """host:port names a compose service that declares that port."""
    host, _, port = address.rpartition(":")
    svc = cfg["services"].get(host)
    if svc is None:
        return [f"{where}: {address}: no service {host!r} in docker-compose.yaml"]
    if f"{port}/{proto}" not in listens_on(svc):
        return [f"{where}: {address}: {host} does not expose {port}/{proto}"]
    return []


def mounted_from(svc: dict[str, Any], path: str) -> str | None:
    """What a path inside the container is on the host side of the service's mounts: an
    absolute path (bind) or "volume:<name>/<rest>"; None when no mount holds it."""
    best: tuple[int, str] | None = None
    for entry in svc.get("volumes") or []:
        source, target = str(entry).split(":")[:2]
        if path == target or path.startswith(target.rstrip("/") + "/"):
            rest = path[len(target) :].lstrip("/")
            where = source if source.startswith("/") else f"volume:{source}"
            if best is None or len(target) > best[0]:
                best = (len(target), f"{where}/{rest}".rstrip("/"))
    return best[1] if best else None


def flag(svc: dict[str, Any], name: str) -> str | None:
    """The value of `--name=value` in a service's command."""
    for arg in svc.get("command") or []:
        if str(arg).startswith(f"--{name}="):
            return str(arg).split("=", 1)[1]
    return None


def check_statsd(cfg: dict[str, Any]) -> list[str]:
    """Every Airflow service sends StatsD, as the dashboards expect, to a service listening."""
    problems = []
    for name, svc in airflow_services(cfg).items():
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        for key, want in STATSD_SETTINGS.items():
            if env.get(key, "").lower() != want:
                problems.append(f"{name}: {key}={env.get(key)!r}, the dashboards need {want!r}")
        host = env.get("AIRFLOW__METRICS__STATSD_HOST", "")
        port = env.get("AIRFLOW__METRICS__STATSD_PORT", "8125")
        problems += check_reachable(cfg, f"{name}: StatsD", f"{host}:{port}", "udp")
    return problems


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def check_dashboards(
    cfg: dict[str, Any],
    prometheus: dict[str, Any] | None = None,
    datasources: dict[str, Any] | None = None,
    providers: dict[str, Any] | None = None,
) -> list[str]:
    """deploy/prometheus and deploy/grafana fit the compose file: every scrape target and the
    datasource are services and ports; each container reads the repository's file where its
    configuration says; Prometheus's token file is the one prometheus-token writes."""
    prometheus = prometheus or read_yaml(DEPLOY / "prometheus/prometheus.yml")
    datasources = datasources or read_yaml(
        DEPLOY / "grafana/provisioning/datasources/prometheus.yml"
    )
    providers = providers or read_yaml(DEPLOY / "grafana/provisioning/dashboards/costaware.yml")
    services, problems = cfg["services"], []
    for job in prometheus["scrape_configs"]:
        where = f"prometheus.yml job {job['job_name']}"
        for group in job.get("static_configs") or []:
            for target in group["targets"]:
                problems += check_reachable(cfg, where, target)
        token = (job.get("authorization") or {}).get("credentials_file")
        if token:
            read = mounted_from(services.get("prometheus", {}), token)
            writers = {
                n: mounted_from(s, str(s["environment"]["TOKEN_FILE"]))
                for n, s in services.items()
                if "TOKEN_FILE" in (s.get("environment") or {})
            }
            if not read or not read.startswith("volume:") or read not in writers.values():
                problems.append(
                    f"{where}: credentials_file {token} is {read} in prometheus, but the "
                    f"token is written to {writers or 'no TOKEN_FILE'}"
                )
    for ds in datasources["datasources"]:
        where = f"grafana datasource {ds['name']}"
        problems += check_reachable(cfg, where, urlsplit(ds["url"]).netloc)
    config = flag(services.get("prometheus", {}), "config.file") or "(no --config.file)"
    mapping = flag(services.get("statsd-exporter", {}), "statsd.mapping-config") or "(none)"
    wanted = {  # (service, path in the container): the repository's file or folder
        ("prometheus", config): DEPLOY / "prometheus/prometheus.yml",
        ("statsd-exporter", mapping): DEPLOY / "prometheus/statsd-mapping.yml",
        ("grafana", "/etc/grafana/provisioning"): DEPLOY / "grafana/provisioning",
    }
    for provider in providers["providers"]:
        wanted[("grafana", provider["options"]["path"])] = DEPLOY / "grafana/dashboards"
    for (name, path), source in wanted.items():
        if name not in services:
            continue  # check_topology reports it
        got = mounted_from(services[name], path)
        if got != str(source):
            problems.append(f"{name}: {path} is {got}, want {source.relative_to(ROOT)}")
    return problems


def shell_scripts(svc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(what, script) for each shell script the container runs: `sh|bash -c SCRIPT` in its
    entrypoint + command, and CMD-SHELL health checks. `$$` is compose's escape for `$`."""
    argv = []
    for part in (svc.get("entrypoint"), svc.get("command")):
        argv += shlex.split(part) if isinstance(part, str) else list(part or [])
    for i, arg in enumerate(argv[:-1]):
        if arg == "-c" and i and Path(argv[i - 1]).name in ("sh", "bash"):
            yield "command", argv[i + 1].replace("$$", "$")
    test = (svc.get("healthcheck") or {}).get("test") or []
    if len(test) == 2 and test[0] == "CMD-SHELL":
        yield "healthcheck", test[1].replace("$$", "$")


def check_shell_syntax(cfg: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in cfg["services"].items():
        for what, script in shell_scripts(svc):
            done = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
            if done.returncode:
                problems.append(f"{name}: {what} is not valid shell: {done.stderr.strip()}")
    return problems


def check_interpolation(raw: dict[str, Any], env_example: dict[str, str]) -> list[str]:
    """Every ${VAR} of the compose file is in .env.example, and .env.example has no leftovers."""
    used = {a or b for text in strings_in(raw) for a, b in INTERPOLATION.findall(text)}
    problems = [
        f"${{{v}}} is used but not in .env.example" for v in sorted(used - set(env_example))
    ]
    problems += [f"{v} in .env.example is not used" for v in sorted(set(env_example) - used)]
    return problems


def check_no_literal_secrets(raw: dict[str, Any], where: str = "docker-compose.yaml") -> list[str]:
    problems = [
        f"{where}: {service}: {key} is a literal; take it from .env as ${{{key}:-}}"
        for service, key, value in environments(raw)
        if SECRET_KEY_NAME.search(key.upper()) and not ONLY_A_REFERENCE.fullmatch(value)
    ]
    for text in strings_in(raw):
        found = [what for what, pattern in LITERAL_SECRETS.items() if pattern.search(text)]
        problems += [f"{where}: {what} in {text[:60]!r}" for what in found]
        problems += [
            f"{where}: ${{{name}}} has a default; a secret must come from .env only"
            for name in SECRET_DEFAULT.findall(text)
            if SECRET_KEY_NAME.search(name)
        ]
    return problems


SECRET_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-[^}]+\}")


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, p) for p in prefixes):
            excluded = not negate
    return excluded


def read_dockerignore(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def check_dockerfile(dockerfile: str, dockerignore: str, repo: Path = ROOT) -> list[str]:
    """The image is the pinned Airflow on the project's Python, installs costaware with the
    constraints, copies only what exists and is sent, and never sends local state."""
    problems = []
    airflow = re.search(r"^apache-airflow==(\S+)$", (repo / "constraints.txt").read_text(), re.M)
    python = re.search(
        r'requires-python\s*=\s*">=(\d+\.\d+)', (repo / "pyproject.toml").read_text()
    )
    assert airflow and python, "constraints.txt pins no apache-airflow or pyproject has no python"
    want = f"apache/airflow:{airflow[1]}-python{python[1]}"
    base = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    if base != [want]:
        problems.append(f"Dockerfile: FROM {base}, want [{want!r}] (constraints.txt, pyproject)")
    if not re.search(r"pip install[^\n]*(\\\n[^\n]*)*-c \S*constraints\.txt", dockerfile):
        problems.append("Dockerfile: costaware is not installed with -c constraints.txt")
    patterns = read_dockerignore(dockerignore)
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M):
        args = [a for a in line.split() if not a.startswith("--")]
        for source in args[:-1]:
            path = repo / source
            files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
            sent = [
                f for f in files if not dockerignore_excludes(patterns, str(f.relative_to(repo)))
            ]
            if not path.exists():
                problems.append(f"Dockerfile: COPY {source}: no such path in the repository")
            elif not sent:
                problems.append(f"Dockerfile: COPY {source}: .dockerignore keeps it out")
    for private in (".venv/bin/python", ".costaware/ledger.db", ".env", ".git/config", "tests/x"):
        if not dockerignore_excludes(patterns, private):
            problems.append(f".dockerignore: {private} would be sent to the build")
    return problems


def check_constraints(pyproject: str, constraints: str) -> list[str]:
    """The image installs `pip install -c constraints.txt .`: a dependency of pyproject that
    constraints.txt does not pin sends pip backtracking through every release (measured: 13 min,
    then ResolutionImpossible, when the Amazon provider was added to pyproject unpinned)."""
    pins = {
        canonicalize_name(m[1]): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)$", constraints, re.M)
    }
    problems = []
    for spec in tomllib.loads(pyproject)["project"]["dependencies"]:
        req = Requirement(spec)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None or pinned not in req.specifier:
            problems.append(
                f"constraints.txt: {req.name} is pinned to {pinned}, pyproject wants {spec!r}; "
                "run `make lock`"
            )
    return problems


# --- the real files pass every check ------------------------------------------------------


def test_compose_config_is_valid_with_a_filled_env(filled_env: Path) -> None:
    done = compose_config(COMPOSE, filled_env)
    assert done.returncode == 0, done.stderr


def test_without_env_the_file_validates_and_airflow_init_refuses_empty_secrets(
    tmp_path: Path,
) -> None:
    """No password has a default: without .env every secret resolves empty, the file still
    validates (`docker-compose config -q`, the check a user and CI run), and airflow-init, which
    every Airflow service waits for, stops and says what to set."""
    empty = tmp_path / ".env"
    empty.write_text("")
    done = compose_config(COMPOSE, empty)
    assert done.returncode == 0, done.stderr
    script, env = airflow_init(yaml.safe_load(done.stdout))
    assert env["AIRFLOW_ADMIN_PASSWORD"] == ""
    ran = subprocess.run(
        ["bash", "-c", script], env=env | {"PATH": os.environ["PATH"]}, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert ran.returncode == 1
    assert "airflow-init: .env leaves these empty: AIRFLOW_ADMIN_PASSWORD" in ran.stderr
    assert "a database password or the MinIO user/password" in ran.stderr


def test_the_file_validates_as_is() -> None:
    """`docker-compose -f docker-compose.yaml config -q`, exactly as a user types it."""
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def resolved_problems(cfg: dict[str, Any], common: dict[str, str]) -> list[str]:
    """Every check of the resolved stack."""
    return (
        check_images(cfg)
        + check_dependencies(cfg)
        + check_healthchecks(cfg)
        + check_volumes(cfg)
        + check_ports(cfg)
        + check_common_env(cfg, common)
        + check_database_names(cfg, common)
        + check_topology(cfg)
        + check_shell_syntax(cfg)
        + check_statsd(cfg)
        + check_dashboards(cfg)
    )


def test_the_resolved_stack_passes_every_check(
    resolved: dict[str, Any], common: dict[str, str]
) -> None:
    assert resolved_problems(resolved, common) == []


def test_the_raw_files_pass_every_check() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    # deploy/common.env is committed too: scanned as if it were one service's environment.
    common_env = read_env_file((ROOT / "deploy" / "common.env").read_text())
    as_service = {"services": {"common": {"environment": common_env}}}
    problems = (
        check_interpolation(raw, read_env_file((ROOT / ".env.example").read_text()))
        + check_no_literal_secrets(raw)
        + check_no_literal_secrets(as_service, "deploy/common.env")
        + check_dockerfile((ROOT / "Dockerfile").read_text(), (ROOT / ".dockerignore").read_text())
        + check_constraints((ROOT / "pyproject.toml").read_text(), CONSTRAINTS.read_text())
    )
    assert problems == []


def test_env_is_ignored_by_git() -> None:
    """.env holds the passwords; .env.example is the one to commit."""
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, "add `.env` to .gitignore"
    kept = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=ROOT)
    assert kept.returncode == 1, ".env.example must not be git-ignored"


def test_workers_environment_gives_costaware_its_settings(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    """A worker's resolved environment, read by costaware itself (a fresh process with the real
    Airflow): storage on the bucket through aws_default pointing at MinIO, the ledger from the
    costaware_ledger connection, the MLflow server."""
    env = {k: str(v) for k, v in resolved["services"]["airflow-worker-1"]["environment"].items()}
    env |= {
        "PATH": os.environ["PATH"],
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "COSTAWARE_HOME": str(tmp_path / "home"),
        "COSTAWARE_PROJECT_ROOT": str(ROOT),
    }
    probe = (
        "import json\n"
        "from costaware.settings import Settings\n"
        "s = Settings.from_env()\n"
        "print(json.dumps({'storage': str(s.storage), 'ledger': s.db_url,"
        " 'mlflow': s.mlflow_uri, 'endpoint': s.storage.fs.endpoint_url}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    password = read_env_file((ROOT / ".env.example").read_text())["LEDGER_DB_PASSWORD"]
    assert got == {
        "storage": "s3://aws_default@costaware/state",
        "ledger": f"postgresql+psycopg2://costaware:{password}@postgres:5432/costaware",
        "mlflow": "http://mlflow:5000",
        "endpoint": "http://minio:9000",
    }


def test_mlflow_accepts_the_host_names_it_is_called_by(resolved: dict[str, Any]) -> None:
    """MLflow refuses Host headers it does not know (DNS-rebinding protection): the workers
    call it by service name, a browser on the host by 127.0.0.1/localhost."""
    from mlflow.server.security_utils import is_allowed_host_header

    ((_, script),) = shell_scripts(resolved["services"]["mlflow"])
    argv = shlex.split(script)
    allowed = argv[argv.index("--allowed-hosts") + 1].split(",")
    worker_env = resolved["services"]["airflow-worker-1"]["environment"]
    port = read_env_file((ROOT / ".env.example").read_text())["MLFLOW_PORT"]
    for host in (urlsplit(worker_env["COSTAWARE_MLFLOW_URI"]).netloc, f"localhost:{port}"):
        assert is_allowed_host_header(allowed, host), host
    assert is_allowed_host_header(allowed, f"127.0.0.1:{port}")
    assert not is_allowed_host_header(allowed, "attacker.example:5000")


def airflow_init(resolved: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """airflow-init's script as the container runs it, and its environment."""
    svc = resolved["services"]["airflow-init"]
    ((_, script),) = shell_scripts(svc)
    return script, {k: str(v) for k, v in svc["environment"].items()}


def test_airflow_init_refuses_the_placeholders(resolved: dict[str, Any]) -> None:
    """Started with .env.example's values, airflow-init stops before touching anything."""
    script, env = airflow_init(resolved)
    done = subprocess.run(
        ["bash", "-c", script], env=env | {"PATH": os.environ["PATH"]}, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert "airflow-init: .env still holds change-me placeholders" in done.stderr


LOGIN = """
import json, sys
from fastapi import HTTPException
from airflow.api_fastapi.app import create_auth_manager
from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody
from airflow.api_fastapi.auth.managers.simple.services.login import SimpleAuthManagerLogin

create_auth_manager()
answers = {}
for user, password in json.loads(sys.argv[1]):
    try:
        SimpleAuthManagerLogin.create_token(LoginBody(username=user, password=password))
        answers[password] = "ok"
    except HTTPException as exc:
        answers[password] = exc.status_code
print(json.dumps(answers))
"""


def test_airflow_init_sets_the_ui_password_from_env(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    """The password file airflow-init writes lets the UI user log in, through Airflow's own
    login service, with AIRFLOW_ADMIN_PASSWORD, and with nothing else."""
    script, env = airflow_init(resolved)
    writer = re.search(r"python - <<'PY'\n(.*?)\nPY\n", script, re.S)
    assert writer, "airflow-init no longer writes the password file with a python heredoc"
    env |= {
        "PATH": os.environ["PATH"],
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
    }
    wrote = subprocess.run([sys.executable, "-c", writer[1]], env=env, capture_output=True)
    assert wrote.returncode == 0, wrote.stderr
    tries = json.dumps([["admin", env["AIRFLOW_ADMIN_PASSWORD"]], ["admin", "airflow"]])
    done = subprocess.run(
        [sys.executable, "-c", LOGIN, tries], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers == {env["AIRFLOW_ADMIN_PASSWORD"]: "ok", "airflow": 401}


# --- each check catches its mistake -------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


DELETE = object()


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets <a>.<b>... = value in the resolved config (DELETE deletes)."""

    def mutate(cfg: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = cfg
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


RESOLVED_MISTAKES: dict[str, tuple[Mutation, str]] = {
    "no image": (_set("services.redis.image", DELETE), "redis: neither image nor build"),
    "unknown dependency": (
        _set("services.airflow-worker-1.depends_on.postgress", {"condition": "service_started"}),
        "unknown service 'postgress'",
    ),
    "healthy without healthcheck": (
        _set("services.minio.healthcheck", DELETE),
        "waits for minio to be healthy, but minio has no healthcheck",
    ),
    "completed but restarts": (
        _set("services.minio-init.restart", "always"),
        "waits for minio-init to complete, but minio-init restarts",
    ),
    "no healthcheck": (
        _set("services.airflow-triggerer.healthcheck", {"disable": True, "test": ["NONE"]}),
        "airflow-triggerer: a long-running service",
    ),
    "undeclared volume": (
        _set("volumes.airflow-auth", DELETE),
        "named volume airflow-auth is not declared",
    ),
    "unused volume": (_set("volumes.spare", None), "volume spare is declared but"),
    "missing bind path": (
        _set("services.postgres.volumes", [f"{ROOT}/deploy/compose/nope.sh:/x.sh:ro"]),
        "compose/nope.sh does not exist in the repository",
    ),
    "bind outside the repo": (
        _set("services.redis.volumes", ["/etc:/host-etc:ro"]),
        "redis: bind mount /etc is outside the repository",
    ),
    "port published twice": (
        _set("services.mlflow.ports", ["127.0.0.1:8080:5000/tcp"]),
        "both publish host port 8080/tcp",
    ),
    "common.env overridden": (
        _set("services.airflow-worker-2.environment.AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
        "airflow-worker-2: AIRFLOW__CORE__EXECUTOR='LocalExecutor' overrides",
    ),
    "common.env missing": (
        _set("services.airflow-triggerer.environment.COSTAWARE_STORAGE", DELETE),
        "airflow-triggerer: COSTAWARE_STORAGE from deploy/common.env does not reach it",
    ),
    "database name drift": (
        _set(
            "services.airflow-scheduler.environment.AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "postgresql+psycopg2://airflow:x@postgres:5432/airflow_meta",
        ),
        "connects as 'airflow' to 'airflow_meta'",
    ),
    "one worker": (_set("services.airflow-worker-2", DELETE), "missing service airflow-worker-2"),
    "broken shell": (
        _set("services.minio-init.command", ['mc alias set local "http://minio:9000']),
        "minio-init: command is not valid shell",
    ),
    "same worker hostname": (
        _set("services.airflow-worker-2.hostname", "airflow-worker-1"),
        "want two Celery workers with distinct hostnames",
    ),
    "statsd off": (
        _set("services.airflow-scheduler.environment.AIRFLOW__METRICS__STATSD_ON", "False"),
        "airflow-scheduler: AIRFLOW__METRICS__STATSD_ON='False', the dashboards need 'true'",
    ),
    "statsd legacy names": (
        _set("services.airflow-worker-1.environment.AIRFLOW__METRICS__LEGACY_NAMES_ON", DELETE),
        "airflow-worker-1: AIRFLOW__METRICS__LEGACY_NAMES_ON=None",
    ),
    "statsd host misspelt": (
        _set("services.airflow-triggerer.environment.AIRFLOW__METRICS__STATSD_HOST", "statsd"),
        "airflow-triggerer: StatsD: statsd:9125: no service 'statsd'",
    ),
    "statsd exporter without udp": (
        _set("services.statsd-exporter.expose", ["9102"]),
        "statsd-exporter:9125: statsd-exporter does not expose 9125/udp",
    ),
    "scrape target port": (
        _set("services.statsd-exporter.expose", ["9125/udp"]),
        "job airflow: statsd-exporter:9102: statsd-exporter does not expose 9102/tcp",
    ),
    "token on another volume": (
        _set("services.prometheus-token.volumes", ["grafana-data:/opt/airflow/costaware"]),
        "credentials_file /etc/prometheus-token/airflow-token is volume:prometheus-token/",
    ),
    "prometheus config not mounted": (
        _set("services.prometheus.command", ["--config.file=/etc/prometheus/prom.yml"]),
        "prometheus: /etc/prometheus/prom.yml is ",
    ),
    "dashboards not mounted": (
        _set(
            "services.grafana.volumes",
            [f"{ROOT}/deploy/grafana/provisioning:/etc/grafana/provisioning:ro"],
        ),
        "grafana: /var/lib/grafana/dashboards is None, want deploy/grafana/dashboards",
    ),
    "no grafana": (_set("services.grafana", DELETE), "missing service grafana"),
}


@pytest.mark.parametrize("mistake", sorted(RESOLVED_MISTAKES))
def test_each_check_reports_its_mistake(
    mistake: str, resolved: dict[str, Any], common: dict[str, str]
) -> None:
    mutate, expected = RESOLVED_MISTAKES[mistake]
    cfg = copy.deepcopy(resolved)
    mutate(cfg)
    problems = resolved_problems(cfg, common)
    assert any(expected in p for p in problems), problems


def _replaced(path: Path, old: str, new: str) -> dict[str, Any]:
    text = path.read_text()
    assert old in text, f"the mutation no longer applies to {path.relative_to(ROOT)}"
    return yaml.safe_load(text.replace(old, new, 1))


DASHBOARD_MISTAKES = {  # (file under deploy/, text, its replacement, the problem expected)
    "scrape target not a service": (
        "prometheus/prometheus.yml",
        '"airflow-apiserver:8080"',
        '"costaware-serve:8000"',
        "job costaware: costaware-serve:8000: no service 'costaware-serve'",
    ),
    "token file elsewhere": (
        "prometheus/prometheus.yml",
        "credentials_file: /etc/prometheus-token/airflow-token",
        "credentials_file: /etc/prometheus/airflow-token",
        "credentials_file /etc/prometheus/airflow-token is ",
    ),
    "datasource port": (
        "grafana/provisioning/datasources/prometheus.yml",
        "http://prometheus:9090",
        "http://prometheus:9091",
        "grafana datasource Prometheus: prometheus:9091: prometheus does not expose 9091/tcp",
    ),
    "dashboard folder": (
        "grafana/provisioning/dashboards/costaware.yml",
        "path: /var/lib/grafana/dashboards",
        "path: /etc/grafana/dashboards",
        "grafana: /etc/grafana/dashboards is None",
    ),
}


@pytest.mark.parametrize("mistake", sorted(DASHBOARD_MISTAKES))
def test_dashboard_checks_report_their_mistake(mistake: str, resolved: dict[str, Any]) -> None:
    file, old, new, expected = DASHBOARD_MISTAKES[mistake]
    planted = _replaced(DEPLOY / file, old, new)
    if file.startswith("prometheus/"):
        problems = check_dashboards(resolved, prometheus=planted)
    elif "datasources" in file:
        problems = check_dashboards(resolved, datasources=planted)
    else:
        problems = check_dashboards(resolved, providers=planted)
    assert len(problems) == 1 and expected in problems[0], problems


def grafana_start(resolved: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """grafana's start script as the container runs it, and its environment."""
    svc = resolved["services"]["grafana"]
    ((_, script),) = shell_scripts(svc)
    return script, {k: str(v) for k, v in svc["environment"].items()}


def test_grafana_refuses_an_empty_or_placeholder_password(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    """Grafana would fall back to admin/admin: without .env, or with .env.example's value, the
    container stops and says what to set; with a real password it starts Grafana (/run.sh)."""
    empty = tmp_path / ".env"
    empty.write_text("")
    done = compose_config(COMPOSE, empty)
    assert done.returncode == 0, done.stderr
    script, env = grafana_start(yaml.safe_load(done.stdout))
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == ""
    filled_script, filled = grafana_start(resolved)
    example = read_env_file((ROOT / ".env.example").read_text())["GRAFANA_ADMIN_PASSWORD"]
    assert filled_script == script and filled["GF_SECURITY_ADMIN_PASSWORD"] == example
    assert "exec /run.sh" in script, "grafana no longer starts the image's /run.sh"
    started = script.replace("exec /run.sh", "echo grafana-started")
    answers = {}
    for password in ("", example, "Kq3-real_password"):
        ran = subprocess.run(
            ["sh", "-c", started], env={"PATH": os.environ["PATH"],
            "GF_SECURITY_ADMIN_PASSWORD": password}, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        answers[password] = (ran.returncode, (ran.stdout + ran.stderr).strip())
    assert answers[""][0] == 1 and "leaves GRAFANA_ADMIN_PASSWORD empty" in answers[""][1]
    assert answers[example][0] == 1 and "still the change-me placeholder" in answers[example][1]
    assert answers["Kq3-real_password"] == (0, "grafana-started")


def test_bucket_drift_in_common_env_is_reported(
    resolved: dict[str, Any], common: dict[str, str]
) -> None:
    assert check_database_names(resolved, {**common, "COSTAWARE_STORAGE": "s3://other/state"}) == [
        "deploy/common.env: COSTAWARE_STORAGE is not in COSTAWARE_BUCKET"
    ]


def test_task_logs_outside_the_bucket_are_reported(
    resolved: dict[str, Any], common: dict[str, str]
) -> None:
    broken = copy.deepcopy(resolved)
    broken["services"]["airflow-scheduler"]["environment"][
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"
    ] = "s3://elsewhere/logs"
    assert check_database_names(broken, common) == [
        "airflow-scheduler: task logs (s3://elsewhere/logs) are not in COSTAWARE_BUCKET"
    ]


PG_PASSWORD = "${POSTGRES_PASSWORD:-}"
AIRFLOW_DB_PASSWORD = "${AIRFLOW_DB_PASSWORD:-}"
LEDGER_PASSWORD = "${LEDGER_DB_PASSWORD:-}"
RAW_MISTAKES = {  # (text in docker-compose.yaml, its replacement, the problem expected)
    "variable not in .env.example": (
        AIRFLOW_DB_PASSWORD,
        "${UNDECLARED_PASSWORD:?set it}",
        "${UNDECLARED_PASSWORD} is used but not in .env.example",
    ),
    "secret with a default": (
        PG_PASSWORD,
        "${POSTGRES_PASSWORD:-hunter2}",
        "${POSTGRES_PASSWORD} has a default; a secret must come from .env only",
    ),
    "literal password in env": (
        f"POSTGRES_PASSWORD: {PG_PASSWORD}",
        "POSTGRES_PASSWORD: hunter2",
        "postgres: POSTGRES_PASSWORD is a literal",
    ),
    "literal password in a URL": (
        f"airflow:{AIRFLOW_DB_PASSWORD}@",
        "airflow:hunter2@",
        "a URL with a literal password",
    ),
    "literal password in JSON": (
        f'"password": "{LEDGER_PASSWORD}"',
        '"password": "hunter2"',
        '"password": "<literal>"',
    ),
    "AWS key": (
        "MLFLOW_S3_ENDPOINT_URL: http://minio:9000",
        "AWS_KEY: AKIAABCDEFGHIJKLMNOP",
        "an AWS access key id",
    ),
    "password= option": ("set -eu", "export PGOPTIONS=password=hunter2", "password=<literal>"),
    "grafana password with a default": (
        "${GRAFANA_ADMIN_PASSWORD:-}",
        "${GRAFANA_ADMIN_PASSWORD:-admin}",
        "${GRAFANA_ADMIN_PASSWORD} has a default; a secret must come from .env only",
    ),
    "grafana password literal": (
        "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:-}",
        "GF_SECURITY_ADMIN_PASSWORD: admin",
        "grafana: GF_SECURITY_ADMIN_PASSWORD is a literal",
    ),
}


@pytest.mark.parametrize("mistake", sorted(RAW_MISTAKES))
def test_raw_checks_report_their_mistake(mistake: str) -> None:
    old, new, expected = RAW_MISTAKES[mistake]
    text = COMPOSE.read_text()
    assert old in text, f"the mutation {mistake!r} no longer applies to docker-compose.yaml"
    raw = yaml.safe_load(text.replace(old, new, 1))
    env_example = read_env_file((ROOT / ".env.example").read_text())
    problems = check_interpolation(raw, env_example) + check_no_literal_secrets(raw)
    assert any(expected in p for p in problems), problems


def test_a_stale_env_example_entry_is_reported() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    env_example = read_env_file((ROOT / ".env.example").read_text()) | {"OLD_VAR": "x"}
    assert check_interpolation(raw, env_example) == ["OLD_VAR in .env.example is not used"]


FROM = "FROM apache/airflow:3.3.2-python3.11"
DOCKER_MISTAKES = {  # (text in the Dockerfile, its replacement, the problem expected)
    "other Airflow": (FROM, FROM.replace("3.3.2", "3.3.1"), "want ['apache/airflow:3.3.2-py"),
    "other Python": (FROM, FROM.replace("3.11", "3.12"), "want ['apache/airflow:3.3.2-python3.11"),
    "no constraints": ("-c /tmp/costaware-src/constraints.txt", "", "not installed with -c"),
    "copy of a missing path": ("root data/", "root nope/", "COPY nope/: no such path"),
}


@pytest.mark.parametrize("mistake", sorted(DOCKER_MISTAKES))
def test_dockerfile_check_reports_its_mistake(mistake: str) -> None:
    old, new, expected = DOCKER_MISTAKES[mistake]
    text = (ROOT / "Dockerfile").read_text()
    assert old in text, f"the mutation {mistake!r} no longer applies to the Dockerfile"
    problems = check_dockerfile(text.replace(old, new), (ROOT / ".dockerignore").read_text())
    assert len(problems) == 1 and expected in problems[0], problems


def test_an_unpinned_dependency_is_reported() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    constraints = re.sub(
        r"^apache-airflow-providers-celery==.*$", "", CONSTRAINTS.read_text(), flags=re.M
    )
    problems = check_constraints(pyproject, constraints)
    assert len(problems) == 1 and "apache-airflow-providers-celery is pinned to None" in problems[0]
    older = CONSTRAINTS.read_text().replace("apache-airflow==3.3.2", "apache-airflow==3.2.0")
    assert "apache-airflow is pinned to 3.2.0" in check_constraints(pyproject, older)[0]


def test_dockerignore_check_reports_sent_state_and_kept_out_sources() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignore = (ROOT / ".dockerignore").read_text()
    without_allow_list = ignore.replace("\n*\n", "\n")
    assert without_allow_list != ignore
    assert ".dockerignore: .venv/bin/python would be sent to the build" in check_dockerfile(
        dockerfile, without_allow_list
    )
    assert "Dockerfile: COPY data/: .dockerignore keeps it out" in check_dockerfile(
        dockerfile, ignore.replace("!data/\n", "")
    )


def test_dockerignore_matching_follows_docker() -> None:
    patterns = ["*", "!include/", "**/__pycache__", "include/*.egg-info"]
    assert dockerignore_excludes(patterns, ".venv/lib/x.py")
    assert not dockerignore_excludes(patterns, "include/costaware/settings.py")
    assert dockerignore_excludes(patterns, "include/costaware/__pycache__/settings.pyc")
    assert dockerignore_excludes(patterns, "include/costaware.egg-info/PKG-INFO")


# --- the PostgreSQL init script, run against the real server ------------------------------


@pytest.mark.postgres
def test_postgres_init_makes_one_isolated_database_per_component() -> None:
    """postgres-init.sh as the postgres image runs it, on 127.0.0.1:5432 (trust auth, so the
    passwords are only checked for being set): three databases, each owned by its own role,
    which can connect to no other; a second run changes nothing; quotes in a password are safe."""
    tag = f"cwinit_{uuid.uuid4().hex[:8]}"
    names = {"COSTAWARE_AIRFLOW_DB": f"{tag}_af", "COSTAWARE_MLFLOW_DB": f"{tag}_ml",
             "COSTAWARE_LEDGER_DB": f"{tag}_lg"}  # fmt: skip
    env = {
        "PATH": os.environ["PATH"], "PGHOST": "127.0.0.1", "PGPORT": "5432",
        "POSTGRES_USER": "postgres", **names, "AIRFLOW_DB_PASSWORD": "a'b\"c",
        "MLFLOW_DB_PASSWORD": "m", "LEDGER_DB_PASSWORD": "l",
    }  # fmt: skip
    script = ROOT / "deploy" / "compose" / "postgres-init.sh"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    try:
        for _ in range(2):
            done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        with admin.cursor() as cur:
            cur.execute(
                "SELECT d.datname, r.rolname, a.rolpassword IS NOT NULL FROM pg_database d "
                "JOIN pg_roles r ON r.oid = d.datdba JOIN pg_authid a ON a.oid = r.oid "
                "WHERE d.datname LIKE %s ORDER BY 1",
                (f"{tag}%",),
            )
            rows = cur.fetchall()
        assert rows == [(n, n, True) for n in sorted(names.values())]
        ledger, airflow = names["COSTAWARE_LEDGER_DB"], names["COSTAWARE_AIRFLOW_DB"]
        own = psycopg2.connect(host="127.0.0.1", user=ledger, dbname=ledger)
        with own, own.cursor() as cur:
            cur.execute("CREATE TABLE t (i int); DROP TABLE t")
        own.close()
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            psycopg2.connect(host="127.0.0.1", user=ledger, dbname=airflow)
        missing = {k: v for k, v in env.items() if k != "LEDGER_DB_PASSWORD"}
        done = subprocess.run(["bash", str(script)], env=missing, capture_output=True, text=True)
        assert done.returncode != 0
        assert "LEDGER_DB_PASSWORD is not set: put it in .env" in done.stderr
    finally:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'DROP ROLE IF EXISTS "{name}"')
        admin.close()


# --- prometheus-token against Airflow's real login route ----------------------------------

API_SERVER = """
import sys, uvicorn
from airflow.api_fastapi.app import create_app
uvicorn.run(create_app(apps="core"), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_prometheus_token_opens_costaware_metrics(airflow_home: Path, tmp_path: Path) -> None:
    """deploy/compose/prometheus-token.sh, run as compose runs it, logs in at Airflow's own
    API app (the simple auth manager's POST /auth/token, with the plugin loaded from plugins/)
    and writes a token that opens /costaware/metrics, the route Prometheus scrapes; a wrong
    password is refused with Airflow's answer and leaves the previous token in place."""
    resolved_env = compose_config(COMPOSE, ROOT / ".env.example")
    assert resolved_env.returncode == 0, resolved_env.stderr
    svc = yaml.safe_load(resolved_env.stdout)["services"]["prometheus-token"]
    script = mounted_from(svc, svc["entrypoint"][-1])
    assert script == str(DEPLOY / "compose/prometheus-token.sh"), svc["entrypoint"]
    password = "Kq3-real_password"
    (tmp_path / "passwords.json").write_text(json.dumps({"admin": password}))
    port = _free_port()
    server_env = os.environ | {
        "AIRFLOW__CORE__AUTH_MANAGER": svc["environment"]["AIRFLOW__CORE__AUTH_MANAGER"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret-" + uuid.uuid4().hex,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "COSTAWARE_HOME": str(tmp_path / "home"),
        "COSTAWARE_PROJECT_ROOT": str(ROOT),
    }
    server_env.pop("COSTAWARE_DB_URL", None)
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-c", API_SERVER, str(port)], env=server_env,
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if _get(f"{base}/costaware/metrics") == 401:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the API app did not start in 60 s"
            time.sleep(0.5)
        token_file = tmp_path / "token" / "airflow-token"
        token_file.parent.mkdir()

        def run(secret: str) -> subprocess.CompletedProcess[str]:
            env = {k: str(v) for k, v in svc["environment"].items()} | {
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "AIRFLOW_URL": base,
                "AIRFLOW_ADMIN_PASSWORD": secret,
                "TOKEN_FILE": str(token_file),
                "REFRESH_SECONDS": "0",
            }
            return subprocess.run(
                ["bash", script], env=env, capture_output=True, text=True, timeout=60
            )

        done = run(password)
        assert done.returncode == 0, done.stderr
        token = token_file.read_text()
        assert _get(f"{base}/costaware/metrics", token) == 200
        assert _get(f"{base}/costaware/metrics", token[:-4] + "AAAA") == 403
        refused = run("wrong-password")
        assert refused.returncode == 1
        assert "login as admin at" in refused.stderr and "answered 401" in refused.stderr
        assert token_file.read_text() == token
        empty = run("")
        assert empty.returncode == 1 and "AIRFLOW_ADMIN_PASSWORD is empty" in empty.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
