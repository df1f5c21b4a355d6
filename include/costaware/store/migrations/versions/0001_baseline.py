"""The ledger as it shipped before migrations existed (created by ``metadata.create_all``).

A database made by that version has these tables and no ``alembic_version``: ``upgrade``
stamps it at this revision and migrates on, keeping every row.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _common() -> list[sa.Column]:
    return [sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)]


def upgrade() -> None:
    op.create_table(
        "batches",
        *_common(),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("report_path", sa.Text),
        sa.Column("start_ts", sa.DateTime),
        sa.Column("end_ts", sa.DateTime),
        sa.Column("run_id", sa.String(250)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model", "batch_id", name="uq_batches_model_batch"),
    )
    op.create_table(
        "decisions",
        *_common(),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("batch_id", sa.String(200)),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.String(40)),
        sa.Column("data_time", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model", "run_id", name="uq_decisions_model_run"),
    )
    op.create_table(
        "costs",
        *_common(),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("usd", sa.Float, nullable=False),
        sa.Column("capacity", sa.String(20), nullable=False),
        sa.Column("instance_type", sa.String(64)),
        sa.Column("runtime_s", sa.Float, nullable=False),
        sa.Column("interruptions", sa.Integer, nullable=False),
        sa.Column("price_source", sa.String(64), nullable=False),
        sa.Column("usage_date", sa.DateTime, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model", "run_id", "purpose", name="uq_costs_model_run_purpose"),
    )
    op.create_table(
        "audit",
        *_common(),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("from_version", sa.String(20)),
        sa.Column("to_version", sa.String(20)),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("usd", sa.Float),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("data_time", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model", "run_id", "action", name="uq_audit_model_run_action"),
    )


def downgrade() -> None:
    for table in ("audit", "costs", "decisions", "batches"):
        op.drop_table(table)
