"""Realized return: for every promotion, the new champion's and the replaced model's points on
each later labelled batch, beside the gain the checkpoint expected when it decided.

New table only; rows written before this revision are untouched.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "realized_gains",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("batch_id", sa.String(200), nullable=False),
        sa.Column("champion_version", sa.String(20), nullable=False),
        sa.Column("replaced_version", sa.String(20), nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("champion_points", sa.Float, nullable=False),
        sa.Column("replaced_points", sa.Float, nullable=False),
        sa.Column("gain_points", sa.Float, nullable=False),
        sa.Column("gain_se", sa.Float),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("expected_gain", sa.Float),
        sa.Column("horizon_batches", sa.Integer),
        sa.Column("usd", sa.Float),
        sa.Column("data_time", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint(
            "model", "run_id", "batch_id", name="uq_realized_gains_model_run_batch"
        ),
    )


def downgrade() -> None:
    op.drop_table("realized_gains")
