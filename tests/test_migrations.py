"""Migrations never lose data: every step up and down, on SQLite and PostgreSQL, with rows in
every table. The rows are generated from the reflected schema, so a new migration is covered
without touching this file; a column type the generator does not know fails the test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import count, pairwise
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
)

from aixaudit.errors import SchemaError
from aixaudit.store.db import (
    alembic_config,
    check_foreign_keys,
    make_engine,
    migration_engine,
    upgrade,
)

ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_TABLE = 3
# Oldest first; "base" is the empty database.
REVISIONS = [
    "base",
    *reversed([s.revision for s in ScriptDirectory(str(ROOT / "migrations")).walk_revisions()]),
]


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
