"""A run's points with their suggestions and scores, one page at a time, for browsing.

Points come in file order (path, then position), so pages are stable while workers add
results; a point not answered yet is listed with no suggestion. A page is asked for by its
offset, or by a cursor: the last point of the page before (`next_after`), which reads the page
from the run's files in path order without placing every point before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.orm import Session

from aixaudit.errors import RunNotFound
from aixaudit.store.queries import get_run
from aixaudit.store.tables import File, Point, Score, Suggestion


@dataclass(frozen=True)
class PointResult:
    """A point and what the model answered; the suggestion fields are None until it did."""

    point_id: int
    path: str
    language: str | None
    kind: str
    role: str  # the file's role
    node_type: str
    start_line: int
    end_line: int
    original: str
    suggestion: str | None  # post-processed text, as scored
    raw_text: str | None
    error: str | None  # every request for the point failed
    accepted: bool | None
    reused: bool | None
    latency_ms: float | None
    lines_suggested: int | None
    lines_accepted: int | None
    chars_suggested: int | None
    chars_accepted: int | None
    scores: dict[str, float]


@dataclass(frozen=True)
class SuggestionPage:
    run_id: int
    total: int  # points matching the filters, on every page
    offset: int
    limit: int
    items: list[PointResult]
    next_after: int | None = None  # the cursor of the next page; None on the last one


def suggestion_page(
    session: Session,
    *,
    run_id: int,
    offset: int = 0,
    after: int | None = None,
    limit: int = 50,
    accepted: bool | None = None,
    language: str | None = None,
    kind: str | None = None,
    role: str | None = None,
) -> SuggestionPage:
    """Points `offset` to `offset + limit` of the run, or the `limit` points after the point
    `after` (a cursor: RunNotFound when the run has no such point); `accepted` keeps only
    points whose suggestion was (True) or was not (False) accepted, `language`, `kind` and
    `role` filter too."""
    get_run(session, run_id=run_id)  # RunNotFound for an unknown id
    filters = _filters(run_id=run_id, accepted=accepted, language=language, kind=kind, role=role)
    if after is None:
        files, first, total = _files_of_page(
            session, filters, accepted=accepted is not None, offset=offset, limit=limit
        )
        page: list[ColumnElement[bool]] = [Point.file_id.in_(files)]
    else:
        page, offset, total = _after(
            session, filters, run_id=run_id, accepted=accepted is not None, after=after
        )
        first = 0
    rows = session.execute(
        select(*_POINT, File.path, File.language, File.role, Suggestion.id.label("suggestion_id"))
        .add_columns(*(getattr(Suggestion, name) for name in _ANSWER), Suggestion.text)
        .join(File, Point.file_id == File.id)
        .outerjoin(Suggestion, Suggestion.point_id == Point.id)
        .where(*filters, *page)
        .order_by(*_ORDER)
        .offset(first)
        .limit(limit)
    ).all()
    scores: dict[int, dict[str, float]] = {}
    suggestion_ids = [row.suggestion_id for row in rows if row.suggestion_id is not None]
    for suggestion_id, name, value in session.execute(
        select(Score.suggestion_id, Score.metric_name, Score.value)
        .where(Score.suggestion_id.in_(suggestion_ids))
        .order_by(Score.metric_name)
    ):
        scores.setdefault(suggestion_id, {})[name] = value
    items = [
        PointResult(
            point_id=row.id,
            path=row.path,
            language=row.language,
            kind=row.kind,
            role=row.role,
            node_type=row.node_type,
            start_line=row.start_line,
            end_line=row.end_line,
            original=row.original,
            scores=scores.get(row.suggestion_id, {}),
            suggestion=row.text,
            **{name: getattr(row, name) for name in _ANSWER},
        )
        for row in rows
    ]
    more = bool(items) and offset + len(items) < total
    return SuggestionPage(
        run_id=run_id,
        total=total,
        offset=offset,
        limit=limit,
        items=items,
        next_after=items[-1].point_id if more else None,
    )


_ORDER = (File.path, Point.start_byte, Point.id)


def _after(
    session: Session,
    filters: list[ColumnElement[bool]],
    *,
    run_id: int,
    accepted: bool,
    after: int,
) -> tuple[list[ColumnElement[bool]], int, int]:
    """The conditions of the page after point `after` (in `_ORDER`: files from the cursor's
    path on, which the (run_id, path) index finds), the page's offset and the matching points
    in all, both counted in one query."""
    cursor = session.execute(
        select(*_ORDER)
        .join(File, Point.file_id == File.id)
        .where(Point.run_id == run_id, Point.id == after)
    ).one_or_none()
    if cursor is None:
        raise RunNotFound(f"Run {run_id} has no point with id {after}.")
    later = tuple_(*_ORDER) > tuple_(*cursor)
    counted = select(func.count(), func.count().filter(~later)).select_from(Point)
    counted = counted.join(File, Point.file_id == File.id)
    if accepted:  # only that filter looks at suggestions
        counted = counted.join(Suggestion, Suggestion.point_id == Point.id)
    total, before = session.execute(counted.where(*filters)).one()
    return [File.path >= cursor.path, later], int(before), int(total)


def _files_of_page(
    session: Session,
    filters: list[ColumnElement[bool]],
    *,
    accepted: bool,
    offset: int,
    limit: int,
) -> tuple[list[int], int, int]:
    """The files (in path order) whose matching points hold the page, the page's offset in
    the first of them, and the matching points in all: the page then sorts a few files'
    points, not the whole run's, however deep it lies."""
    counted = select(File.id, func.count(Point.id)).join(Point, Point.file_id == File.id)
    if accepted:  # only that filter looks at suggestions
        counted = counted.join(Suggestion, Suggestion.point_id == Point.id)
    counts = session.execute(
        counted.where(*filters).group_by(File.id, File.path).order_by(File.path)
    ).all()
    files: list[int] = []
    first, seen = 0, 0
    for file_id, count in counts:
        if seen + count > offset and seen < offset + limit:
            first = first if files else offset - seen
            files.append(file_id)
        seen += count
    return files, first, seen


_POINT = (
    Point.id,
    Point.kind,
    Point.node_type,
    Point.start_line,
    Point.end_line,
    Point.original,
)
_ANSWER = (
    "raw_text",
    "error",
    "accepted",
    "reused",
    "latency_ms",
    "lines_suggested",
    "lines_accepted",
    "chars_suggested",
    "chars_accepted",
)


def _filters(
    *,
    run_id: int,
    accepted: bool | None,
    language: str | None,
    kind: str | None,
    role: str | None,
) -> list[ColumnElement[bool]]:
    """The page's conditions; a point with no suggestion yet matches no `accepted` filter.
    Files are kept to the run's too: the planner then reads them by the (run_id, path) index
    instead of scanning every file in the store."""
    found = [Point.run_id == run_id, File.run_id == run_id]
    if accepted is not None:
        found.append(Suggestion.accepted == accepted)
    if language is not None:
        found.append(File.language == language)
    if kind is not None:
        found.append(Point.kind == kind)
    if role is not None:
        found.append(File.role == role)
    return found
