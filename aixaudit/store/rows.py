"""The rows the audit hands to the store's bulk writes, typed so that a misspelt or missing column
fails the type check rather than the INSERT."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from aixaudit.store.tables import File, Point, Suggestion


class FileRow(TypedDict):
    """A scanned file (`queries.add_files`); a skipped one has no sha256 and says why."""

    path: str
    language: str | None
    size: int
    sha256: str | None
    skip_reason: str | None
    detail: str | None
    role: str


class PointRow(TypedDict):
    """A completion point (`queries.add_points`), run_id added there."""

    file_id: int
    key: str
    kind: str
    node_type: str
    start_byte: int
    end_byte: int
    start_line: int
    end_line: int
    original: str


class ResultRow(TypedDict):
    """A suggestion with its scores by metric name (`queries.add_results`). A failed request
    has no text and no scores; the accepted and line/char counts come with an answer."""

    point_id: int
    run_id: int
    raw_text: str | None
    text: str | None
    scores: dict[str, float]
    prompt_tokens: NotRequired[int | None]
    output_tokens: NotRequired[int | None]
    latency_ms: NotRequired[float | None]
    queued_ms: NotRequired[float | None]
    max_new_tokens: NotRequired[int | None]
    prompt_truncated: NotRequired[bool | None]
    attempts: NotRequired[int]
    retries: NotRequired[list[str] | None]
    error: NotRequired[str | None]
    accepted: NotRequired[bool]
    lines_suggested: NotRequired[int]
    lines_accepted: NotRequired[int]
    chars_suggested: NotRequired[int]
    chars_accepted: NotRequired[int]
    reused: NotRequired[bool]


def file_row(file: File) -> FileRow:
    """A stored file as a row again (a run copied with other options)."""
    return {
        "path": file.path,
        "language": file.language,
        "size": file.size,
        "sha256": file.sha256,
        "skip_reason": file.skip_reason,
        "detail": file.detail,
        "role": file.role,
    }


def point_row(point: Point, *, file_id: int) -> PointRow:
    """A stored point as a row again, under the file of the copy."""
    return {
        "file_id": file_id,
        "key": point.key,
        "kind": point.kind,
        "node_type": point.node_type,
        "start_byte": point.start_byte,
        "end_byte": point.end_byte,
        "start_line": point.start_line,
        "end_line": point.end_line,
        "original": point.original,
    }


def reused_result(
    suggestion: Suggestion, *, point_id: int, run_id: int, scores: dict[str, float]
) -> ResultRow:
    """A stored suggestion taken over by another run's point (ids, run, point and time are new)."""
    return {
        "point_id": point_id,
        "run_id": run_id,
        "raw_text": suggestion.raw_text,
        "text": suggestion.text,
        "scores": scores,
        "prompt_tokens": suggestion.prompt_tokens,
        "output_tokens": suggestion.output_tokens,
        "latency_ms": suggestion.latency_ms,
        "queued_ms": suggestion.queued_ms,
        "max_new_tokens": suggestion.max_new_tokens,
        "prompt_truncated": suggestion.prompt_truncated,
        "attempts": suggestion.attempts,
        "accepted": suggestion.accepted,
        "lines_suggested": suggestion.lines_suggested,
        "lines_accepted": suggestion.lines_accepted,
        "chars_suggested": suggestion.chars_suggested,
        "chars_accepted": suggestion.chars_accepted,
        "reused": True,
    }
