"""Persistence: the schema (tables), engines and migrations (db), reads and writes (queries)."""

from aixaudit.store.db import alembic_config, make_engine, session_factory, upgrade
from aixaudit.store.tables import RunStatus

__all__ = ["RunStatus", "alembic_config", "make_engine", "session_factory", "upgrade"]
