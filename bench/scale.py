"""Scale: DAG-file parse time and scheduler loop time for N model configs.

    python bench/scale.py            # N = 1, 10, 100, 300 → bench/results/scale.md (~9 min)
    python bench/scale.py --compare-with fead143   # + that commit's DAG files, same harness
    python bench/scale.py --models 100 --repeats 3 --no-scheduler --out /tmp/scale.md
    python bench/scale.py --quick    # N = 1, 10; 3 repeats; no scheduler; prints only

**Configs.** N model YAMLs are generated from the two shipped ones (``include/models``) into a
temporary folder that ``COSTAWARE_MODELS_DIR`` points at: distinct names, 4–40 features
(some categorical), 0–6 per-column drift settings, schedules (@weekly, @daily, cron, manual),
teams, retries. Every one passes ``costaware.config.load_models``.

**Parse time** is measured the way Airflow 3.3's dag-processor parses a file: the manager
process has Airflow imported and pre-imports the ``airflow.*`` modules a file names
(``_pre_import_airflow_modules``), then *forks* one child per file, and the child runs
``airflow.dag_processing.processor._parse_file`` (stability check, ``BundleDagBag`` of that
one file, serialization of every DAG in it). Here one harness process plays the manager and
forks a child per (file, repetition) that times ``_parse_file`` and reports DAG ids and import
errors. Everything the file imports beyond Airflow (costaware, its YAML loading) is paid in
the child, as in production. Baselines in the same harness, interleaved with the real files:
a DAG file with no DAG, and a trivial one-task DAG (the ratio column). Also timed, each in
its own child: the two halves of ``_parse_file`` (import + build, serialize), and
``import costaware.config``, ``load_models`` parsing every YAML (the first parse after the
configs changed) and ``load_models_for_dags()`` (what three of the four DAG files call on
every parse: parsed YAML reused from ``costaware.config.ParsedYamlCache``, which the
earlier parses of the same run filled, as the dag-processor's earlier parses do).

**Before / after** (``--compare-with REV``, N = 100): REV's DAG files, each parse importing
REV's own ``include/costaware`` (put first on the child's ``sys.path``), are parsed by the
same harness, interleaved with today's files and the baselines, so a loaded machine slows
both alike. Both must build the same DAGs with no import error, or the run fails.

**Real dag-processor pass.** ``airflow dag-processor --num-runs 1`` on a scratch SQLite
Airflow DB: wall time from queueing the files to the end of the pass (2 parsing processes,
including writing the serialized DAGs to the DB), and the DAGs / import errors it stored.
Run twice: first on the empty DB (every DAG is new, the parsed-YAML cache is cold), then
again (the DAGs are stored and unchanged, the cache is warm: what every later re-parse does).

**Scheduler loop time.** On that DB, ``airflow scheduler --num-runs K`` (LocalExecutor). Each
loop's duration is the scheduler's own timer (``scheduler.scheduler_loop_duration``), read
from its "Ran scheduling loop in … ms" line (DEBUG for the scheduler's logger only). Two
phases: every DAG paused (nothing due), then every ``retrain_<m>`` DAG unpaused — every
scheduled model is due at once (start_date 1900, catchup off: one run each, the Monday-00:00
peak of N weekly models; manual-only models get none). ``default_pool`` is set to 0 slots
so the first task of each run stays *scheduled*: the loops measure the scheduler creating and
examining N runs, not N task processes competing for the CPU. The idle sleep between loops is
cut to 0.05 s to save wall time (the loop timer excludes the sleep).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
RESULTS = ROOT / "bench" / "results"
TEMPLATES = ("elec2", "weather")
PARSE_GOAL_S = 2.0
TEAMS = (
    "energy-forecasting",
    "agri-insights",
    "fraud",
    "pricing",
    "supply-chain",
    "churn",
    "ads-ranking",
    "risk",
)
# (schedule, weight): most models retrain weekly; some daily, monthly, on a cron line, or
# only when triggered.
SCHEDULES = (("@weekly", 5), ("@daily", 2), ("0 6 * * 1", 1), ("@monthly", 1), (None, 1))
FEATURE_COUNTS = (4, 5, 8, 12, 20, 30, 40)
DRIFT_CHOICES = (("psi", 0.2), ("wasserstein", 0.1), ("ks", 0.05), ("jensenshannon", 0.1))

EMPTY_DAG_FILE = '"""Baseline: an airflow DAG file with no dag in it (imports nothing)."""\n'
TRIVIAL_DAG_FILE = '''"""Baseline: one trivial airflow DAG with one task."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task


