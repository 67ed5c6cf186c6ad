"""Jobs: nightly schedules, reused suggestions, run fingerprints and regression deltas; and
points.node_type unbounded (a run of statements joins its node types: 64 chars were too few).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# aixaudit.store.tables.UTCDateTime stores as this type; migrations do not import the models.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("at", sa.String(length=5), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("acceptance_rule", sa.JSON(), nullable=False),
        sa.Column("last_started_on", sa.Date(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("model", sa.Text(), nullable=True))
        batch.add_column(sa.Column("schedule_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("baseline_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("regression", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("regression_threshold", sa.Float(), nullable=True))
        batch.create_index(batch.f("ix_runs_schedule_id"), ["schedule_id"])
        batch.create_foreign_key(
            batch.f("fk_runs_schedule_id_schedules"),
            "schedules",
            ["schedule_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_foreign_key(
            batch.f("fk_runs_baseline_run_id_runs"),
            "runs",
            ["baseline_run_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "run_deltas",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("regressed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_deltas_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "metric", name=op.f("pk_run_deltas")),
    )
    with op.batch_alter_table("suggestions") as batch:
        batch.add_column(
            sa.Column("reused", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("points") as batch:
        batch.alter_column("node_type", type_=sa.Text(), existing_type=sa.String(length=64))


def downgrade() -> None:
    with op.batch_alter_table("points") as batch:
        batch.alter_column("node_type", type_=sa.String(length=64), existing_type=sa.Text())
    with op.batch_alter_table("suggestions") as batch:
        batch.drop_column("reused")
    op.drop_table("run_deltas")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(batch.f("fk_runs_baseline_run_id_runs"), type_="foreignkey")
        batch.drop_constraint(batch.f("fk_runs_schedule_id_schedules"), type_="foreignkey")
        batch.drop_index(batch.f("ix_runs_schedule_id"))
        for column in (
            "regression_threshold",
            "regression",
            "baseline_run_id",
            "schedule_id",
            "model",
            "fingerprint",
        ):
            batch.drop_column(column)
    op.drop_table("schedules")
