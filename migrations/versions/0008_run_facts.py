"""Run facts: what answered a run (runs.served_by), and per suggestion the time queued in the
client, the new tokens asked, and whether the prompt was truncated.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("served_by", sa.JSON(), nullable=True))
    with op.batch_alter_table("suggestions") as batch:
        batch.add_column(sa.Column("queued_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_new_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prompt_truncated", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("suggestions") as batch:
        batch.drop_column("prompt_truncated")
        batch.drop_column("max_new_tokens")
        batch.drop_column("queued_ms")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("served_by")
