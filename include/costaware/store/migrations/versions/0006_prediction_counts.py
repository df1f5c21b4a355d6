"""The prediction log's hourly counts, kept by the monitor so that a run reads counts of
what changed since the last run instead of every logged row (issue 10: 10 M rows).

``prediction_counts``: per (model, hour, version) the predictions served in that hour and
how many of them have a label. ``prediction_count_marks``: per model, the highest
``predictions.id`` and ``prediction_labels.id`` already counted. New tables only; the first
monitor run of a model fills them from the log (README, "The live loop").

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_counts",
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("hour", sa.DateTime, primary_key=True),
        sa.Column("version", sa.String(20), primary_key=True),
        sa.Column("served", sa.BigInteger, nullable=False),
        sa.Column("labelled", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "prediction_count_marks",
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("predictions_id", sa.BigInteger, nullable=False),
        sa.Column("labels_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_count_marks")
    op.drop_table("prediction_counts")
