"""The project's own SQL store: batches, decisions, costs and the audit trail.

Plain SQLAlchemy 2 Core. SQLite file by default, PostgreSQL when ``COSTAWARE_DB_URL`` says
so; the test suite runs on both. The schema is Alembic's (``store/migrations``), upgraded on
first use. Writes keyed by (model, run id) are upserts, so a retried Airflow task never
records the same thing twice. Money that is not known is stored as NULL, never as 0.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import math
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("batch_id", sa.String(200), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # accepted | warned | quarantined
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("report_path", sa.Text),
    sa.Column("start_ts", sa.DateTime),
    sa.Column("end_ts", sa.DateTime),
    sa.Column("run_id", sa.String(250)),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "batch_id", name="uq_batches_model_batch"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("batch_id", sa.String(200)),
    sa.Column("action", sa.String(20), nullable=False),  # retrain | skip | approve
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("outcome", sa.String(40)),  # promoted | rejected | dry_run | skipped | ...
    sa.Column("data_time", sa.DateTime),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "run_id", name="uq_decisions_model_run"),
)

costs = sa.Table(
    "costs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("purpose", sa.String(20), nullable=False),  # retrain | serve
    # One row per training attempt (``attempt``), so a retried task adds its attempts
    # instead of overwriting the first try's; ``usd`` is NULL while unknown.
    sa.Column("attempt", sa.String(100), nullable=False, default="run"),
    sa.Column("usd", sa.Float, nullable=True),
    sa.Column("status", sa.String(20), nullable=False, default="final"),  # COST_STATUSES
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("capacity", sa.String(20), nullable=False),  # spot | on_demand | mixed
    sa.Column("instance_type", sa.String(64)),
    sa.Column("runtime_s", sa.Float, nullable=True),
    sa.Column("interruptions", sa.Integer, nullable=False, default=0),
    sa.Column("price_source", sa.String(64), nullable=False),
    sa.Column("usage_date", sa.DateTime, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint(
        "model", "run_id", "purpose", "attempt", name="uq_costs_model_run_purpose_attempt"
    ),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),  # promote | reject | rollback
    sa.Column("actor", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("from_version", sa.String(20)),
    sa.Column("to_version", sa.String(20)),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("usd", sa.Float),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("data_time", sa.DateTime),
    # "pending": recorded before the registry moved (the operation's intent); "done" after.
    sa.Column("status", sa.String(20), nullable=False, default="done"),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "run_id", "action", name="uq_audit_model_run_action"),
)

label_files = sa.Table(
    "label_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("name", sa.String(250), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # accepted|warned|quarantined|duplicate
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("report_path", sa.Text),
    sa.Column("run_id", sa.String(250)),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "name", "sha256", name="uq_label_files_model_name_sha"),
)

# final: priced (the note says when the billed time is a lower bound); running: started, not
# ended yet; lost: its cost is unknown (the process died leaving no sign of when).
COST_STATUSES = ("final", "running", "lost")
HEAD = "0006"
_upgraded: set[str] = set()
_upgrade_lock = threading.Lock()


def upgrade(engine: Engine) -> None:
    """Bring the ledger's schema to the newest revision, keeping every row.

    A database created before migrations existed (tables, no ``alembic_version``) is
    stamped at the baseline first. Two processes that start at once never migrate together:
    on PostgreSQL an advisory lock keeps them apart, on SQLite a lock file beside the
    database (two tasks opening a new SQLite ledger at the same moment both created the
    tables otherwise: "table batches already exists")."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with _sqlite_schema_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("schema")})
        names = set(sa.inspect(conn).get_table_names())
        cfg.attributes["connection"] = conn
        if "batches" in names and "alembic_version" not in names:
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def _sqlite_schema_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with Path(f"{database}.schema-lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def drop_all(engine: Engine) -> None:
    """Drop every ledger table (tests start from an empty database this way)."""
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    _upgraded.clear()


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"costaware:{name}".encode()).digest()[:8], "big") >> 1


