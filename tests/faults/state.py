"""A costaware state as plain data, and the difference between a faulted run's and a clean one's.

``capture`` runs in a child process (``Runner.call``) and reads the state the way an
operator would: the MLflow registry (versions, aliases, tags, and every version's
predictions on fixed rows), every table of the ledger, and the files under
``COSTAWARE_HOME``. ``diff`` compares two captures and sorts each difference into:

* ``lost`` — something the clean run has that the faulted run does not (a row, a file, a
  version, an alias), or has with another value: this must be 0;
* ``duplicated`` — more of something than the clean run has (a second version, an extra
  row, an orphaned MLflow run);
* ``leftover`` — debris: ``*.tmp`` files, files left in the landing zone, cost rows still
  ``running``;
* ``extra_spend`` — allowed and listed: a training attempt the kill itself cost (a cost row
  the clean run does not have, with ``status`` ``lost``). It is real money and must be
  recorded; it is not a loss of state.

Local training bills wall time ((start-up overhead + seconds) × the instance price), so
dollars and seconds of training are compared with a tolerance of ``WALL_TOLERANCE_S``
seconds of the on-demand price of the model's instance (and that many seconds of runtime),
not exactly. Everything else is compared exactly, predictions bit for bit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .chain import MODEL

KINDS = ("lost", "duplicated", "leftover", "extra_spend")
WALL_TOLERANCE_S = 20.0
# Fields whose value is (a function of) the wall time a training attempt took.
WALL_USD = {"usd"}
WALL_SECONDS = {"runtime_s", "billed_s", "seconds", "billed_seconds"}
DROP_COLUMNS = {"id", "created_at", "updated_at"}
SKIP_DIRS = {"airflow", "logs", "cache"}  # cache: parsed model YAMLs (derived, keyed by content)
SKIP_FILES = {"ledger.db", "mlflow.db"}
PRESENCE_ONLY_DIRS = {"reports"}  # contents carry timings; presence is what is checked


# -- capture ---------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _ledger(db_url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    from costaware.store import ledger as led

    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        tables: dict[str, Any] = {}
        keys: dict[str, list[str]] = {}
        with engine.connect() as conn:
            for name, table in sorted(meta.tables.items()):
                rows = [
                    {k: _plain(v) for k, v in r._mapping.items() if k not in DROP_COLUMNS}
                    for r in conn.execute(sa.select(table))
                ]
                tables[name] = rows
                known = led.metadata.tables.get(name)
                uniques = (
                    [
                        [c.name for c in con.columns]
                        for con in known.constraints
                        if isinstance(con, sa.UniqueConstraint)
                    ]
                    if known is not None
                    else []
                )
                cols = [c.name for c in table.columns if c.name not in DROP_COLUMNS]
                keys[name] = uniques[0] if uniques else cols
        return {"tables": tables, "keys": keys}
    finally:
        engine.dispose()


def _registry(settings: Any, rows_path: str) -> dict[str, Any]:
    import pandas as pd

    from costaware.config import get_model
    from costaware.models.registry import Registry
    from costaware.models.scoring import score

    cfg = get_model(settings.models_dir, MODEL)
    reg = Registry(settings.mlflow_uri, settings.mlflow_artifacts)
    client = reg.client
    try:
        model = client.get_registered_model(MODEL)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            model = None
        else:
            raise
    frame = pd.read_parquet(rows_path)
    versions: dict[str, Any] = {}
    version_runs = set()
    if model is not None:
        for mv in client.search_model_versions(f"name='{MODEL}'"):
            version_runs.add(mv.run_id)
            run = client.get_run(mv.run_id) if mv.run_id else None
            preds = score(reg.load(MODEL, str(mv.version)), frame, cfg.feature_names)
            versions[str(mv.version)] = {
                "status": str(mv.status),
                "tags": dict(mv.tags),
                "params": dict(run.data.params) if run else {},
                "predictions_sha256": hashlib.sha256(preds.astype("<f8").tobytes()).hexdigest(),
                "predictions": [float(x) for x in preds],
            }
    exp = client.get_experiment_by_name(f"costaware/{MODEL}")
    runs = []
    if exp is not None:
        from mlflow.entities import ViewType

        for r in client.search_runs(
            [exp.experiment_id], run_view_type=ViewType.ALL, max_results=10000
        ):
            runs.append(
                {
                    "run_key": r.data.tags.get("costaware.run_key", ""),
                    "has_version": r.info.run_id in version_runs,
                }
            )
    return {
        "exists": model is not None,
        "aliases": {str(k): str(v) for k, v in (model.aliases.items() if model else [])},
        "versions": versions,
        "runs": sorted(runs, key=lambda r: (r["run_key"], r["has_version"])),
    }


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(home: Path) -> dict[str, Any]:
    files: dict[str, str] = {}
    tmp: list[str] = []
    artifacts = 0
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(home)
        top = rel.parts[0]
        if top in SKIP_DIRS or rel.name.startswith(".costaware-lock-"):
            continue
        if ".tmp" in rel.name:
            tmp.append(str(rel))
        if top == "work":  # the training scratch folder: only debris is checked there
            continue
        if top == "mlartifacts":
            artifacts += 1
            continue
        if rel.name.startswith(tuple(SKIP_FILES)):  # the databases (and -journal, -wal)
            continue
        if top in PRESENCE_ONLY_DIRS:
            files[str(rel)] = "present"
        elif top == "quarantine" and rel.name == "validation.json":
            files[str(rel)] = "present"
        else:
            files[str(rel)] = _sha(path)
    return {"files": files, "tmp": tmp, "artifact_files": artifacts}


def capture(rows_path: str) -> dict[str, Any]:
    """The whole state of the costaware home this process points at (``Settings.from_env``)."""
    from costaware.settings import Settings

    settings = Settings.from_env()
    return {
        "registry": _registry(settings, rows_path),
        "ledger": _ledger(settings.db_url),
        "files": _files(settings.home),
    }


# -- diff ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    kind: str  # lost | duplicated | leftover | extra_spend
    where: str
    clean: Any = None
    faulted: Any = None

    def line(self) -> str:
        clean, faulted = _short(self.clean), _short(self.faulted)
        return f"{self.kind:<11} {self.where}: clean={clean} faulted={faulted}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(v: Any, n: int = 160) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


@dataclass(frozen=True)
class Tolerance:
    usd: float
    seconds: float = WALL_TOLERANCE_S
    # What the faulted run spent on top of the clean one (attempts the kill cost): a total
    # of training dollars may differ from the clean run's by exactly that.
    extra_usd: float = 0.0
    extra_unknown: bool = False


def _same_usd(a: float | None, b: float | None, tol: Tolerance) -> bool:
    if a is None or b is None:
        return a is b or (b is None and tol.extra_unknown)
    if abs(a - b) <= tol.usd:
        return True
    # A total that includes the extra attempts: each of them and the total bill wall time.
    return tol.extra_usd > 0 and abs(b - a - tol.extra_usd) <= 2 * tol.usd


def _same(a: Any, b: Any, key: str, tol: Tolerance) -> bool:
    """Equal, except wall-time dollars and seconds (within the tolerance)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], k, tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, key, tol) for x, y in zip(a, b, strict=True))
    if key in WALL_USD and (a is None or b is None):
        return _same_usd(a, b, tol)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if key in WALL_USD:
            return _same_usd(a, b, tol)
        if key in WALL_SECONDS:
            return abs(a - b) <= tol.seconds
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if isinstance(a, str) and isinstance(b, str) and key == "attempts":
        return True  # the training log line "spot✓ → …" — checked through the cost rows
    return bool(a == b)


