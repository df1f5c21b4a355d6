"""The project's own SQL store: batches, decisions, costs and the audit trail.

Plain SQLAlchemy 2 Core. SQLite file by default, PostgreSQL when ``COSTAWARE_DB_URL`` says
so; the test suite runs on both. Writes keyed by (model, run id) are upserts, so a retried
Airflow task never records the same thing twice.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
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
    sa.Column("usd", sa.Float, nullable=False),
    sa.Column("capacity", sa.String(20), nullable=False),  # spot | on_demand | mixed
    sa.Column("instance_type", sa.String(64)),
    sa.Column("runtime_s", sa.Float, nullable=False, default=0.0),
    sa.Column("interruptions", sa.Integer, nullable=False, default=0),
    sa.Column("price_source", sa.String(64), nullable=False),
    sa.Column("usage_date", sa.DateTime, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "run_id", "purpose", name="uq_costs_model_run_purpose"),
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
    sa.Column("created_at", sa.DateTime, nullable=False, default=_now),
    sa.UniqueConstraint("model", "run_id", "action", name="uq_audit_model_run_action"),
)


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
            self._engine = sa.create_engine(self.url, future=True, pool_pre_ping=True)
            metadata.create_all(self._engine)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- generic helpers ---------------------------------------------------------------
    def _upsert(self, table: sa.Table, keys: Iterable[str], row: dict[str, Any]) -> None:
        """Insert ``row`` or, when a row with the same ``keys`` exists, update it."""
        keys = list(keys)
        row = {
            k: _json_safe(v) if isinstance(table.c[k].type, sa.JSON) else v for k, v in row.items()
        }
        where = sa.and_(*(table.c[k] == row[k] for k in keys))
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(table.c.id).where(where)).first()
            if found is None:
                conn.execute(table.insert().values(**row))
            else:
                values = {k: v for k, v in row.items() if k not in keys}
                conn.execute(table.update().where(where).values(**values))

    def _select(self, table: sa.Table, *where: Any, order: Any = None) -> list[dict[str, Any]]:
        stmt = sa.select(table).where(*where).order_by(order if order is not None else table.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    # -- batches -----------------------------------------------------------------------
    def record_batch(self, **row: Any) -> None:
        self._upsert(batches, ("model", "batch_id"), row)

    def batches(self, model: str) -> list[dict[str, Any]]:
        return self._select(batches, batches.c.model == model)

    def batch(self, model: str, batch_id: str) -> dict[str, Any] | None:
        rows = self._select(batches, batches.c.model == model, batches.c.batch_id == batch_id)
        return rows[0] if rows else None

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
        self._upsert(costs, ("model", "run_id", "purpose"), row)

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
        where = (
            audit.c.model == row["model"],
            audit.c.run_id == row["run_id"],
            audit.c.action == row["action"],
        )
        if self._select(audit, *where):
            return False
        row = {k: _json_safe(v) if k == "metrics" else v for k, v in row.items()}
        with self.engine.begin() as conn:
            conn.execute(audit.insert().values(**row))
        return True

    def audit(self, model: str) -> list[dict[str, Any]]:
        return self._select(audit, audit.c.model == model)

    def last_promotion(self, model: str) -> dict[str, Any] | None:
        rows = self._select(
            audit, audit.c.model == model, audit.c.action.in_(["promote", "rollback"])
        )
        return rows[-1] if rows else None