def _json_safe(value: Any) -> Any:
    """JSON columns take finite numbers only on PostgreSQL: NaN → null, ±inf → "inf"."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class Ledger:
    """Reads and writes the ledger. The engine is created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self.url.startswith("sqlite:///"):
                from pathlib import Path

                Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(self.url, future=True, pool_pre_ping=True)
            with _upgrade_lock:
                if self.url not in _upgraded:
                    upgrade(engine)
                    _upgraded.add(self.url)
            self._engine = engine
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- generic helpers ---------------------------------------------------------------
    def _upsert(self, table: sa.Table, keys: Iterable[str], row: dict[str, Any]) -> None:
        """Insert ``row`` or, when a row with the same ``keys`` exists, update it. Two
        writers racing on one key end with one row: the loser's insert becomes an update."""
        keys = list(keys)
        row = {
            k: _json_safe(v) if isinstance(table.c[k].type, sa.JSON) else v for k, v in row.items()
        }
        where = sa.and_(*(table.c[k] == row[k] for k in keys))
        values = {k: v for k, v in row.items() if k not in keys}
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(table.c.id).where(where)).first()
            if found is not None:
                conn.execute(table.update().where(where).values(**values))
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(table.insert().values(**row))
        except sa.exc.IntegrityError:
            with self.engine.begin() as conn:
                conn.execute(table.update().where(where).values(**values))

    def _select(self, table: sa.Table, *where: Any, order: Any = None) -> list[dict[str, Any]]:
        if order is None:
            order = (table.c.id,)
        elif not isinstance(order, tuple):
            order = (order, table.c.id)
        stmt = sa.select(table).where(*where).order_by(*order)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    @contextlib.contextmanager
    def model_lock(self, model: str) -> Iterator[None]:
        """Hold an exclusive lock on ``model``'s registry operations (promote, rollback), so
        a compare-and-set of its aliases cannot interleave with another run's. PostgreSQL:
        an advisory lock; SQLite: a lock file beside the database."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                key = {"k": _lock_key(f"model:{model}")}
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), key)
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), key)
                    conn.commit()
            return
        db = self.engine.url.database
        folder = Path(db).parent if db and db != ":memory:" else Path.cwd()
        with (folder / f".costaware-lock-{model}").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- batches -----------------------------------------------------------------------
    def record_batch(self, **row: Any) -> None:
        self._upsert(batches, ("model", "batch_id"), row)

    def batches(self, model: str) -> list[dict[str, Any]]:
        return self._select(batches, batches.c.model == model)

    def batch(self, model: str, batch_id: str) -> dict[str, Any] | None:
        rows = self._select(batches, batches.c.model == model, batches.c.batch_id == batch_id)
        return rows[0] if rows else None

    def accepted_batches(self, model: str) -> list[dict[str, Any]]:
        """Batches that passed validation, in event-time order (ties: the order they arrived).

        This, not a folder listing or file names, says which data exists and in what order."""
        return self._select(
            batches,
            batches.c.model == model,
            batches.c.status.in_(["accepted", "warned"]),
            order=(batches.c.start_ts.is_(None), batches.c.start_ts, batches.c.id),
        )

    # -- label files -------------------------------------------------------------------
    def record_label_file(self, **row: Any) -> None:
        self._upsert(label_files, ("model", "name", "sha256"), row)

    def label_files(self, model: str) -> list[dict[str, Any]]:
        return self._select(label_files, label_files.c.model == model)

    # -- decisions ---------------------------------------------------------------------
    def record_decision(self, **row: Any) -> None:
        self._upsert(decisions, ("model", "run_id"), row)

    def set_outcome(self, model: str, run_id: str, outcome: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                decisions.update()
                .where(decisions.c.model == model, decisions.c.run_id == run_id)
                .values(outcome=outcome)
            )

    def decisions(self, model: str) -> list[dict[str, Any]]:
        return self._select(decisions, decisions.c.model == model)

    def decision(self, model: str, run_id: str) -> dict[str, Any] | None:
        rows = self._select(decisions, decisions.c.model == model, decisions.c.run_id == run_id)
        return rows[0] if rows else None

    def decision_for_batch(self, model: str, batch_id: str) -> dict[str, Any] | None:
        rows = self._select(decisions, decisions.c.model == model, decisions.c.batch_id == batch_id)
        return rows[-1] if rows else None

    # -- costs -------------------------------------------------------------------------
    def record_cost(self, **row: Any) -> None:
        """One attempt's cost, keyed by (model, run, purpose, attempt); ``usd=None`` = unknown."""
        row.setdefault("attempt", "run")
        if row.get("status", "final") not in COST_STATUSES:
            raise ValueError(f"cost status {row['status']!r}; allowed: {COST_STATUSES}")
        self._upsert(costs, ("model", "run_id", "purpose", "attempt"), row)

    def run_costs(self, model: str, run_id: str, purpose: str = "retrain") -> list[dict[str, Any]]:
        return self._select(
            costs, costs.c.model == model, costs.c.run_id == run_id, costs.c.purpose == purpose
        )

    def costs(
        self,
        model: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        purpose: str | None = None,
    ) -> list[dict[str, Any]]:
        where = []
        if model is not None:
            where.append(costs.c.model == model)
        if start is not None:
            where.append(costs.c.usage_date >= start)
        if end is not None:
            where.append(costs.c.usage_date < end)
        if purpose is not None:
            where.append(costs.c.purpose == purpose)
        return self._select(costs, *where, order=costs.c.usage_date)

    # -- audit -------------------------------------------------------------------------
    def record_audit(self, **row: Any) -> bool:
        """Record an audit row; False when this (model, run, action) was already recorded."""
        if self.operation(row["model"], row["run_id"], row["action"]) is not None:
            return False
        row = {k: _json_safe(v) if k == "metrics" else v for k, v in row.items()}
        with self.engine.begin() as conn:
            conn.execute(audit.insert().values(**row))
        return True

    def operation(self, model: str, run_id: str, action: str) -> dict[str, Any] | None:
        """The audit row of one operation (its id is the run id), pending or done."""
        rows = self._select(
            audit, audit.c.model == model, audit.c.run_id == run_id, audit.c.action == action
        )
        return rows[0] if rows else None

    def finish_operation(self, model: str, run_id: str, action: str, **values: Any) -> None:
        """Mark a pending operation done (with any final values, e.g. the versions moved)."""
        values = {k: _json_safe(v) if k == "metrics" else v for k, v in values.items()}
        with self.engine.begin() as conn:
            conn.execute(
                audit.update()
                .where(audit.c.model == model, audit.c.run_id == run_id, audit.c.action == action)
                .values(**{"status": "done", **values})
            )

    def audit(self, model: str) -> list[dict[str, Any]]:
        return self._select(audit, audit.c.model == model)

    def last_promotion(self, model: str) -> dict[str, Any] | None:
        rows = self._select(
            audit, audit.c.model == model, audit.c.action.in_(["promote", "rollback"])
        )
        return rows[-1] if rows else None


