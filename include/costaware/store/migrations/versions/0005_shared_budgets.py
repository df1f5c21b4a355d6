"""Shared budgets: each retrain worth doing that asks a budget shared by several models for
money, in its scheduling window, and the verdict it got (funded, outbid, short).

New table only; rows written before this revision are untouched.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("budget", sa.String(64), nullable=False),
        sa.Column("window_key", sa.String(20), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("gain_points", sa.Float, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("limit_usd", sa.Float, nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("budget", "model", "run_id", name="uq_budget_candidates_run"),
    )
    op.create_index("ix_budget_candidates_window", "budget_candidates", ["budget", "window_key"])


def downgrade() -> None:
    op.drop_index("ix_budget_candidates_window", table_name="budget_candidates")
    op.drop_table("budget_candidates")
