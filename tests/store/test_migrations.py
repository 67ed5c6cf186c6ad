"""Migrations never lose data, and only `aixaudit db upgrade` (and `api`) run them.

Every step up and down, on SQLite and PostgreSQL, with rows in every table. The rows are
generated from the reflected schema, so a new migration is covered without touching this file;
a column type the generator does not know fails the test. Every other command, and the workers,
refuse a database at another revision."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import count, pairwise
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from paths import ROOT
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
    update,
)

from aixaudit import cli
from aixaudit.config import get_settings
from aixaudit.errors import SchemaError
from aixaudit.store.db import (
    UPGRADE_HINT,
    alembic_config,
    check_foreign_keys,
    make_engine,
    migration_engine,
    upgrade,
)

ROWS_PER_TABLE = 3
# Oldest first; "base" is the empty database.
REVISIONS = [
    "base",
    *reversed([s.revision for s in ScriptDirectory(str(ROOT / "migrations")).walk_revisions()]),
]

HEAD, BEHIND = REVISIONS[-1], REVISIONS[-2]


def _value(column: Any, n: int) -> Any:
    """A valid value for `column`, distinct for each n (unique constraints hold)."""
    kind = column.type
    if isinstance(kind, Boolean):
        return n % 2 == 0
    if isinstance(kind, Integer):
        return n
    if isinstance(kind, Float):
        return n + 0.25
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    if isinstance(kind, Date):
        return date(2026, 1, 1) + timedelta(days=n)
    if isinstance(kind, JSON):
        return {"n": n, "text": "ünïcode"}
    if isinstance(kind, String):
        return f"{n}-{column.name}-ü"[: kind.length]
    if isinstance(kind, LargeBinary):
        return f"{n}-{column.name}".encode() + bytes([0, 255])
    raise TypeError(f"no test value for {column.table.name}.{column.name} ({kind!r})")


def _referenced_row(connection: Connection, table: Table, constraint: Any) -> tuple[Any, ...]:
    """The parent row that this table's rows reference least: one-to-one while parents last,
    so a unique foreign key (suggestions.point_id) stays unique."""
    keys = [constraint.referred_table.c[element.column.name] for element in constraint.elements]
    own = [table.c[name] for name in constraint.column_keys]
    children = Counter(tuple(row) for row in connection.execute(select(*own)))
    parents = [tuple(row) for row in connection.execute(select(*keys).order_by(*keys))]
    assert parents, f"{constraint.referred_table.name} has no rows for {table.name}"
    return min(parents, key=lambda key: children[key])


def _generated(table: Table, column: Any) -> bool:
    """The database numbers it: a single integer primary key."""
    keys = list(table.primary_key.columns)
    return keys == [column] and isinstance(column.type, Integer) and not column.foreign_keys


def fill(connection: Connection, numbers: count[int]) -> None:
    """Add ROWS_PER_TABLE rows to every table, parents first, every column set (a table's
    reference to itself is null in its first row)."""
    metadata = MetaData()
    metadata.reflect(connection)
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        for _ in range(ROWS_PER_TABLE):
            row: dict[str, Any] = {}
            for constraint in table.foreign_key_constraints:
                empty = not connection.scalar(select(func.count()).select_from(table))
                if constraint.referred_table is table and empty:
                    continue
                values = _referenced_row(connection, table, constraint)
                row.update(zip(constraint.column_keys, values, strict=True))
            for column in table.columns:
                wanted = column.name not in row and not column.foreign_keys
                if wanted and not _generated(table, column):
                    row[column.name] = _value(column, next(numbers))
            connection.execute(insert(table).values(row))


Contents = dict[str, tuple[list[str], list[dict[str, Any]]]]  # table -> (columns, rows)


def contents(engine: Engine) -> Contents:
    metadata = MetaData()
    with engine.connect() as connection:
        metadata.reflect(connection)
        return {
            name: (
                list(table.c.keys()),
                [dict(row._mapping) for row in connection.execute(select(table))],
            )
            for name, table in metadata.tables.items()
            if name != "alembic_version"
        }


def assert_kept(before: Contents, after: Contents) -> None:
    """Each table on both sides has as many rows as before, with the same values in the columns
    on both sides."""
    for name in sorted(before.keys() & after.keys()):
        (old_columns, old_rows), (new_columns, new_rows) = before[name], after[name]
        assert len(new_rows) == len(old_rows), (
            f"{name}: {len(old_rows)} rows, {len(new_rows)} after"
        )
        shared = [column for column in old_columns if column in new_columns]
        assert _rendered(old_rows, shared) == _rendered(new_rows, shared), name


def _rendered(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    return sorted(repr([row[column] for column in columns]) for row in rows)


def revision(engine: Engine) -> str:
    with engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection, only=lambda name, _: name == "alembic_version")
        if "alembic_version" not in tables.tables:
            return "base"
        return connection.scalar(select(tables.tables["alembic_version"])) or "base"


@pytest.mark.parametrize(("older", "newer"), list(pairwise(REVISIONS)))
def test_each_migration_keeps_every_row_up_and_down(db_url: str, older: str, newer: str) -> None:
    config = alembic_config(db_url)
    numbers = count(1)
    command.upgrade(config, older)
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            fill(connection, numbers)
        before = contents(engine)
        command.upgrade(config, newer)
        assert revision(engine) == newer
        assert_kept(before, contents(engine))

        with engine.begin() as connection:
            fill(connection, numbers)  # rows in the new tables and columns too
        before = contents(engine)
        command.downgrade(config, older)
        assert revision(engine) == older
        assert_kept(before, contents(engine))
    finally:
        engine.dispose()


def test_alembic_check_finds_no_drift(db_url: str, tmp_path: Path) -> None:
    """`alembic check` (the command, from the repository root) after `upgrade head`."""
    upgrade(db_url)
    env = {**os.environ, "AIXAUDIT_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    checked = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr


def test_sqlite_migrates_without_foreign_keys_and_checks_them(tmp_path: Path) -> None:
    """On SQLite a migration runs with foreign keys off (a table copy cascades nothing), in one
    transaction that `check_foreign_keys` rolls back when references broke; the application's
    engine keeps foreign keys on."""
    url = f"sqlite:///{tmp_path / 'aixaudit.db'}"
    upgrade(url)
    engine, migrating = make_engine(url), migration_engine(url)
    try:
        with engine.begin() as connection:
            fill(connection, count(1))
        with (
            pytest.raises(SchemaError, match="references are missing"),
            migrating.connect() as connection,
            connection.begin(),
        ):
            assert connection.scalar(text("PRAGMA foreign_keys")) == 0
            connection.execute(text("DELETE FROM repositories"))
            check_foreign_keys(connection)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM repositories")) == ROWS_PER_TABLE
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1
    finally:
        engine.dispose()
        migrating.dispose()


@pytest.fixture
def cli_db(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`db_url` as the database of the CLI and of the workers in this process."""
    from workers import context

    for name in list(os.environ):
        if name.startswith("AIXAUDIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIXAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIXAUDIT_DATABASE_URL", db_url)
    get_settings.cache_clear()
    context._sessions.cache_clear()
    yield db_url
    get_settings.cache_clear()
    context._sessions.cache_clear()


