"""Stored comparisons: a run compared with its baseline once, when it finished, so the
dashboard's compare of that pair reads one row. Existing pairs are compared again on request.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_comparisons",
        sa.Column("run_a", sa.Integer(), nullable=False),
        sa.Column("run_b", sa.Integer(), nullable=False),
        sa.Column("finished_a", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_b", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comparison", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_a"], ["runs.id"], name=op.f("fk_run_comparisons_run_a_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_b"], ["runs.id"], name=op.f("fk_run_comparisons_run_b_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_a", "run_b", name=op.f("pk_run_comparisons")),
    )


def downgrade() -> None:
    op.drop_table("run_comparisons")
