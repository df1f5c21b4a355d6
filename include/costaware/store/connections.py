"""The ledger database from an Airflow connection (``COSTAWARE_LEDGER_CONN_ID``).

The ledger's password then lives where every other credential does, in an Airflow connection
(the metadata DB, a secrets backend, or an ``AIRFLOW_CONN_*`` variable), never in a settings
file. The URL is built from the connection's fields rather than from ``Connection.get_uri()``,
whose query string carries every extra (``cursor``, ``iam``...) that the database driver
would reject, and whose scheme (``postgres://``) SQLAlchemy does not know.
"""

from __future__ import annotations

from typing import Any

from costaware.errors import ConfigError

DRIVER = "postgresql+psycopg2"
# Connection extras that are libpq connection parameters: passed to the driver as they are.
LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "client_encoding",
    }
)
# Extras of Airflow's Postgres hook that only change how that hook uses a connection.
HOOK_ONLY_EXTRAS = frozenset({"cursor", "enable_log_db_messages"})


def ledger_url_from_connection(conn_id: str) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg2://user:password@host:port/database?...``) of
    the PostgreSQL database the Airflow connection ``conn_id`` describes, password included:
    hand it to ``create_engine`` / ``Ledger``, never to a log (Airflow masks the password in
    task logs; this function logs nothing).

    The connection is read with ``airflow.sdk.BaseHook.get_connection``: in a task through
    the API server (every secrets backend and the metadata DB); in any other process (the
    ``costaware`` CLI, a test) only from ``AIRFLOW_CONN_*`` variables and configured external
    secrets backends, unless ``_AIRFLOW_PROCESS_CONTEXT=server`` lets it read the metadata DB.

    Raises ``ConfigError`` (what was wrong and what to do) when Airflow is not installed, the
    connection is not defined, is not a ``postgres`` connection, lacks a host or database
    (``schema``), or has an extra that is neither a libpq parameter nor one the Postgres hook
    alone reads."""
    return ledger_url(_get_connection(conn_id))


def _get_connection(conn_id: str) -> Any:
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError as exc:
        raise ConfigError(
            f"COSTAWARE_LEDGER_CONN_ID={conn_id!r} needs Airflow to read the connection; "
            "without Airflow set COSTAWARE_DB_URL instead"
        ) from exc
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConfigError(
            f"no Airflow connection {conn_id!r} (COSTAWARE_LEDGER_CONN_ID): define it, e.g. "
            f"AIRFLOW_CONN_{conn_id.upper()}='postgres://USER:PASSWORD@HOST:5432/DATABASE' or "
            f"`airflow connections add {conn_id} --conn-uri ...`; outside a task only "
            "AIRFLOW_CONN_* variables and external secrets backends are read"
        ) from None


def ledger_url(conn: Any) -> str:
    """The SQLAlchemy URL of an Airflow ``postgres`` connection object (see above)."""
    import sqlalchemy as sa

    where = f"Airflow connection {conn.conn_id!r} (the ledger)"
    if conn.conn_type not in ("postgres", "postgresql"):
        raise ConfigError(
            f"{where} has conn_type {conn.conn_type!r}; allowed: 'postgres'. For a SQLite "
            "ledger set COSTAWARE_DB_URL instead"
        )
    if not conn.host or not conn.schema:
        missing = [name for name, v in (("host", conn.host), ("schema", conn.schema)) if not v]
        raise ConfigError(
            f"{where} has no {' and no '.join(missing)}; set the host and, as its schema, the "
            "ledger's database name"
        )
    extras = conn.extra_dejson
    unknown = sorted(set(extras) - LIBPQ_EXTRAS - HOOK_ONLY_EXTRAS)
    if unknown:
        raise ConfigError(
            f"{where}: extra(s) {unknown} cannot be used by the ledger's driver; allowed: "
            f"{sorted(LIBPQ_EXTRAS)} (and the Postgres hook's {sorted(HOOK_ONLY_EXTRAS)}, "
            "ignored)"
        )
    url = sa.engine.URL.create(
        DRIVER,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host,
        port=conn.port or 5432,
        database=conn.schema,
        query={k: str(v) for k, v in sorted(extras.items()) if k in LIBPQ_EXTRAS},
    )
    return url.render_as_string(hide_password=False)
