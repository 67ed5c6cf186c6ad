"""Reads and writes of repository context: the run's audited files, stored file outlines, and
the runs of an ablation (one per strategy, the same points, linked as a group)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aixaudit.store import queries
from aixaudit.store.queries import _IN_CHUNK, _insert_or_skip
from aixaudit.store.rows import file_row, point_row
from aixaudit.store.tables import ContextOutline, File, Point, Run, Suggestion


def audited_files(session: Session, *, run_id: int) -> list[tuple[str, str, str]]:
    """(path, language, sha256) of every file of the run that was audited, by path."""
    stmt = (
        select(File.path, File.language, File.sha256)
        .where(File.run_id == run_id, File.skip_reason.is_(None), File.language.is_not(None))
        .where(File.sha256.is_not(None))
        .order_by(File.path)
    )
    rows = [(path, language, sha) for path, language, sha in session.execute(stmt)]
    return cast(list[tuple[str, str, str]], rows)  # the WHERE keeps no NULL language or sha


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
        session.execute(_insert_or_skip(session, ContextOutline.__table__, unique=["key"]), rows)


def copy_run(
    session: Session, *, run_id: int, config: dict[str, Any], plan_key: str | None = None
) -> int:
    """A new pending run of the same checkout with `config`: the source run's files and points
    copied (texts are shared by hash); returns its id. A `plan_key` already taken fails the
    flush (IntegrityError)."""
    source = queries.get_run(session, run_id=run_id)
    run = queries.create_run(
        session,
        repository_id=source.repository_id,
        ref=source.ref,
        commit=source.commit,
        profile=source.profile,
        config=config,
        acceptance_rule=source.acceptance_rule,
        plan_key=plan_key,
    )
    files = session.scalars(select(File).where(File.run_id == run_id)).all()
    file_ids = queries.add_files(session, run_id=run.id, files=[file_row(file) for file in files])
    paths = {file.id: file.path for file in files}
    points = session.scalars(select(Point).where(Point.run_id == run_id)).all()
    queries.add_points(
        session,
        run_id=run.id,
        points=[point_row(point, file_id=file_ids[paths[point.file_id]]) for point in points],
    )
    run.points_total = source.points_total
    return run.id


def set_group(session: Session, *, run_ids: Sequence[int], group_id: int) -> None:
    session.execute(update(Run).where(Run.id.in_(list(run_ids))).values(group_id=group_id))


def group_runs(session: Session, *, group_id: int) -> list[tuple[int, str, float | None]]:
    """(run id, context strategy, mean prompt tokens of its suggestions) of a group, by id."""
    tokens = (
        select(func.avg(Suggestion.prompt_tokens))
        .where(Suggestion.run_id == Run.id, Suggestion.error.is_(None))
        .scalar_subquery()
    )
    rows = session.execute(
        select(Run.id, Run.config, tokens).where(Run.group_id == group_id).order_by(Run.id)
    )
    return [
        (run_id, config.get("context", "none"), None if mean is None else float(mean))
        for run_id, config, mean in rows
    ]
