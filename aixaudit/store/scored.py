"""A run's points with their outcome and scores, as columns: what intervals and comparisons
compute on. Two queries per run (points, scores), whatever its size; one row for a finished
run, whose rollup keeps them."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from aixaudit.store.queries import fresh_rollups, scores_of_run
from aixaudit.store.tables import File, Point, RunRollup, Score, Suggestion

UNKNOWN = "unknown"  # the group of points whose file has no language


@dataclass(frozen=True)
class ScoredPoints:
    """One entry per point of a run, in point id order. `answered`: a suggestion came back;
    `scores[metric]` is NaN where the point has no score."""

    point_id: npt.NDArray[np.int64]
    key: npt.NDArray[np.str_]  # path, byte range and span kind: the same point in another run
    path: npt.NDArray[np.str_]
    sha256: npt.NDArray[np.str_]  # the file's content hash ("" when not read)
    language: npt.NDArray[np.str_]
    kind: npt.NDArray[np.str_]
    role: npt.NDArray[np.str_]  # the file's role: source, test, example, generated
    answered: npt.NDArray[np.bool_]
    accepted: npt.NDArray[np.bool_]
    scores: dict[str, npt.NDArray[np.float64]]

    def __len__(self) -> int:
        return len(self.point_id)

    def take(self, index: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> ScoredPoints:
        """The points at `index` (positions or a mask), in that order."""
        return ScoredPoints(
            point_id=self.point_id[index],
            key=self.key[index],
            path=self.path[index],
            sha256=self.sha256[index],
            language=self.language[index],
            kind=self.kind[index],
            role=self.role[index],
            answered=self.answered[index],
            accepted=self.accepted[index],
            scores={name: values[index] for name, values in self.scores.items()},
        )

    def metric_sums(self) -> dict[str, tuple[float, int]]:
        """Each metric's sum and count over the points scored on it, by name: the sum exact
        (fsum), so the same in any order of the points."""
        found = {}
        for name, values in sorted(self.scores.items()):
            scored = values[~np.isnan(values)]
            if scored.size:
                found[name] = (math.fsum(scored.tolist()), int(scored.size))
        return found

    def to_bytes(self) -> bytes:
        """The columns as one .npz (no pickles): what a run's rollup keeps of it."""
        columns = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "scores"}
        scores = {_SCORE + name: values for name, values in self.scores.items()}
        buffer = io.BytesIO()
        np.savez(buffer, **columns, **scores)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, stored: bytes) -> ScoredPoints:
        with np.load(io.BytesIO(stored), allow_pickle=False) as found:
            columns = {name: found[name] for name in found.files if not name.startswith(_SCORE)}
            scores = {
                name.removeprefix(_SCORE): found[name]
                for name in found.files
                if name.startswith(_SCORE)
            }
        return cls(**columns, scores=scores)


_SCORE = "score:"


def scored_points(session: Session, *, run_id: int) -> ScoredPoints:
    """The run's points; a finished run's from its rollup, any other's from its rows."""
    stored = fresh_rollups(session, run_ids=[run_id], columns=[RunRollup.points])
    if run_id in stored:
        return ScoredPoints.from_bytes(stored[run_id].points)
    return scored_rows(session, run_id=run_id)


def scored_rows(session: Session, *, run_id: int) -> ScoredPoints:
    """The run's points read from its rows: two queries, whatever its size."""
    rows = session.execute(
        select(
            Point.id,
            Point.key,
            File.path,
            File.sha256,
            File.language,
            Point.kind,
            File.role,
            and_(Suggestion.id.is_not(None), Suggestion.error.is_(None)).label("answered"),
            Suggestion.accepted,
        )
        .join(File, and_(Point.file_id == File.id, File.run_id == run_id))
        .outerjoin(Suggestion, and_(Suggestion.point_id == Point.id, Suggestion.run_id == run_id))
        .where(Point.run_id == run_id)
        .order_by(Point.id)
    ).all()
    point_ids = np.array([row.id for row in rows], dtype=np.int64)
    found = session.execute(
        select(Suggestion.point_id, Score.metric_name, Score.value)
        .join(Score, Score.suggestion_id == Suggestion.id)
        .where(Suggestion.run_id == run_id, scores_of_run(session, run_id=run_id))
    ).all()
    names = np.array([row[1] for row in found], dtype=str)
    positions = np.searchsorted(point_ids, np.array([row[0] for row in found], dtype=np.int64))
    values = np.array([row[2] for row in found], dtype=float)
    scores: dict[str, npt.NDArray[np.float64]] = {}
    for name in np.unique(names).tolist():
        column = np.full(len(rows), np.nan)
        mine = names == name
        column[positions[mine]] = values[mine]
        scores[name] = column
    return ScoredPoints(
        point_id=point_ids,
        key=np.array([row.key for row in rows], dtype=str),
        path=np.array([row.path for row in rows], dtype=str),
        sha256=np.array([row.sha256 or "" for row in rows], dtype=str),
        language=np.array([row.language or UNKNOWN for row in rows], dtype=str),
        kind=np.array([row.kind for row in rows], dtype=str),
        role=np.array([row.role for row in rows], dtype=str),
        answered=np.array([bool(row.answered) for row in rows], dtype=bool),
        accepted=np.array([bool(row.accepted) for row in rows], dtype=bool),
        scores=scores,
    )


@dataclass(frozen=True)
class PointText:
    path: str
    start_line: int
    end_line: int
    original: str
    text: str | None  # the suggestion, None when none came back


def point_texts(session: Session, point_ids: Sequence[int]) -> dict[int, PointText]:
    """Where each point is and what was and was suggested there, by point id (one query)."""
    rows = session.execute(
        select(Point.id, File.path, Point.start_line, Point.end_line, Point.original)
        .add_columns(Suggestion.text)
        .join(File, Point.file_id == File.id)
        .outerjoin(Suggestion, Suggestion.point_id == Point.id)
        .where(Point.id.in_(list(point_ids)))
    )
    return {
        row.id: PointText(row.path, row.start_line, row.end_line, row.original, row.text)
        for row in rows
    }