def _changed_fields(a: dict[str, Any], b: dict[str, Any], tol: Tolerance) -> dict[str, Any]:
    return {
        k: (a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if not _same(a.get(k), b.get(k), k, tol)
    }


def _key(row: dict[str, Any], cols: list[str]) -> str:
    return "/".join(str(row.get(c)) for c in cols)


# A training attempt is the same attempt when these agree (dollars and seconds within the
# tolerance). Not the attempt's number: an attempt the kill cost shifts the numbers after it.
COST_MATCH = (
    "capacity",
    "status",
    "interruptions",
    "instance_type",
    "price_source",
    "usage_date",
    "tags",
    "usd",
    "runtime_s",
)


def _attempt_order(row: dict[str, Any]) -> tuple[Any, ...]:
    parts = str(row.get("attempt", "")).split("/")
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def diff_costs(
    clean: list[dict[str, Any]], faulted: list[dict[str, Any]], tol: Tolerance
) -> tuple[list[Finding], Tolerance]:
    """Every attempt the clean run recorded must be among the faulted run's, in order; the
    faulted run's other attempts are what the kill cost (``extra_spend``) — unless still
    ``running`` (``leftover``: nobody settled it)."""
    out: list[Finding] = []
    strict = Tolerance(tol.usd, tol.seconds)
    groups: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}
    for side, rows in ((0, clean), (1, faulted)):
        for r in rows:
            g = groups.setdefault((r.get("model"), r.get("run_id"), r.get("purpose")), ([], []))
            g[side].append(r)
    extra_usd, unknown = 0.0, False
    for _group, (a_rows, b_rows) in sorted(groups.items(), key=lambda kv: str(kv[0])):
        a_rows.sort(key=_attempt_order)
        b_rows.sort(key=_attempt_order)
        j, extras = 0, []
        for ra in a_rows:
            hit = next(
                (
                    jj
                    for jj in range(j, len(b_rows))
                    if all(_same(ra.get(c), b_rows[jj].get(c), c, strict) for c in COST_MATCH)
                ),
                None,
            )
            if hit is None:
                near = b_rows[j] if j < len(b_rows) else None
                diff_ = _changed_fields(
                    {c: ra.get(c) for c in COST_MATCH},
                    {c: (near or {}).get(c) for c in COST_MATCH},
                    strict,
                )
                out.append(
                    Finding("lost", f"ledger.costs[{_key(ra, ['run_id', 'attempt'])}]", ra, diff_)
                )
                continue
            extras += b_rows[j:hit]
            j = hit + 1
        extras += b_rows[j:]
        for e in extras:
            where = f"ledger.costs[{_key(e, ['run_id', 'purpose', 'attempt'])}]"
            if e.get("status") == "running":
                out.append(Finding("leftover", where + " still running", None, _cost_line(e)))
                continue
            out.append(Finding("extra_spend", where, None, _cost_line(e)))
            if e.get("usd") is None:
                unknown = True
            else:
                extra_usd += float(e["usd"])
    return out, Tolerance(tol.usd, tol.seconds, extra_usd, unknown)