def at_revision(url: str) -> str:
    engine = make_engine(url)
    try:
        return revision(engine)
    finally:
        engine.dispose()


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    return message


DATABASE_COMMANDS = [
    ["audit", "."],
    ["report", "1"],
    ["runs"],
    ["status", "1"],
    ["resume", "1"],
    ["cancel", "1"],
    ["schedule", "add", "https://git.example.com/team/repo.git"],
    ["schedule", "list"],
    ["schedule", "remove", "1"],
    ["schedule", "run", "1"],
]


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_commands_refuse_a_database_behind(cli_db: str, args: list[str]) -> None:
    upgrade(cli_db, revision=BEHIND)
    assert one_line_error(args).endswith(UPGRADE_HINT)
    assert at_revision(cli_db) == BEHIND


def test_db_upgrade_migrates_and_then_commands_work(cli_db: str) -> None:
    upgrade(cli_db, revision=BEHIND)
    assert CliRunner().invoke(cli.main, ["db", "upgrade"]).exit_code == 0
    result = CliRunner().invoke(cli.main, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "[]"
    assert at_revision(cli_db) == HEAD


def test_a_database_without_tables_is_created_at_head(cli_db: str) -> None:
    result = CliRunner().invoke(cli.main, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    assert at_revision(cli_db) == HEAD


def test_tables_without_a_revision_are_behind(cli_db: str) -> None:
    engine = make_engine(cli_db)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    assert one_line_error(["runs"]).endswith(UPGRADE_HINT)
    assert at_revision(cli_db) == "base"


def test_a_database_ahead_is_refused(cli_db: str) -> None:
    upgrade(cli_db)
    engine = make_engine(cli_db)
    try:
        with engine.begin() as connection:
            version = MetaData()
            version.reflect(connection, only=["alembic_version"])
            connection.execute(update(version.tables["alembic_version"]).values(version_num="9999"))
    finally:
        engine.dispose()
    assert "schema revision 9999, which this aixaudit does not know" in one_line_error(["runs"])
    assert "Can't locate revision identified by '9999'" in one_line_error(["db", "upgrade"])
    assert at_revision(cli_db) == "9999"


def test_workers_refuse_a_database_behind(cli_db: str) -> None:
    """A task that opens the database fails with the refusal (not retried, nothing migrated);
    after `aixaudit db upgrade` the same worker process goes on."""
    from workers import context, tasks

    upgrade(cli_db, revision=BEHIND)
    failed = tasks.finalize_run.apply(args=(1,))
    assert failed.failed() and isinstance(failed.result, SchemaError)
    assert str(failed.result).endswith(UPGRADE_HINT)
    assert at_revision(cli_db) == BEHIND

    upgrade(cli_db)
    with context.sessions()() as session:
        assert session.scalar(text("SELECT count(*) FROM runs")) == 0


def test_a_worker_does_not_start_on_a_database_behind(cli_db: str) -> None:
    upgrade(cli_db, revision=BEHIND)
    own_keys = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"  # were it to start, it takes no task
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool", "solo"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "AIXAUDIT_CELERY_KEY_PREFIX": own_keys},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 1, worker.stderr
    assert worker.stderr.strip().splitlines()[-1].endswith(UPGRADE_HINT)
    assert at_revision(cli_db) == BEHIND
