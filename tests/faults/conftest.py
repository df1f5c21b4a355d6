"""Fixtures of the fault harness, and the results table printed at the end of the session.

Every case appends one JSON line to ``<pytest basetemp>/fault-cases/<worker>.jsonl`` (one file
per pytest-xdist worker, all in the controller's basetemp); the session ends by writing
``summary.json`` beside them and printing the table the README's "Fault injection" section is
made of: each fault class, how many cases were tried, passed, and what was lost.

Under pytest-xdist (``--dist loadscope``) a module's cases stay on one worker, so each
worker that runs fault cases builds the matrices once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support.private_pg import private_postgres
from . import chain, matrix

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _cases_dir(base: Path) -> Path:
    """Where every worker's case lines go: the controller's basetemp (a worker's basetemp is
    inside it)."""
    return (base.parent if WORKER else base) / "fault-cases"


@pytest.fixture(scope="session")
def fault_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp() / "faults"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def fault_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _cases_dir(tmp_path_factory.getbasetemp())
    folder.mkdir(exist_ok=True)
    return folder / f"{WORKER or 'main'}.jsonl"


@pytest.fixture(scope="session")
def warm_parent() -> None:
    """Import the steps' heavy libraries once, before any task process is forked."""
    chain.warm()


@pytest.fixture(scope="session")
def sqlite_matrix(fault_root: Path, warm_parent: None) -> matrix.Matrix:
    backend = matrix.Backend("sqlite", fault_root / "sqlite", fault_root / "home")
    base = matrix.build_base(backend)
    rows = matrix.rows_file(fault_root)
    return matrix.Matrix(backend, base, rows, matrix.tolerance())


@pytest.fixture(scope="session")
def pg_matrix(fault_root: Path, sqlite_matrix: matrix.Matrix) -> Iterator[matrix.Matrix]:
    """The PostgreSQL cases run on a server of their own: the outage cases stop it, and the
    shared server on 127.0.0.1:5432 must stay up for everyone else."""
    with private_postgres() as server:
        pg = matrix.Pg(server.url(), server)
        try:
            backend = matrix.Backend(
                "postgresql", fault_root / "postgresql", fault_root / "home", pg
            )
            base = matrix.base_on_postgres(sqlite_matrix.base, backend)
            yield matrix.Matrix(backend, base, sqlite_matrix.rows, sqlite_matrix.tol)
        finally:
            pg.drop_all()


# -- the table -------------------------------------------------------------------------------
def summarize(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cases:
        g = groups.setdefault(
            (c["fault"], c["backend"]),
            {
                "fault": c["fault"],
                "backend": c["backend"],
                "tried": 0,
                "passed": 0,
                "lost": 0,
                "duplicated": 0,
                "leftover": 0,
                "extra_spend": 0,
                "seconds": 0.0,
            },
        )
        g["tried"] += 1
        g["passed"] += bool(c["passed"])
        for k in ("lost", "duplicated", "leftover", "extra_spend"):
            g[k] += c.get(k, 0)
        g["seconds"] += c.get("seconds", 0.0)
    return sorted(groups.values(), key=lambda g: (g["fault"], g["backend"]))


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"| {'fault class':<50} | {'ledger':<10} | tried | passed | lost | duplicated | "
        "leftover | extra spend recorded |"
    )
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        lines.append(
            f"| {r['fault']:<50} | {r['backend']:<10} | {r['tried']:>5} | {r['passed']:>6} | "
            f"{r['lost']:>4} | {r['duplicated']:>10} | {r['leftover']:>8} | "
            f"{r['extra_spend']:>20} |"
        )
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    factory = getattr(terminalreporter.config, "_tmp_path_factory", None)
    if WORKER or factory is None:
        return
    folder = _cases_dir(factory.getbasetemp())
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    cases = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    if not cases:
        return
    rows = summarize(cases)
    (folder / "summary.json").write_text(json.dumps({"groups": rows, "cases": cases}, indent=2))
    tr = terminalreporter
    tr.section("fault injection: each fault class, cases tried, passed, what was lost")
    tr.write_line(table(rows))
    failed = [c for c in cases if not c["passed"]]
    for c in failed:
        tr.write_line(
            f"FAILED [{c['backend']}] {c['point']} ({c['fault']}): "
            + (c["error"].splitlines()[0] if c["error"] else "")
        )
        for f in c["findings"]:
            if f["kind"] != "extra_spend":
                clean, faulted = repr(f["clean"])[:120], repr(f["faulted"])[:120]
                tr.write_line(f"    {f['kind']:<11} {f['where']}: clean={clean} faulted={faulted}")
    spent = [(c, f) for c in cases for f in c["findings"] if f["kind"] == "extra_spend"]
    if spent:
        tr.write_line("extra spend recorded (real money the kill cost; listed, not a loss):")
        for c, f in spent:
            tr.write_line(f"    [{c['backend']}] {c['point']}: {f['faulted']}")
    tr.write_line(f"cases: {folder}/*.jsonl  summary: {folder / 'summary.json'}")