# -- the live loop (serving log, delayed labels, monitor runs; migration 0003) ----------------
_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(100), nullable=False),
    sa.Column("ts", sa.DateTime, nullable=False),  # when it was served (naive UTC)
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("version", sa.String(20), nullable=False),  # the registry version that scored it
    sa.Column("alias", sa.String(20), nullable=False),  # champion | challenger (canary)
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.UniqueConstraint("model", "request_id", name="uq_predictions_model_request"),
    sa.Index("ix_predictions_model_ts", "model", "ts"),
)

prediction_labels = sa.Table(
    "prediction_labels",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(100), nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("model", "request_id", name="uq_prediction_labels_model_request"),
)

monitor_runs = sa.Table(
    "monitor_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("window_end", sa.DateTime, nullable=False),
    sa.Column("champion_version", sa.String(20)),
    sa.Column("verdict", sa.String(20), nullable=False),  # ok|suspect|degraded|no_data
    sa.Column("action", sa.String(20), nullable=False),  # none | alert | rollback | retrain
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "run_id", name="uq_monitor_runs_model_run"),
)

# The prediction log's hourly counts (migration 0006), kept by ``monitor.queries``: a monitor
# run recounts only the hours that got predictions or labels since the last run.
prediction_counts = sa.Table(
    "prediction_counts",
    metadata,
    sa.Column("model", sa.String(64), primary_key=True),
    sa.Column("hour", sa.DateTime, primary_key=True),  # the hour's start (naive UTC)
    sa.Column("version", sa.String(20), primary_key=True),
    sa.Column("served", sa.BigInteger, nullable=False),
    sa.Column("labelled", sa.BigInteger, nullable=False),
)

