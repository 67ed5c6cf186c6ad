"""Engines, sessions and migrations for the two supported databases: SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url
from sqlalchemy.orm import Session, sessionmaker

from aixaudit.errors import ConfigError, SchemaError
from aixaudit.resources import migrations_dir

MIGRATIONS_DIR = migrations_dir()
# How every refusal of a database behind this code ends.
UPGRADE_HINT = "run `aixaudit db upgrade`"


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


def _shown(url: str | URL) -> str:
    return _parse_url(url).render_as_string(hide_password=True)


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


def _migration_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # After _sqlite_pragmas: foreign keys off, which is possible only outside a transaction, and
    # the driver's implicit transactions off, so that the "begin" event's BEGIN is the only one.
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    dbapi_connection.isolation_level = None


def _begin(connection: Connection) -> None:
    # IMMEDIATE: the write lock at once, so processes migrating a new file together take turns
    # (the later ones then find it current) instead of failing with "database is locked".
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def migration_engine(url: str | URL) -> Engine:
    """The engine Alembic runs on. On SQLite, a batch migration copies a table (create, copy,
    drop the old one, rename): with foreign keys on, the drop would cascade into every child
    table. So foreign keys are off and the whole migration is one transaction, which
    `check_foreign_keys` inspects before it commits (SQLite's documented way to alter a table).
    The application's engines (make_engine) keep foreign keys on."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _migration_pragmas)
        event.listen(engine, "begin", _begin)
    return engine


def check_foreign_keys(connection: Connection) -> None:
    """Fail, rolling the migration back, when it left a reference without its row: on SQLite,
    the only backend that lets a migration do so (PostgreSQL checks every statement)."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        found = ", ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in broken)
        raise SchemaError(f"The migration left rows whose references are missing: {found}.")


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
    try:
        command.upgrade(alembic_config(url), revision)
    except CommandError as error:  # e.g. a revision from a newer aixaudit
        raise SchemaError(f"The database {_shown(url)} cannot be migrated: {error}.") from error


def require_current(url: str | URL) -> None:
    """Refuse a database at another schema revision than this code's: only `aixaudit db upgrade`
    (and `aixaudit api`) migrate, never a command in passing. A database without any table (a
    new SQLite file) is not behind: it is created at the current revision."""
    config = alembic_config(url)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            empty = not inspect(connection).get_table_names()
    finally:
        engine.dispose()
    if current == head:
        return
    shown = _shown(url)
    if current is None and empty:
        upgrade(url)
    elif current is None or _is_known(script, current):
        raise SchemaError(
            f"The database {shown} is at schema revision {current or 'none'}, behind this "
            f"aixaudit's {head}: {UPGRADE_HINT}"
        )
    else:
        raise SchemaError(
            f"The database {shown} is at schema revision {current}, which this aixaudit does not "
            f"know (a newer aixaudit migrated it): use that version or another database."
        )


def _is_known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False
