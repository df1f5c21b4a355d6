"""The live loop: every served prediction, the delayed labels that arrive for them, and what
each monitor run found.

New tables only; rows written before this revision are untouched.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=False),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("version", sa.String(20), nullable=False),
        sa.Column("alias", sa.String(20), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.UniqueConstraint("model", "request_id", name="uq_predictions_model_request"),
    )
    op.create_index("ix_predictions_model_ts", "predictions", ["model", "ts"])
    op.create_table(
        "prediction_labels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model", "request_id", name="uq_prediction_labels_model_request"),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("window_end", sa.DateTime, nullable=False),
        sa.Column("champion_version", sa.String(20)),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model", "run_id", name="uq_monitor_runs_model_run"),
    )


def downgrade() -> None:
    op.drop_table("monitor_runs")
    op.drop_table("prediction_labels")
    op.drop_index("ix_predictions_model_ts", table_name="predictions")
    op.drop_table("predictions")