prediction_count_marks = sa.Table(
    "prediction_count_marks",
    metadata,
    sa.Column("model", sa.String(64), primary_key=True),
    sa.Column("predictions_id", sa.BigInteger, nullable=False),  # highest id counted
    sa.Column("labels_id", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


def _insert_ignoring_duplicates(table: sa.Table, keys: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` for PostgreSQL and SQLite: replaying a
    batch that was already committed (a crash between commit and removing its spool file)
    adds nothing."""
    from sqlalchemy.dialects import postgresql, sqlite

    return {
        "postgresql": postgresql.insert(table).on_conflict_do_nothing(index_elements=keys),
        "sqlite": sqlite.insert(table).on_conflict_do_nothing(index_elements=keys),
    }


def log_predictions(ledger: Ledger, rows: list[dict[str, Any]]) -> int:
    """Insert logged predictions in one transaction; a row whose (model, request_id) is
    already there is left as it is. Returns how many rows were new."""
    if not rows:
        return 0
    stmt = _insert_ignoring_duplicates(predictions, ["model", "request_id"])[
        ledger.engine.dialect.name
    ]
    with ledger.engine.begin() as conn:
        result = conn.execute(stmt, [{**r, "features": _json_safe(r["features"])} for r in rows])
    return max(int(result.rowcount or 0), 0)


def known_request_ids(ledger: Ledger, model: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` are logged predictions of ``model``."""
    found: set[str] = set()
    with ledger.engine.connect() as conn:
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            stmt = sa.select(predictions.c.request_id).where(
                predictions.c.model == model, predictions.c.request_id.in_(chunk)
            )
            found.update(r[0] for r in conn.execute(stmt))
    return found


def record_labels(
    ledger: Ledger, model: str, labels: dict[str, str], received_at: dt.datetime
) -> dict[str, list[str]]:
    """Store delayed labels by request id. Idempotent: the same label again is
    ``unchanged``; a different label for an id that has one is a ``conflict`` and is not
    overwritten (the first answer stays; the caller is told)."""
    out: dict[str, list[str]] = {"stored": [], "unchanged": [], "conflict": []}
    if not labels:
        return out
    ids = list(labels)
    with ledger.engine.begin() as conn:
        have: dict[str, str] = {}
        for i in range(0, len(ids), 1000):
            stmt = sa.select(prediction_labels.c.request_id, prediction_labels.c.label).where(
                prediction_labels.c.model == model,
                prediction_labels.c.request_id.in_(ids[i : i + 1000]),
            )
            have.update({r[0]: r[1] for r in conn.execute(stmt)})
        new = []
        for rid, label in labels.items():
            if rid not in have:
                new.append(
                    {"model": model, "request_id": rid, "label": label, "received_at": received_at}
                )
                out["stored"].append(rid)
            elif have[rid] == label:
                out["unchanged"].append(rid)
            else:
                out["conflict"].append(rid)
        if new:
            stmt = _insert_ignoring_duplicates(prediction_labels, ["model", "request_id"])[
                conn.dialect.name
            ]
            conn.execute(stmt, new)
    return out


def record_monitor_run(ledger: Ledger, **row: Any) -> None:
    ledger._upsert(monitor_runs, ("model", "run_id"), row)


def monitor_history(ledger: Ledger, model: str) -> list[dict[str, Any]]:
    return ledger._select(monitor_runs, monitor_runs.c.model == model)


# -- realized return (migration 0004) ---------------------------------------------------------
# One row per (promotion run, later labelled batch): the new champion's and the replaced
# model's points on the same rows, beside the gain the checkpoint expected and the retrain's
# cost (NULL while unknown). decide/realized.py turns them into the running ratio.
realized_gains = sa.Table(
    "realized_gains",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),  # the run that promoted
    sa.Column("batch_id", sa.String(200), nullable=False),  # a later labelled batch
    sa.Column("champion_version", sa.String(20), nullable=False),
    sa.Column("replaced_version", sa.String(20), nullable=False),
    sa.Column("metric", sa.String(40), nullable=False),
    sa.Column("champion_points", sa.Float, nullable=False),
    sa.Column("replaced_points", sa.Float, nullable=False),
    sa.Column("gain_points", sa.Float, nullable=False),  # champion − replaced
    sa.Column("gain_se", sa.Float),  # the paired comparison's sampling error
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("expected_gain", sa.Float),  # pt·batches the checkpoint expected (uncorrected)
    sa.Column("horizon_batches", sa.Integer),  # batches that gain was counted over
    sa.Column("usd", sa.Float),  # what the retrain cost
    sa.Column("data_time", sa.DateTime),  # the batch's newest event
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "run_id", "batch_id", name="uq_realized_gains_model_run_batch"),
)


def record_realized(ledger: Ledger, **row: Any) -> None:
    """One promotion's gain on one later batch; a retry rewrites the same row."""
    ledger._upsert(realized_gains, ("model", "run_id", "batch_id"), row)


def realized_rows(ledger: Ledger, model: str) -> list[dict[str, Any]]:
    return ledger._select(realized_gains, realized_gains.c.model == model)


# -- shared budgets (migration 0005) -----------------------------------------------------------
budget_candidates = sa.Table(
    "budget_candidates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("budget", sa.String(64), nullable=False),
    sa.Column("window_key", sa.String(20), nullable=False),  # 2026-W48 | 2026-11-26 | 2026-11
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("gain_points", sa.Float, nullable=False),  # expected, pt·batch of ``metric``
    sa.Column("cost_usd", sa.Float, nullable=False),  # expected
    sa.Column("limit_usd", sa.Float, nullable=False),  # the model's max_usd_per_point_batch
    sa.Column("metric", sa.String(40), nullable=False),
    sa.Column("verdict", sa.String(20), nullable=False),  # funded | outbid | short
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("budget", "model", "run_id", name="uq_budget_candidates_run"),
    sa.Index("ix_budget_candidates_window", "budget", "window_key"),
)


def record_budget_candidate(ledger: Ledger, **row: Any) -> None:
    """A candidate and its verdict; a retry of the same run rewrites the same row."""
    ledger._upsert(budget_candidates, ("budget", "model", "run_id"), row)


def budget_window(ledger: Ledger, budget: str, window: str) -> list[dict[str, Any]]:
    """The window's candidates in the order they were posted."""
    c = budget_candidates.c
    return ledger._select(budget_candidates, c.budget == budget, c.window_key == window)
