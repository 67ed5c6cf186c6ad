"""Reads and writes of repository context: the run's audited files and stored file outlines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aixaudit.store.queries import _IN_CHUNK, _insert_or_skip
from aixaudit.store.tables import ContextOutline, File


def audited_files(session: Session, *, run_id: int) -> list[tuple[str, str, str]]:
    """(path, language, sha256) of every file of the run that was audited, by path."""
    stmt = (
        select(File.path, File.language, File.sha256)
        .where(File.run_id == run_id, File.skip_reason.is_(None), File.language.is_not(None))
        .where(File.sha256.is_not(None))
        .order_by(File.path)
    )
    return [(path, language, sha) for path, language, sha in session.execute(stmt)]


def get_outlines(session: Session, *, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(keys))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        stmt = select(ContextOutline.key, ContextOutline.outline).where(
            ContextOutline.key.in_(chunk)
        )
        found.update(session.execute(stmt).all())
    return found


def add_outlines(session: Session, *, outlines: Mapping[str, dict[str, Any]]) -> None:
    """Store outlines by key; one already stored (another worker's) is not written again."""
    if outlines:
        rows = [{"key": key, "outline": outline} for key, outline in outlines.items()]
        session.execute(_insert_or_skip(session, ContextOutline, unique=["key"]), rows)
