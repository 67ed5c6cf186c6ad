"""A run's points with their suggestions and scores, one page at a time, for browsing.

Points come in file order (path, then position), so pages are stable while workers add
results; a point not answered yet is listed with no suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
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
    matching = _matching(run_id=run_id, accepted=accepted, language=language, kind=kind, role=role)
    total = session.scalar(select(func.count()).select_from(matching.subquery()))
    rows = session.execute(
        matching.add_columns(File.path, File.language, File.role, Suggestion)
        .order_by(File.path, Point.start_byte, Point.id)
        .offset(offset)
        .limit(limit)
    ).all()
    scores: dict[int, dict[str, float]] = {}
    suggestion_ids = [row.Suggestion.id for row in rows if row.Suggestion is not None]
    for suggestion_id, name, value in session.execute(
        select(Score.suggestion_id, Score.metric_name, Score.value)
        .where(Score.suggestion_id.in_(suggestion_ids))
        .order_by(Score.metric_name)
    ):
        scores.setdefault(suggestion_id, {})[name] = value
    items = [
        PointResult(
            point_id=row.Point.id,
            path=row.path,
            language=row.language,
            kind=row.Point.kind,
            role=row.role,
            node_type=row.Point.node_type,
            start_line=row.Point.start_line,
            end_line=row.Point.end_line,
            original=row.Point.original,
            scores=scores.get(row.Suggestion.id, {}) if row.Suggestion else {},
            **_answer(row.Suggestion),
        )
        for row in rows
    ]
    return SuggestionPage(
        run_id=run_id, total=int(total or 0), offset=offset, limit=limit, items=items
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


def _answer(suggestion: Suggestion | None) -> dict[str, Any]:
    """PointResult's suggestion fields: all None for a point not answered yet."""
    if suggestion is None:
        return dict.fromkeys(_ANSWER) | {"suggestion": None}
    return {name: getattr(suggestion, name) for name in _ANSWER} | {"suggestion": suggestion.text}


def _matching(
    *,
    run_id: int,
    accepted: bool | None,
    language: str | None,
    kind: str | None,
    role: str | None,
) -> Select[Point]:
    stmt = (
        select(Point)
        .join(File, Point.file_id == File.id)
        .outerjoin(Suggestion, Suggestion.point_id == Point.id)
        .where(Point.run_id == run_id)
    )
    if accepted is not None:
        stmt = stmt.where(Suggestion.accepted == accepted)
    if language is not None:
        stmt = stmt.where(File.language == language)
    if kind is not None:
        stmt = stmt.where(Point.kind == kind)
    if role is not None:
        stmt = stmt.where(File.role == role)
    return stmt
