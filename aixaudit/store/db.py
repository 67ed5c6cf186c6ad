"""Engines, sessions and migrations for the two supported databases: SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from aixaudit.errors import ConfigError

# The repository root's migrations/ (the package lives at <root>/aixaudit/store/).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def _parse_url(url: str | URL) -> URL:
    """Accept only SQLite and PostgreSQL; plain `postgresql://` means psycopg 3, the driver we
    install (SQLAlchemy would otherwise pick psycopg2)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"The database URL must be sqlite or postgresql, not {backend!r}.")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite (cascades need them); WAL lets readers (the API,
    # `aixaudit report`) run while a worker writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for `url`; for a SQLite file, its directory is created first."""
    parsed = _parse_url(url)
    path = _sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, echo=echo)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (results are returned to callers)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | URL) -> Config:
    """Alembic's configuration for `url`, independent of the current directory and alembic.ini."""
    if not MIGRATIONS_DIR.is_dir():
        raise ConfigError(f"The migrations directory {MIGRATIONS_DIR} is missing.")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    rendered = _parse_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # configparser syntax
    return config


def upgrade(url: str | URL, *, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (creating a SQLite file and its directory)."""
    command.upgrade(alembic_config(url), revision)
