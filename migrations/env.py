"""Alembic environment: metadata from aixaudit's models; the URL from the caller's config
(sqlalchemy.url, as aixaudit.store.db.upgrade sets it) or else from aixaudit's settings."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import TypeDecorator

from aixaudit.config import get_settings
from aixaudit.store.db import check_foreign_keys, migration_engine
from aixaudit.store.tables import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def render_item(kind: str, item: Any, _context: AutogenContext) -> str | Literal[False]:
    """Write our column types (UTCDateTime) as the plain type they store, so that migrations
    never import the models."""
    if kind == "type" and isinstance(item, TypeDecorator):
        return f"sa.{item.impl!r}"
    return False


def configure(**options: Any) -> None:
    # Batch mode: SQLite can only alter tables by copying them.
    context.configure(
        target_metadata=Base.metadata, render_as_batch=True, render_item=render_item, **options
    )


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().db_url


def run_offline() -> None:
    """Write the SQL instead of running it (`alembic upgrade head --sql`)."""
    configure(url=database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """All pending migrations in one transaction (on SQLite too), checked before it commits."""
    engine = migration_engine(database_url())
    try:
        with engine.connect() as connection, connection.begin():
            configure(connection=connection)
            with context.begin_transaction():  # inside ours: Alembic leaves it to us
                context.run_migrations()
            check_foreign_keys(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
