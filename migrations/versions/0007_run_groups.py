"""Run groups: the runs of one ablation (the same points asked with each context strategy).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_runs_group_id"), ["group_id"])
        batch.create_foreign_key(
            batch.f("fk_runs_group_id_runs"), "runs", ["group_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(batch.f("fk_runs_group_id_runs"), type_="foreignkey")
        batch.drop_index(batch.f("ix_runs_group_id"))
        batch.drop_column("group_id")
