"""The package's layout: imports run one way, and the library works without Airflow.

entry points (app) → steps → batches / decide / models / costs → store; decide/ is pure.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "include" / "costaware"
# What each layer may import from costaware (besides itself and the shared base modules).
BASE = {"config", "errors", "settings", "faults"}
ALLOWED = {
    "store": set(),
    "decide": set(),
    "costs": {"store"},
    "models": {"costs", "store"},  # a training backend prices its attempts, mirrors its files
    "batches": {"store"},
    "steps": {"batches", "decide", "models", "costs", "store"},
    # the live loop: serving needs no Airflow and no steps; the monitor is a peer of steps
    # (it reuses their rollback)
    "serve": {"models", "store"},
    "monitor": {"steps", "batches", "decide", "models", "store"},
    "app": {"steps", "batches", "decide", "models", "costs", "store", "serve", "monitor"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "costaware" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_run_one_way(layer: str) -> None:
    wrong = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = _imports(path) - BASE - ALLOWED[layer] - {layer}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert not wrong, f"{layer}/ may import only {sorted(ALLOWED[layer] | BASE)}: {wrong}"


def test_every_module_is_in_a_layer() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")
    }
    assert top - {"__init__"} == set(ALLOWED) | BASE


def test_the_library_imports_without_airflow() -> None:
    """Every module outside app/ imports in a fresh interpreter with Airflow unavailable."""
    modules = sorted(
        "costaware." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.parts[len(PACKAGE.parts)] != "app"
        and p.name != "__init__.py"
        and "migrations" not in p.parts
    )
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'airflow' or name.startswith('airflow.'):\n"
        "            raise ImportError('airflow is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "print(len(" + repr(modules) + "))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) == len(modules) >= 30
