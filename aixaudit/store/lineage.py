"""A run's relation to earlier runs of its repository: which run to reuse results from or to
compare with, the results an unchanged file can take over, and the stored comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.orm import Session, aliased

from aixaudit.store.queries import FINAL, get_run
from aixaudit.store.rows import ResultRow, reused_result
from aixaudit.store.tables import (
    File,
    Point,
    Run,
    RunComparison,
    RunDelta,
    RunStatus,
    Score,
    Suggestion,
)

FINISHED = (RunStatus.DONE.value, RunStatus.PARTIAL.value)


def previous_run(session: Session, *, run_id: int, fingerprint: str | None = None) -> Run | None:
    """The latest finished (done or partial) run of the same repository before `run_id`; with
    a fingerprint, the latest such run that had the same one."""
    run = get_run(session, run_id=run_id)
    stmt = select(Run).where(
        Run.repository_id == run.repository_id, Run.id < run_id, Run.status.in_(FINISHED)
    )
    if fingerprint is not None:
        stmt = stmt.where(Run.fingerprint == fingerprint)
    return session.scalars(stmt.order_by(Run.id.desc()).limit(1)).first()


def reusable_results(session: Session, *, run_id: int, source_run_id: int) -> list[ResultRow]:
    """Results of `source_run_id` for the points of `run_id` whose file has the same path and
    content there, as `queries.add_results` rows marked reused. Failed requests are not reused."""
    new_point, old_point = aliased(Point), aliased(Point)
    new_file, old_file = aliased(File), aliased(File)
    rows = session.execute(
        select(new_point.id, Suggestion)
        .join(new_file, new_point.file_id == new_file.id)
        .join(
            old_file,
            and_(
                old_file.run_id == source_run_id,
                old_file.path == new_file.path,
                old_file.sha256 == new_file.sha256,
            ),
        )
        .join(old_point, and_(old_point.file_id == old_file.id, old_point.key == new_point.key))
        .join(Suggestion, and_(Suggestion.point_id == old_point.id, Suggestion.error.is_(None)))
        .where(new_point.run_id == run_id, new_file.sha256.is_not(None))
    ).all()
    scores = _scores(session, [suggestion.id for _, suggestion in rows])
    return [
        reused_result(
            suggestion, point_id=point_id, run_id=run_id, scores=scores.get(suggestion.id, {})
        )
        for point_id, suggestion in rows
    ]


def _scores(session: Session, suggestion_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    found: dict[int, dict[str, float]] = {}
    for start in range(0, len(suggestion_ids), 500):
        chunk = suggestion_ids[start : start + 500]
        stmt = select(Score.suggestion_id, Score.metric_name, Score.value).where(
            Score.suggestion_id.in_(chunk)
        )
        for suggestion_id, name, value in session.execute(stmt):
            found.setdefault(suggestion_id, {})[name] = value
    return found


def save_comparison(
    session: Session,
    *,
    run_id: int,
    baseline_run_id: int | None,
    deltas: Sequence[Mapping[str, Any]],
    threshold: float,
) -> bool | None:
    """Replace the run's deltas (dicts of RunDelta columns but run_id) and set its regression
    flag: True when any delta regressed, None without a delta (no baseline, or nothing shared
    with it). Safe to repeat."""
    run = get_run(session, run_id=run_id)
    session.execute(delete(RunDelta).where(RunDelta.run_id == run_id))
    if deltas:
        session.execute(insert(RunDelta), [{**delta, "run_id": run_id} for delta in deltas])
    run.baseline_run_id = baseline_run_id
    run.regression_threshold = threshold
    run.regression = any(delta["regressed"] for delta in deltas) if deltas else None
    session.flush()
    return run.regression


def run_deltas(session: Session, *, run_id: int) -> list[RunDelta]:
    stmt = select(RunDelta).where(RunDelta.run_id == run_id).order_by(RunDelta.metric)
    return list(session.scalars(stmt))


def save_paired(session: Session, *, run_a: int, run_b: int, comparison: Mapping[str, Any]) -> None:
    """Keep the comparison of run B with run A, both finished: replaces any earlier one."""
    finished = dict(
        session.execute(select(Run.id, Run.finished_at).where(Run.id.in_([run_a, run_b]))).all()
    )
    session.execute(
        delete(RunComparison).where(RunComparison.run_a == run_a, RunComparison.run_b == run_b)
    )
    row = {"run_a": run_a, "run_b": run_b, "comparison": dict(comparison)}
    finishes = {"finished_a": finished[run_a], "finished_b": finished[run_b]}
    session.execute(insert(RunComparison), [row | finishes])


def stored_paired(session: Session, *, run_a: int, run_b: int) -> dict[str, Any] | None:
    """The kept comparison of run B with run A, while both runs are final and finished when
    it was computed; None otherwise (compare them again)."""
    run_a_, run_b_ = aliased(Run), aliased(Run)
    stmt = (
        select(RunComparison.comparison)
        .join(run_a_, and_(run_a_.id == run_a, run_a_.finished_at == RunComparison.finished_a))
        .join(run_b_, and_(run_b_.id == run_b, run_b_.finished_at == RunComparison.finished_b))
        .where(
            RunComparison.run_a == run_a,
            RunComparison.run_b == run_b,
            run_a_.status.in_(FINAL),
            run_b_.status.in_(FINAL),
        )
    )
    return session.scalar(stmt)