def diff_ledger(clean: dict[str, Any], faulted: dict[str, Any], tol: Tolerance) -> list[Finding]:
    out, tol = diff_costs(clean["tables"].get("costs", []), faulted["tables"].get("costs", []), tol)
    names = sorted((set(clean["tables"]) | set(faulted["tables"])) - {"costs"})
    for name in names:
        keys = clean["keys"].get(name) or faulted["keys"].get(name) or []
        a = {_key(r, keys): r for r in clean["tables"].get(name, [])}
        b = {_key(r, keys): r for r in faulted["tables"].get(name, [])}
        if len(a) != len(clean["tables"].get(name, [])) or len(b) != len(
            faulted["tables"].get(name, [])
        ):
            out.append(
                Finding(
                    "duplicated",
                    f"ledger.{name}: rows with the same key {keys}",
                    len(clean["tables"].get(name, [])),
                    len(faulted["tables"].get(name, [])),
                )
            )
        for k in sorted(set(a) - set(b)):
            out.append(Finding("lost", f"ledger.{name}[{k}]", a[k], None))
        for k in sorted(set(b) - set(a)):
            out.append(Finding("duplicated", f"ledger.{name}[{k}]", None, b[k]))
        for k in sorted(set(a) & set(b)):
            for field_name, (x, y) in _changed_fields(a[k], b[k], tol).items():
                out.append(Finding("lost", f"ledger.{name}[{k}].{field_name}", x, y))
    return out


