"""Shared fixtures: databases, and the real Triton server on the CPU model.

Database: a test that takes `db_url` or `engine` runs on SQLite and on PostgreSQL.
PostgreSQL (127.0.0.1:5432, trust auth) is required unless AIXAUDIT_SKIP_PG=1. Each test session
gets its own database, and each test its own schema in it, so parallel runs never meet.

Lanes: a test that needs a running service (PostgreSQL, Redis, an HTTP server, Chromium) is
marked `services`, those on PostgreSQL by their `postgresql` parameter here, the others by their
module; `make test-fast` runs what is neither `services` nor `triton`.

Triton: `triton_server` is one tritonserver per session serving model_repo/cpu with the converted
SmolLM2; tests that take it are marked `triton`. The conversion is kept in the checkout's
git-ignored `.aixaudit/` so only the first run pays for it. `fixed_cost_server` serves the same
ensemble around the fixed-cost `tensorrt_llm` (FIXED_COST_DELAY_MS per batch of up to
FIXED_COST_BATCH requests, answers = the prompt's last tokens): fast, deterministic, and its
statistics show what a client made the server do.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from aixaudit.config import Settings, get_settings
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton, cpu_declared, cpu_repository
from aixaudit.model_repo import render_fixed_cost
from aixaudit.store.db import make_engine, upgrade
from aixaudit.weights import ensure_cpu_model

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SKIP_PG = os.environ.get("AIXAUDIT_SKIP_PG") == "1"


def _admin(database: str, statement: sql.Composed) -> None:
    with psycopg.connect(f"{PG_SERVER}/{database}", autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"aixaudit_test_{uuid.uuid4().hex[:12]}"
    _admin("test", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        _admin("test", sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the PostgreSQL half of every `db_url` / `module_db_url` test as needing services."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.params.values():
            item.add_marker(pytest.mark.services)


BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(SKIP_PG, reason="AIXAUDIT_SKIP_PG=1")),
]


@contextmanager
def _empty_database(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A SQLite file in `directory` (not yet made) or a PostgreSQL schema, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{directory / 'db' / 'aixaudit.db'}"
        return
    database = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _admin(database, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}?options=-csearch_path%3D{schema}"
    finally:
        _admin(database, sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file (its directory not yet made) or a PostgreSQL schema."""
    with _empty_database(request, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`db_url` shared by a whole test module: for tests that read one seeded database (through
    one server started on it)."""
    with _empty_database(request, tmp_path_factory.mktemp("module-db")) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to the latest revision."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


TEST_DATA_DIR = Path(__file__).resolve().parent.parent / ".aixaudit"


@pytest.fixture(scope="session")
def cpu_model_dir() -> Path:
    """The converted CPU model (converted on the first run only)."""
    return ensure_cpu_model(Settings(_env_file=None, data_dir=TEST_DATA_DIR, cpu_model_dir=None))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """AIXAUDIT_DATA_DIR for CLI calls in this process (the database in it), every other
    AIXAUDIT_ setting of this shell unset."""
    for name in list(os.environ):
        if name.startswith("AIXAUDIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIXAUDIT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


@pytest.fixture
def embedded_env(tmp_path: Path, cpu_model_dir: Path) -> dict[str, str]:
    """The environment of an `aixaudit` subprocess on the embedded defaults: no AIXAUDIT_
    setting of this shell, a data directory of its own, the converted CPU model."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")}
    return clean | {
        "AIXAUDIT_DATA_DIR": str(tmp_path / "data"),
        "AIXAUDIT_CPU_MODEL_DIR": str(cpu_model_dir),
    }


@pytest.fixture(scope="session")
def triton_server(
    cpu_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    """The bundled tritonserver serving model_repo/cpu as `aixaudit serve` does (declaring its
    profile, model and tokenizer), stopped at the end of the session."""
    server = LocalTriton(log_dir=tmp_path_factory.mktemp("triton-logs"))
    declared = cpu_declared(Settings(_env_file=None, data_dir=TEST_DATA_DIR, cpu_model_dir=None))
    with server.start(cpu_repository(), env={MODEL_DIR_ENV: str(cpu_model_dir)}, declared=declared):
        yield server


FIXED_COST_DELAY_MS = 50
FIXED_COST_BATCH = 8


@pytest.fixture(scope="session")
def fixed_cost_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model_repo/cpu's ensemble around the fixed-cost `tensorrt_llm`, one instance."""
    return render_fixed_cost(
        tmp_path_factory.mktemp("fixed-cost") / "repo",
        delay_ms=FIXED_COST_DELAY_MS,
        max_batch_size=FIXED_COST_BATCH,
    )


@pytest.fixture(scope="session")
def fixed_cost_server(
    fixed_cost_repo: Path, cpu_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    """The bundled tritonserver serving `fixed_cost_repo` (tokenizer from the CPU model)."""
    server = LocalTriton(log_dir=tmp_path_factory.mktemp("fixed-cost-logs"))
    with server.start(fixed_cost_repo, env={MODEL_DIR_ENV: str(cpu_model_dir)}):
        yield server


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """The real Chromium the page tests drive headless."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("AIXAUDIT_SKIP_BROWSER") == "1":
            pytest.skip("AIXAUDIT_SKIP_BROWSER=1")
        pytest.fail(
            "chromium is not installed: run `apt-get update && apt-get install -y chromium` "
            "(or set AIXAUDIT_SKIP_BROWSER=1 to skip the browser tests)"
        )
    return binary
