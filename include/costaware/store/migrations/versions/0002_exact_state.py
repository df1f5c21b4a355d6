"""Exact state under faults: one cost row per training attempt (unknown amounts allowed),
operations that are recorded before they act, and label files with their validation status.

Rows written before this revision keep their values: a cost row becomes the whole run's
single attempt ``run`` with status ``final``; an audit row is ``done``.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("costs") as t:
        t.add_column(sa.Column("attempt", sa.String(100), nullable=False, server_default="run"))
        t.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="final"))
        t.add_column(sa.Column("note", sa.Text, nullable=False, server_default=""))
        t.alter_column("usd", existing_type=sa.Float, nullable=True)
        t.alter_column("runtime_s", existing_type=sa.Float, nullable=True)
        t.drop_constraint("uq_costs_model_run_purpose", type_="unique")
        t.create_unique_constraint(
            "uq_costs_model_run_purpose_attempt", ["model", "run_id", "purpose", "attempt"]
        )
    with op.batch_alter_table("audit") as t:
        t.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="done"))
    op.create_table(
        "label_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("report_path", sa.Text),
        sa.Column("run_id", sa.String(250)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model", "name", "sha256", name="uq_label_files_model_name_sha"),
    )


def downgrade() -> None:
    op.drop_table("label_files")
    with op.batch_alter_table("audit") as t:
        t.drop_column("status")
    with op.batch_alter_table("costs") as t:
        t.drop_constraint("uq_costs_model_run_purpose_attempt", type_="unique")
        t.create_unique_constraint("uq_costs_model_run_purpose", ["model", "run_id", "purpose"])
        t.drop_column("note")
        t.drop_column("status")
        t.drop_column("attempt")
