"""Shared fixtures: a private state folder per test, the PostgreSQL ledger, Airflow's DB."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

# Tests fork task processes from this one (tests/faults, tests/steps) the way Airflow forks
# task processes. GNU OpenMP is not fork-safe: once XGBoost ran a parallel region here (a
# dag.test() task runs in this process), a forked child's first parallel region waits for
# threads that do not exist and hangs. One OpenMP thread never starts that pool. Set before
# any test module loads XGBoost (libgomp reads it when it loads).
os.environ["OMP_NUM_THREADS"] = "1"

from costaware.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "COSTAWARE_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def make_settings(home: Path, db_url: str | None = None) -> Settings:
    env = {"COSTAWARE_HOME": str(home), "COSTAWARE_PROJECT_ROOT": str(ROOT)}
    if db_url:
        env["COSTAWARE_DB_URL"] = db_url
    return Settings.from_env(env)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    return make_settings(tmp_path / "home")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    with pg_database() as url:
        yield url


@contextlib.contextmanager
def pg_database(prefix: str = "costaware_test") -> Iterator[str]:
    """A fresh database on the PostgreSQL server at 127.0.0.1:5432, dropped afterwards. Fails,
    never skips, when the server is not there: CI must test on PostgreSQL."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url = request.getfixturevalue("pg_url")
    # Each test gets empty tables.
    from costaware.store.ledger import drop_all

    engine = sa.create_engine(url)
    drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server on 127.0.0.1 (AWS over real HTTP), for the whole session."""
    with moto_server() as url:
        yield url


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server of one's own, starting empty. moto keeps its state per process, not per
    server, so what an earlier test of this process made (under pytest-xdist, of another
    module) would still be there: the state is reset when the server starts."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    try:
        yield url
    finally:
        server.stop()


_AIRFLOW_STATE: Settings | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Point Airflow at a private state folder before any test module imports it: Airflow
    reads its configuration once, at first import."""
    import tempfile

    from costaware.app.airflow_env import apply_airflow_env

    global _AIRFLOW_STATE
    _AIRFLOW_STATE = make_settings(Path(tempfile.mkdtemp(prefix="costaware-airflow-")))
    apply_airflow_env(_AIRFLOW_STATE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules that hold an end-to-end test (marked ``slow`` or ``airflow``) run first, each
    module kept whole and in collection order: pytest-xdist hands modules to workers in this
    order, and a minutes-long module handed out last is a tail the other workers wait on
    (longest first). The order of tests within a module is unchanged."""
    heavy = {
        item.path
        for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("airflow")
    }
    items.sort(key=lambda item: item.path not in heavy)  # stable: a module stays contiguous


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    if _AIRFLOW_STATE is not None:
        shutil.rmtree(_AIRFLOW_STATE.home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """Airflow's metadata DB for the session, created once with `airflow db migrate`."""
    from costaware.app.airflow_env import ensure_airflow_db

    assert _AIRFLOW_STATE is not None
    ensure_airflow_db(_AIRFLOW_STATE)
    return _AIRFLOW_STATE.airflow_home
