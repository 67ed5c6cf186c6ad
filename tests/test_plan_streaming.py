"""Planning streams the tree: files are scanned one at a time and written in bounded batches,
so a plan's memory does not grow with the number of files (benchmarks/memory.py measures it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from aixaudit import audit, sources
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import queries
from aixaudit.store.db import session_factory
from aixaudit.store.tables import File

FILES = 12
BATCH = 3


def test_scan_yields_files_one_at_a_time_in_path_order(tmp_path: Path) -> None:
    for rel in ("b/c/d.py", "a0.py", "a/b.py", "a.py", "a/a.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    files = sources.scan(tmp_path)
    assert isinstance(files, Iterator)
    assert [f.path for f in files] == ["a.py", "a/a.py", "a/b.py", "a0.py", "b/c/d.py"]


def test_plan_writes_files_in_bounded_batches_while_the_scan_goes_on(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(FILES):
        (tmp_path / "repo" / f"f{number:02d}.py").parent.mkdir(exist_ok=True)
        (tmp_path / "repo" / f"f{number:02d}.py").write_text(f"def f{number}(x):\n    return x\n")
    scanned = 0  # files the scan has looked at so far
    classify = sources._classify

    def counted(
        root: Path, rel: str, max_bytes: int, roles: frozenset[sources.FileRole]
    ) -> sources.SourceFile:
        nonlocal scanned
        scanned += 1
        return classify(root, rel, max_bytes, roles)

    batches: list[tuple[int, int]] = []  # (files in the batch, files scanned when it was written)
    add_files = queries.add_files

    def recorded(
        session: Session, *, run_id: int, files: Sequence[Mapping[str, Any]]
    ) -> dict[str, int]:
        batches.append((len(files), scanned))
        return add_files(session, run_id=run_id, files=files)

    monkeypatch.setattr(sources, "_classify", counted)
    monkeypatch.setattr(queries, "add_files", recorded)
    monkeypatch.setattr(audit, "PLAN_BATCH_FILES", BATCH)
    sessions = session_factory(engine)
    checkout = sources.checkout(str(tmp_path / "repo"), ref=None, cache_dir=tmp_path / "cache")
    run_id = audit.plan_run(
        sessions, checkout=checkout, options=audit.AuditOptions(), rule=AcceptanceRule()
    )
    assert max(size for size, _ in batches) == BATCH
    # Each batch is written as soon as it is full: never more files scanned than written + 1.
    written = 0
    for size, seen in batches:
        written += size
        assert seen <= written + 1
    with sessions() as session:
        stored = session.scalar(select(func.count()).where(File.run_id == run_id))
    assert stored == written == FILES
