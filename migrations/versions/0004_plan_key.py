"""Runs remember their planning task (plan_key, unique: a task delivered twice plans one run)
and whether the workers answer them (distributed: `resume` of a local run needs no worker).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("plan_key", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("distributed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.create_unique_constraint(batch.f("uq_runs_plan_key"), ["plan_key"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(batch.f("uq_runs_plan_key"), type_="unique")
        batch.drop_column("distributed")
        batch.drop_column("plan_key")