@dag(schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), catchup=False)
def trivial() -> None:
    @task
    def noop() -> None:
        return None

    noop()


trivial()
'''


# --------------------------------------------------------------------------------- configs


def make_configs(n: int, folder: Path, seed: int = 0) -> list[Path]:
    """Write ``n`` valid, varied model configs to ``folder`` (emptied first); returns paths.

    Model i copies template ``TEMPLATES[i % 2]`` (its data, target, training, costs) and
    varies what changes a DAG or its parse: name, feature list, drift columns, schedule,
    retries, team, env, budget."""
    # Imported here, not at the top: the parse harness must not import costaware (its
    # children would not parse cold).
    from costaware.config import NUMERIC_ONLY_METHODS

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    rng = random.Random(seed)
    templates = {
        t: yaml.safe_load((ROOT / "include" / "models" / f"{t}.yaml").read_text())
        for t in TEMPLATES
    }
    paths = []
    for i in range(n):
        base = TEMPLATES[i % len(TEMPLATES)]
        raw = json.loads(json.dumps(templates[base]))  # a deep copy
        name = f"{base}_{i:03d}"
        features = list(raw["features"])
        k = max(len(features), rng.choice(FEATURE_COUNTS))
        for j in range(len(features), k):
            if rng.random() < 0.25:
                cats = [f"c{c}" for c in range(rng.randint(3, 8))]
                features.append({"name": f"cat_{j:02d}", "type": "categorical", "categories": cats})
            else:
                lo = round(rng.uniform(-100, 100), 1)
                features.append(
                    {"name": f"num_{j:02d}", "min": lo, "max": lo + round(rng.uniform(1, 500), 1)}
                )
        columns = {}
        for f in rng.sample(features, rng.randint(0, min(6, len(features)))):
            choices = DRIFT_CHOICES
            if f.get("type") == "categorical":  # distances between numbers do not apply
                choices = tuple(c for c in DRIFT_CHOICES if c[0] not in NUMERIC_ONLY_METHODS)
            method, threshold = rng.choice(choices)
            columns[f["name"]] = {"method": method, "threshold": threshold}
        schedule = rng.choices([s for s, _ in SCHEDULES], [w for _, w in SCHEDULES])[0]
        raw.update(
            name=name,
            description=f"{raw['description'].strip()} (generated by bench/scale.py from "
            f"{base}.yaml)",
            features=features,
            validation_suite=f"{name}_batch",
            tags={
                "model": name,
                "team": rng.choice(TEAMS),
                "env": rng.choice(["dev", "staging", "prod"]),
            },
            airflow={"schedule": schedule, "retries": rng.randint(1, 3)},
        )
        raw["drift"] = {**raw.get("drift", {}), "columns": columns}
        raw["cost_policy"] = {
            **raw["cost_policy"],
            "monthly_budget_usd": rng.choice([2.0, 5.0, 20.0, 100.0]),
        }
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- environment


def scratch_env(home: Path, models_dir: Path) -> dict[str, str]:
    """The environment of a private Airflow + costaware state under ``home``."""
    from costaware.app.airflow_env import airflow_env
    from costaware.settings import Settings

    settings = Settings.from_env({"COSTAWARE_HOME": str(home), "COSTAWARE_PROJECT_ROOT": str(ROOT)})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "COSTAWARE"))}
    env.update(airflow_env(settings))
    env["COSTAWARE_MODELS_DIR"] = str(models_dir)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _airflow() -> str:
    exe = Path(sys.executable).with_name("airflow")
    return str(exe) if exe.exists() else "airflow"


def _run(cmd: list[str], env: dict[str, str], log: Path, timeout: float = 600) -> str:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    text = log.read_text()
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}); see {log}:\n{text[-3000:]}"
        )
    return text


# ---------------------------------------------------------------------------- parse time


def parse_times(
    files: dict[str, Path],
    models_dir: Path,
    work: Path,
    repeats: int,
    warmup: int = 1,
    sys_paths: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Fork-parse each file ``warmup + repeats`` times in one harness process (see the module
    docstring). ``sys_paths``: by label, a folder the child puts first on ``sys.path`` before
    parsing that file (another revision's ``include/``). Returns ``{"files": {label:
    {"seconds": [...], "dags": [...], "errors": {...}}}, "config": {"import_s": [...],
    "parse_s": [...], "load_s": [...], "models": n}}``."""
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "parse_spec.json"
    out = work / "parse_result.json"
    spec.write_text(
        json.dumps(
            {
                "files": {k: str(v) for k, v in files.items()},
                "repeats": repeats,
                "warmup": warmup,
                "sys_paths": {k: str(v) for k, v in (sys_paths or {}).items()},
                "out": str(out),
            }
        )
    )
    env = scratch_env(work / "home", models_dir)
    _run(
        [sys.executable, str(Path(__file__).resolve()), "--parse-worker", str(spec)],
        env,
        work / "parse_worker.log",
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _in_child(fn: Any) -> Any:
    """Run ``fn()`` in a forked child (as the dag-processor runs each parse); return its JSON."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the harness
        os.close(read_fd)
        code = 0
        try:
            payload = json.dumps(fn()).encode()
        except BaseException as exc:  # report, don't hide: the parent raises it
            payload = json.dumps({"crash": repr(exc)}).encode()
            code = 1
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    got = json.loads(data)
    if isinstance(got, dict) and "crash" in got:
        raise RuntimeError(f"parse child crashed: {got['crash']}")
    return got


def _parse_worker(spec_path: str) -> None:
    """The harness: plays the dag-processor manager, forks one parse per file and repetition."""
    spec = json.loads(Path(spec_path).read_text())
    import airflow.dag_processing.manager  # noqa: F401  (what the manager process has loaded)
    import structlog
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.dag_processing.processor import (
        DagFileParseRequest,
        _parse_file,
        _pre_import_airflow_modules,
        _serialize_dags,
    )

    log = structlog.get_logger("bench.scale")
    files = {k: Path(v) for k, v in spec["files"].items()}
    for path in files.values():
        _pre_import_airflow_modules(str(path), log)
    if any(m == "costaware" or m.startswith("costaware.") for m in sys.modules):
        raise RuntimeError("the harness imported costaware: children would not parse cold")

    def first_on_path(label: str) -> None:
        """Another revision's library for this file's parse (the child is discarded after)."""
        extra = spec["sys_paths"].get(label)
        if extra:
            sys.path.insert(0, extra)

    def parse(label: str, path: Path) -> Any:
        def run() -> dict[str, Any]:
            first_on_path(label)
            msg = DagFileParseRequest(
                file=str(path), bundle_path=path.parent, bundle_name="bench", callback_requests=[]
            )
            t0 = time.perf_counter()
            res = _parse_file(msg, log)
            seconds = time.perf_counter() - t0
            assert res is not None
            return {
                "seconds": seconds,
                "dags": sorted(d.dag_id for d in res.serialized_dags),
                "errors": {str(k): str(v) for k, v in (res.import_errors or {}).items()},
            }

        return run

    def breakdown(label: str, path: Path) -> Any:
        """The two halves of ``_parse_file`` on their own: import the file (build its DAGs),
        then serialize them."""

        def run() -> dict[str, float]:
            first_on_path(label)
            t0 = time.perf_counter()
            bag = BundleDagBag(
                dag_folder=str(path),
                bundle_path=path.parent,
                bundle_name="bench",
                load_op_links=False,
            )
            t1 = time.perf_counter()
            _serialize_dags(bag, log)
            return {"bag_s": t1 - t0, "serialize_s": time.perf_counter() - t1}

        return run

    def config_load() -> dict[str, Any]:
        t0 = time.perf_counter()
        from costaware.config import load_models, load_models_for_dags
        from costaware.settings import Settings

        t1 = time.perf_counter()
        load_models(Settings.from_env().models_dir)  # every YAML parsed: no cache
        t2 = time.perf_counter()
        found = load_models_for_dags()  # what a DAG file pays: the cache the parses filled
        t3 = time.perf_counter()
        return {
            "import_s": t1 - t0,
            "parse_s": t2 - t1,
            "load_s": t3 - t2,
            "models": len(found.configs),
        }

    out: dict[str, Any] = {
        "files": {
            k: {
                "seconds": [],
                "bag_s": [],
                "serialize_s": [],
                "dags": [],
                "errors": {},
            }
            for k in files
        },
        "config": {"import_s": [], "parse_s": [], "load_s": [], "models": 0},
    }
    for rep in range(spec["warmup"] + spec["repeats"]):
        keep = rep >= spec["warmup"]
        # Interleaved, so load from other jobs on the machine hits every row alike.
        for label, path in files.items():
            got = _in_child(parse(label, path))
            parts = _in_child(breakdown(label, path))
            if keep:
                row = out["files"][label]
                row["seconds"].append(got["seconds"])
                row["bag_s"].append(parts["bag_s"])
                row["serialize_s"].append(parts["serialize_s"])
                row["dags"], row["errors"] = got["dags"], got["errors"]
        got = _in_child(config_load)
        if keep:
            cfg = out["config"]
            for key in ("import_s", "parse_s", "load_s"):
                cfg[key].append(got[key])
            cfg["models"] = got["models"]
    Path(spec["out"]).write_text(json.dumps(out))


def checkout(rev: str, dest: Path) -> tuple[str, Path, Path]:
    """REV's ``dags/`` and ``include/costaware/`` extracted into ``dest`` (``git archive``):
    returns (short commit, its dags folder, the folder to put first on ``sys.path``)."""
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=False,
    )
    if short.returncode != 0:
        raise SystemExit(f"--compare-with {rev!r}: not a revision of {ROOT}: {short.stderr}")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "dags", "include/costaware"],
        capture_output=True,
        check=True,
    )
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return short.stdout.strip(), dest / "dags", dest / "include"


def baseline_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty_dag_file.py").write_text(EMPTY_DAG_FILE)
    (folder / "trivial_dag.py").write_text(TRIVIAL_DAG_FILE)
    return {
        "(baseline) no DAG in the file": folder / "empty_dag_file.py",
        "(baseline) one trivial DAG": folder / "trivial_dag.py",
    }


# ---------------------------------------------------------- dag-processor and scheduler

LOOP_RE = re.compile(r"Ran scheduling loop in ([0-9.]+) ms")
TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")
SCHEDULER_ENV = {
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.jobs.scheduler_job_runner=debug",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.05",
}


def _ts(line: str) -> datetime:
    m = TS_RE.match(line)
    if not m:
        raise ValueError(f"no timestamp in log line: {line[:120]!r}")
    return datetime.fromisoformat(m.group(1))


class AirflowDBs:
    """SQLite Airflow metadata DBs for the scheduler runs: one ``airflow db migrate`` into a
    template, copied for each N. (PostgreSQL is not offered: Airflow 3.3 opens its metadata
    DB with an async driver too, asyncpg or psycopg 3, and neither is in the pinned set.)"""

    def __init__(self, work: Path) -> None:
        self.work = work

    def _url(self, name: str) -> str:
        return f"sqlite:///{self.work / name / 'airflow.db'}"

    def migrate_template(self) -> None:
        (self.work / "template").mkdir(parents=True, exist_ok=True)
        env = scratch_env(self.work / "template_home", self.work / "no_models")
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self._url("template")
        _run([_airflow(), "db", "migrate"], env, self.work / "db_migrate.log")

    def fresh(self, name: str) -> str:
        (self.work / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(self.work / "template" / "airflow.db", self.work / name / "airflow.db")
        return self._url(name)


def _pass_seconds(text: str) -> float:
    """One dag-processor pass, from queueing the files to the end of the loop (its log)."""
    lines = text.splitlines()
    start = next(_ts(x) for x in lines if re.search(r"Adding \d+ new files", x))
    end = next(_ts(x) for x in lines if "Exiting dag parsing loop" in x)
    return (end - start).total_seconds()


def _db_counts(url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:

            def one(q: str) -> int:
                return int(conn.execute(sa.text(q)).scalar_one())

            states = conn.execute(
                sa.text("select state, count(*) from task_instance group by state")
            ).all()
            return {
                "serialized_dags": one("select count(*) from serialized_dag"),
                "import_errors": one("select count(*) from import_error"),
                "dag_runs": one("select count(*) from dag_run"),
                "ti_states": {str(state): int(count) for state, count in states},
            }
    finally:
        engine.dispose()


def _loops(text: str) -> dict[str, Any]:
    """Loop durations (ms) and the scheduler's DEBUG lines per loop (their logging cost is
    inside the loop timer)."""
    durations, lines_per_loop, debug = [], [], 0
    for line in text.splitlines():
        m = LOOP_RE.search(line)
        if m:
            durations.append(float(m.group(1)))
            lines_per_loop.append(debug)
            debug = 0
        elif "[debug" in line:
            debug += 1
    if not durations:
        raise RuntimeError(
            "no 'Ran scheduling loop in … ms' line in the scheduler's log: Airflow's scheduler "
            "log changed; update LOOP_RE in bench/scale.py"
        )
    return {"ms": durations, "debug_lines": lines_per_loop}


_DEBUG_LINE_COST = """
import sys, time
from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
log, n = SchedulerJobRunner.logger(), 2000
t0 = time.perf_counter()
for i in range(n):
    log.debug("DAG %s not changed structure, skipping dagrun.verify_integrity", f"retrain_{i}")
print((time.perf_counter() - t0) / n * 1000, file=sys.stderr)
"""


def debug_line_cost_ms(work: Path) -> float:
    """What one of the scheduler's DEBUG lines costs (same logger, config and output to a
    file as in the scheduler runs): bounds the logging share of a measured loop."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**scratch_env(work / "home", work / "no_models"), **SCHEDULER_ENV}
    with (work / "lines.log").open("w") as out:
        done = subprocess.run(
            [sys.executable, "-c", _DEBUG_LINE_COST],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
    return float(done.stderr.strip().splitlines()[-1])


def scheduler_bench(
    n: int, models_dir: Path, work: Path, db_url: str, loops: int
) -> dict[str, Any]:
    """Serialize the DAGs of ``n`` models with the real dag-processor, then time scheduler
    loops with every DAG paused, and with every retrain DAG due at once."""
    env = scratch_env(work / "home", models_dir)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db_url
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    af = _airflow()

    out: dict[str, Any] = {}
    for key in ("dag_processor_s", "dag_processor_again_s"):  # new DAGs; then stored ones
        text = _run([af, "dag-processor", "--num-runs", "1"], env, work / f"{key}.log")
        out[key] = _pass_seconds(text)
        out.setdefault("after_parse", _db_counts(db_url))

    sched_env = {**env, **SCHEDULER_ENV}
    cmd = [af, "scheduler", "--skip-serve-logs", "--num-runs"]
    text = _run(cmd + [str(min(loops, 20))], sched_env, work / "scheduler_paused.log")
    out["paused"] = _loops(text)

    _run(
        [af, "pools", "set", "default_pool", "0", "held by bench/scale.py"], env, work / "pool.log"
    )
    _run(
        [af, "dags", "unpause", "-y", "--treat-dag-id-as-regex", "^retrain_"],
        env,
        work / "unpause.log",
    )
    text = _run(cmd + [str(loops)], sched_env, work / "scheduler_due.log")
    out["due"] = _loops(text)
    out["after_due"] = _db_counts(db_url)
    return out


# ------------------------------------------------------------------------------- reporting


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


TRIVIAL = "(baseline) one trivial DAG"


def parse_table(parse: dict[int, dict[str, Any]]) -> list[str]:
    rows = [
        "| N models | DAG file | DAGs | import errors | median s | min–max s | import + build s "
        "| serialize s | × trivial DAG |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, res in parse.items():
        trivial = _med(res["files"][TRIVIAL]["seconds"])
        total, real = 0.0, 0
        for label, r in res["files"].items():
            s = r["seconds"]
            if not label.startswith("(baseline)"):
                total += _med(s)
                real += 1
            elif n != next(iter(parse)):
                continue  # the baselines once (each N's harness measured them too)
            rows.append(
                f"| {n} | {label} | {len(r['dags'])} | {len(r['errors'])} | {_med(s):.3f} | "
                f"{min(s):.3f}–{max(s):.3f} | {_med(r['bag_s']):.3f} | "
                f"{_med(r['serialize_s']):.3f} | {_med(s) / trivial:.1f} |"
            )
        dags = sum(len(r["dags"]) for k, r in res["files"].items() if not k.startswith("("))
        errs = sum(len(r["errors"]) for r in res["files"].values())
        verdict = "within" if total <= PARSE_GOAL_S else "**over**"
        rows.append(
            f"| {n} | **all {real} DAG files** | {dags} | {errs} | **{total:.3f}** | | | | "
            f"{total / trivial:.1f} ({verdict} the {PARSE_GOAL_S:.0f} s goal) |"
        )
    return rows


def compare_table(res: dict[str, Any], rev: str) -> list[str]:
    """REV's DAG files against today's, parsed by one harness, interleaved (``--compare-with``)."""
    suffix = f" @ {rev}"
    files = res["files"]
    names = sorted(
        {k.removesuffix(suffix) for k in files if not k.startswith("(baseline)")},
        key=lambda k: (k not in files, k),
    )

    def dags(before: bool) -> list[str]:
        return sorted(
            d
            for k, r in files.items()
            if not k.startswith("(baseline)") and k.endswith(suffix) == before
            for d in r["dags"]
        )

    # Same DAGs, no import error on either side, or the comparison means nothing.
    errors = {k: r["errors"] for k, r in files.items() if r["errors"]}
    if dags(before=True) != dags(before=False) or errors:
        raise RuntimeError(f"--compare-with {rev}: the DAGs differ, or import errors: {errors}")
    trivial = _med(files[TRIVIAL]["seconds"])
    rows = [
        f"| DAG file | DAGs | {rev} s (import + build / serialize) | today s (import + build / "
        f"serialize) | today / {rev} |",
        "|---|---:|---:|---:|---:|",
    ]

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "—"
        return f"{_med(r['seconds']):.3f} ({_med(r['bag_s']):.3f} / {_med(r['serialize_s']):.3f})"

    totals = {"before": 0.0, "today": 0.0}
    for name in names:
        before, today = files.get(name + suffix), files.get(name)
        totals["before"] += _med(before["seconds"]) if before else 0.0
        totals["today"] += _med(today["seconds"]) if today else 0.0
        ratio = (
            f"{_med(today['seconds']) / _med(before['seconds']):.2f}×" if before and today else ""
        )
        built = len((today or before or {"dags": []})["dags"])
        rows.append(f"| {name} | {built} | {cell(before)} | {cell(today)} | {ratio} |")
    b, t, n_dags = totals["before"], totals["today"], len(dags(before=False))
    rows.append(
        f"| **all DAG files** | {n_dags} | **{b:.3f}** ({b / trivial:.0f}× trivial) "
        f"| **{t:.3f}** ({t / trivial:.0f}× trivial) | **{t / b:.2f}×** |"
    )
    rows.append(f"| (baseline) one trivial DAG | 1 | {trivial:.3f} | {trivial:.3f} | |")
    return rows


def config_table(parse: dict[int, dict[str, Any]]) -> list[str]:
    rows = [
        "| N models | `import costaware.config` s | every YAML parsed s | per config ms | "
        "`load_models_for_dags()`, cache warm s | per config ms | × 3 files per parse pass s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, res in parse.items():
        c = res["config"]
        imp, cold, warm = _med(c["import_s"]), _med(c["parse_s"]), _med(c["load_s"])
        rows.append(
            f"| {n} | {imp:.3f} | {cold:.3f} | {1000 * cold / max(n, 1):.2f} | {warm:.3f} | "
            f"{1000 * warm / max(n, 1):.2f} | {3 * (imp + warm):.3f} |"
        )
    return rows


def scheduler_table(sched: dict[int, dict[str, Any]], line_ms: float) -> list[str]:
    rows = [
        "| N models | dag-processor pass s: new DAGs / again | DAGs stored | import errors "
        "| paused: median loop ms | due: loops | due: median / p90 / max loop ms "
        "| due: all loops s | runs created / scheduled models | first TIs scheduled "
        "| DEBUG lines per loop → their cost ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in sched.items():
        due = r["due"]["ms"]
        lines = _med(r["due"]["debug_lines"])
        rows.append(
            f"| {n} | {r['dag_processor_s']:.2f} / {r['dag_processor_again_s']:.2f} "
            f"| {r['after_parse']['serialized_dags']} "
            f"| {r['after_parse']['import_errors']} | {_med(r['paused']['ms']):.1f} | {len(due)} "
            f"| {_med(due):.1f} / {_pct(due, 0.9):.1f} / {max(due):.1f} | {sum(due) / 1000:.2f} "
            f"| {r['after_due']['dag_runs']} / {r['scheduled_models']} "
            f"| {r['after_due']['ti_states'].get('scheduled', 0)} "
            f"| {lines:.0f} → {lines * line_ms:.1f} |"
        )
    return rows


def machine_note() -> str:
    load = os.getloadavg()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)"
    )


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, nargs="+", default=[1, 10, 100, 300])
    ap.add_argument("--repeats", type=int, default=5, help="parses per file (median reported)")
    ap.add_argument("--loops", type=int, default=40, help="scheduler loops with every DAG due")
    ap.add_argument("--no-scheduler", action="store_true")
    ap.add_argument(
        "--compare-with",
        metavar="REV",
        help="also parse this git revision's DAG files (with its own costaware) at N = 100",
    )
    ap.add_argument("--quick", action="store_true", help="N = 1, 10; 3 repeats; no scheduler")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.md")
    ap.add_argument("--note", default="", help="what else ran on the machine (for the results)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    ap.add_argument("--parse-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.parse_worker:
        _parse_worker(args.parse_worker)
        return 0
    if args.quick:
        args.models, args.repeats, args.no_scheduler = [1, 10], 3, True

    from costaware.config import load_models

    t_start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="costaware-scale-"))
    dag_files = {p.name: p for p in sorted(DAGS.glob("*.py"))}
    parse: dict[int, dict[str, Any]] = {}
    compare: dict[str, Any] = {}
    n_compare = 100 if 100 in args.models else max(args.models)
    loads: dict[int, tuple[float, float]] = {}
    sched: dict[int, dict[str, Any]] = {}
    db = None if args.no_scheduler else AirflowDBs(scratch / "airflow_dbs")
    line_ms = 0.0
    try:
        # Parsed in the same harness as each N's DAG files, interleaved with them.
        files = {**baseline_files(scratch / "baseline"), **dag_files}
        if db is not None:
            db.migrate_template()
            line_ms = debug_line_cost_ms(scratch / "debug_line_cost")
        for n in args.models:
            models_dir = scratch / f"models_{n}"
            make_configs(n, models_dir)
            found = load_models(models_dir)
            if found.errors or len(found.configs) != n:
                raise RuntimeError(f"generated configs are not valid: {found.error_text()}")
            print(f"N={n}: parsing {len(dag_files)} DAG files × {args.repeats} …", flush=True)
            load_before = os.getloadavg()[0]
            parse[n] = parse_times(files, models_dir, scratch / f"parse_{n}", args.repeats)
            loads[n] = (load_before, os.getloadavg()[0])
            model_dags = sum(
                1
                for r in parse[n]["files"].values()
                for d in r["dags"]
                if d.startswith(("retrain_", "rollback_"))
            )
            errors = {k: r["errors"] for k, r in parse[n]["files"].items() if r["errors"]}
            if model_dags != 2 * n or errors:
                raise RuntimeError(f"N={n}: {model_dags} model DAGs (want {2 * n}); {errors}")
            if db is not None:
                print(f"N={n}: dag-processor pass and scheduler loops …", flush=True)
                url = db.fresh(f"n{n}")
                sched[n] = scheduler_bench(n, models_dir, scratch / f"sched_{n}", url, args.loops)
                # Models with `schedule: null` are manual-only: no run is due for them.
                sched[n]["scheduled_models"] = sum(
                    1 for c in found.configs.values() if c.airflow.schedule is not None
                )
        if args.compare_with:
            rev, rev_dags, rev_include = checkout(args.compare_with, scratch / "rev")
            old = {f"{p.name} @ {rev}": p for p in sorted(rev_dags.glob("*.py"))}
            print(f"N={n_compare}: parsing {rev}'s DAG files beside today's …", flush=True)
            load_before = os.getloadavg()[0]
            compare = {
                "rev": rev,
                "res": parse_times(
                    {**files, **old},
                    scratch / f"models_{n_compare}",
                    scratch / "compare",
                    args.repeats,
                    sys_paths=dict.fromkeys(old, rev_include),
                ),
            }
            compare["load"] = (load_before, os.getloadavg()[0])
    finally:
        if args.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    lines = [
        "# Scale: DAG parse time and scheduler loop time (`make bench-scale`)",
        "",
        f"Run: {machine_note()}. Wall time of the benchmark: "
        f"{time.perf_counter() - t_start:.0f} s." + (f" {args.note}" if args.note else ""),
        "",
        f"## Parse time per DAG file (fork-parse as the dag-processor does; median of "
        f"{args.repeats}, after 1 warm-up)",
        "",
        *parse_table(parse),
        "",
        "1-min load average while each N was parsed (start → end): "
        + ", ".join(f"N = {n}: {a:.1f} → {b:.1f}" for n, (a, b) in loads.items())
        + ".",
        "",
        "## Model configs loaded by each DAG file (in a forked child)",
        "",
        *config_table(parse),
    ]
    if compare:
        a, b = compare["load"]
        lines += [
            "",
            f"## Before / after: {compare['rev']}'s DAG files and library against today's "
            f"(N = {n_compare}, one harness, interleaved; median of {args.repeats})",
            "",
            *compare_table(compare["res"], compare["rev"]),
            "",
            f"1-min load average during this run: {a:.1f} → {b:.1f}.",
        ]
    if sched:
        lines += [
            "",
            f"## Real dag-processor pass and scheduler loops (SQLite Airflow DB, LocalExecutor; "
            f"{args.loops} loops "
            f"with every retrain DAG due, `default_pool` at 0 slots)",
            "",
            *scheduler_table(sched, line_ms),
            "",
            f"One DEBUG line of the scheduler's logger costs {line_ms:.3f} ms here (measured "
            "with the same logging config and output); the last column bounds the logging share "
            "of a loop.",
        ]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
