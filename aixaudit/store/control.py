"""Run control for distributed audits: progress as stored, cancellation and resumption.

Both read and write the database only, so any process (the CLI, the API, a worker) sees and
changes the same state; workers look at it before each chunk of points.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from aixaudit.store.queries import count_results, get_run, move_run, pending_point_ids
from aixaudit.store.tables import Point, Run, RunStatus, Suggestion

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    status: str
    points_total: int
    answered: int  # points with a stored result (failed requests included)
    failed: int
    reused: int  # results taken over from an earlier run
    error: str | None

    @property
    def finished(self) -> bool:
        return RunStatus(self.status).is_final


def run_progress(session: Session, *, run_id: int) -> RunProgress:
    run = get_run(session, run_id=run_id)
    answered, failed = count_results(session, run_id=run_id)
    reused = session.scalar(
        select(func.count(Suggestion.id)).where(Suggestion.run_id == run_id, Suggestion.reused)
    )
    return RunProgress(
        run_id=run_id,
        status=run.status,
        points_total=run.points_total,
        answered=answered,
        failed=failed,
        reused=int(reused or 0),
        error=run.error,
    )


@dataclass(frozen=True)
class Tally:
    """A run's points counted from the rows, for checking a run after faults: a point is lost
    when it has no good suggestion, duplicated when it has more than one suggestion row."""

    planned: int
    answered: int  # points with a good suggestion
    lost: int
    duplicated: int


def tally(session: Session, *, run_id: int) -> Tally:
    planned = session.scalar(select(func.count(Point.id)).where(Point.run_id == run_id))
    good = func.count(func.distinct(case((Suggestion.error.is_(None), Suggestion.point_id))))
    rows, points, answered = session.execute(
        select(func.count(Suggestion.id), func.count(func.distinct(Suggestion.point_id)), good)
        .where(Suggestion.run_id == run_id)
    ).one()  # fmt: skip
    planned = int(planned or 0)
    return Tally(planned, int(answered), planned - int(answered), int(rows) - int(points))


def cancel_run(session: Session, *, run_id: int) -> RunStatus:
    """Cancel a pending or running run and return the run's status afterwards: a run that has
    finished already (or was cancelled before) is left as it is. A run that becomes active
    again while this looks (a racing resume) is cancelled too: a cancel has the last word."""
    while True:
        if move_run(
            session, run_id=run_id, to=RunStatus.CANCELLED, only_from=ACTIVE, error="cancelled"
        ):
            return RunStatus.CANCELLED
        status = RunStatus(get_run(session, run_id=run_id).status)  # RunNotFound if unknown
        if status.is_final:
            return status


def is_cancelled(session: Session, *, run_id: int) -> bool:
    status = session.scalar(select(Run.status).where(Run.id == run_id))
    return status == RunStatus.CANCELLED.value


def reopen_run(session: Session, *, run_id: int) -> int:
    """Prepare a resume: returns how many points have no usable result (none yet, or a failed
    request). When some have, or the run never finished, it is running again, whatever its
    status was (cancelled included), unless a cancel landed after this read: the status moves
    only from the one read here, so a cancel that comes in during a resume wins."""
    seen = RunStatus(get_run(session, run_id=run_id).status)
    pending = len(pending_point_ids(session, run_id=run_id))
    if pending or not seen.is_final:
        move_run(session, run_id=run_id, to=RunStatus.RUNNING, only_from=[seen])
    return pending
