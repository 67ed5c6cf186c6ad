"""A run's points with their suggestions and scores, one page at a time, for browsing.

Points come in file order (path, then position), so pages are stable while workers add
results; a point not answered yet is listed with no suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

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


def suggestion_page(
    session: Session,
    *,
    run_id: int,
    offset: int = 0,
    limit: int = 50,
    accepted: bool | None = None,
    language: str | None = None,
    kind: str | None = None,
    role: str | None = None,
) -> SuggestionPage:
    """Points `offset` to `offset + limit` of the run; `accepted` keeps only points whose
    suggestion was (True) or was not (False) accepted, `language`, `kind` and `role` filter
    too."""
    get_run(session, run_id=run_id)  # RunNotFound for an unknown id
    filters = _filters(run_id=run_id, accepted=accepted, language=language, kind=kind, role=role)
    files, first, total = _files_of_page(
        session, filters, accepted=accepted is not None, offset=offset, limit=limit
    )
    rows = session.execute(
        select(*_POINT, File.path, File.language, File.role, Suggestion.id.label("suggestion_id"))
        .add_columns(*(getattr(Suggestion, name) for name in _ANSWER), Suggestion.text)
        .join(File, Point.file_id == File.id)
        .outerjoin(Suggestion, Suggestion.point_id == Point.id)
        .where(*filters, Point.file_id.in_(files))
        .order_by(File.path, Point.start_byte, Point.id)
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
    return SuggestionPage(
        run_id=run_id, total=int(total or 0), offset=offset, limit=limit, items=items
    )


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
    """The page's conditions; a point with no suggestion yet matches no `accepted` filter."""
    found = [Point.run_id == run_id]
    if accepted is not None:
        found.append(Suggestion.accepted == accepted)
    if language is not None:
        found.append(File.language == language)
    if kind is not None:
        found.append(Point.kind == kind)
    if role is not None:
        found.append(File.role == role)
    return found
