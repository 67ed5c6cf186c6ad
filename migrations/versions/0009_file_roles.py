"""File roles: files.role says whether a file is source, test, example or generated code.

Rows of earlier runs get the role their path gives today (sources.file_role); files those runs
skipped as generated (a header marker) get `generated`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aixaudit.sources import FileRole, file_role

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000  # ids per UPDATE: bounded IN lists on both databases


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default=FileRole.SOURCE)
        )
    files = sa.table(
        "files", sa.column("id"), sa.column("path"), sa.column("skip_reason"), sa.column("role")
    )
    bind = op.get_bind()
    ids: dict[FileRole, list[int]] = defaultdict(list)
    for id_, path, skip_reason in bind.execute(
        sa.select(files.c.id, files.c.path, files.c.skip_reason)
    ):
        role = FileRole.GENERATED if skip_reason == "generated" else file_role(path)[0]
        if role is not FileRole.SOURCE:
            ids[role].append(id_)
    for role, found in ids.items():
        for start in range(0, len(found), BATCH):
            chunk = found[start : start + BATCH]
            bind.execute(files.update().where(files.c.id.in_(chunk)).values(role=role.value))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("role")