def _cost_line(row: dict[str, Any]) -> str:
    usd = row.get("usd")
    return (
        f"attempt {row.get('attempt')} {row.get('capacity')} "
        f"{'unknown $' if usd is None else f'${usd:.4f}'} status {row.get('status')}: "
        f"{row.get('note') or ''}".strip()
    )


def diff_registry(clean: dict[str, Any], faulted: dict[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    if clean["aliases"] != faulted["aliases"]:
        out.append(Finding("lost", "registry aliases", clean["aliases"], faulted["aliases"]))
    a, b = clean["versions"], faulted["versions"]
    for v in sorted(set(a) - set(b), key=int):
        out.append(
            Finding("lost", f"registry version {v}", a[v]["tags"].get("costaware.run_key"), None)
        )
    for v in sorted(set(b) - set(a), key=int):
        out.append(
            Finding(
                "duplicated", f"registry version {v}", None, b[v]["tags"].get("costaware.run_key")
            )
        )
    for v in sorted(set(a) & set(b), key=int):
        for part in ("status", "tags", "params"):
            if a[v][part] != b[v][part]:
                keys = sorted(
                    k
                    for k in set(a[v][part]) | set(b[v][part])
                    if isinstance(a[v][part], dict) and a[v][part].get(k) != b[v][part].get(k)
                ) or [part]
                out.append(
                    Finding(
                        "lost",
                        f"registry version {v} {part} {keys}",
                        {k: a[v][part].get(k) for k in keys}
                        if isinstance(a[v][part], dict)
                        else a[v][part],
                        {k: b[v][part].get(k) for k in keys}
                        if isinstance(b[v][part], dict)
                        else b[v][part],
                    )
                )
        if a[v]["predictions_sha256"] != b[v]["predictions_sha256"]:
            gap = max(
                abs(x - y) for x, y in zip(a[v]["predictions"], b[v]["predictions"], strict=True)
            )
            out.append(Finding("lost", f"registry version {v} predictions (max |Δ|)", 0.0, gap))
    runs_a = [r for r in clean["runs"]]
    runs_b = [r for r in faulted["runs"]]
    orphans_a = sum(not r["has_version"] for r in runs_a)
    orphans_b = sum(not r["has_version"] for r in runs_b)
    if orphans_b > orphans_a:
        keys = [r["run_key"] for r in runs_b if not r["has_version"]]
        out.append(
            Finding("duplicated", "MLflow runs with no model version (orphans)", orphans_a, keys)
        )
    if len(runs_b) < len(runs_a):
        out.append(Finding("lost", "MLflow runs", len(runs_a), len(runs_b)))
    return out


def diff_files(clean: dict[str, Any], faulted: dict[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    a, b = clean["files"], faulted["files"]
    for f in sorted(set(a) - set(b)):
        out.append(Finding("lost", f"file {f}", a[f][:12], None))
    for f in sorted(set(b) - set(a)):
        kind = "leftover" if f.startswith("landing/") else "duplicated"
        out.append(Finding(kind, f"file {f}", None, b[f][:12]))
    for f in sorted(set(a) & set(b)):
        if a[f] != b[f]:
            out.append(Finding("lost", f"file {f} (bytes differ)", a[f][:12], b[f][:12]))
    for f in sorted(set(faulted["tmp"]) - set(clean["tmp"])):
        out.append(Finding("leftover", f"temporary file {f}", None, "present"))
    if faulted["artifact_files"] < clean["artifact_files"]:
        out.append(
            Finding(
                "lost", "MLflow artifact files", clean["artifact_files"], faulted["artifact_files"]
            )
        )
    elif faulted["artifact_files"] > clean["artifact_files"]:
        out.append(
            Finding(
                "duplicated",
                "MLflow artifact files",
                clean["artifact_files"],
                faulted["artifact_files"],
            )
        )
    return out


def diff(clean: dict[str, Any], faulted: dict[str, Any], tol: Tolerance) -> list[Finding]:
    return [
        *diff_registry(clean["registry"], faulted["registry"]),
        *diff_ledger(clean["ledger"], faulted["ledger"], tol),
        *diff_files(clean["files"], faulted["files"]),
    ]


def failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind != "extra_spend"]
