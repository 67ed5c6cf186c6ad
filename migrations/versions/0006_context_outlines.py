"""Repository context: file outlines (imports and definition signatures) kept per content.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "context_outlines",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("outline", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_context_outlines")),
    )


def downgrade() -> None:
    op.drop_table("context_outlines")
