"""Regression deltas with their 95% interval and the number of points they were paired on.

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run_deltas") as batch:
        batch.add_column(sa.Column("delta_low", sa.Float(), nullable=True))
        batch.add_column(sa.Column("delta_high", sa.Float(), nullable=True))
        batch.add_column(sa.Column("pairs", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_deltas") as batch:
        for column in ("pairs", "delta_high", "delta_low"):
            batch.drop_column(column)
