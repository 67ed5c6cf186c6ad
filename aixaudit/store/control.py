"""Run control for distributed audits: progress as stored, cancellation and resumption.

Both read and write the database only, so any process (the CLI, the API, a worker) sees and
changes the same state; workers look at it before each chunk of points.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aixaudit.store.queries import count_results, get_run, pending_point_ids, set_run_status
from aixaudit.store.tables import Run, RunStatus, Suggestion, utcnow

ACTIVE = (RunStatus.PENDING.value, RunStatus.RUNNING.value)


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


def cancel_run(session: Session, *, run_id: int) -> RunStatus:
    """Cancel a pending or running run and return the run's status afterwards: a run that has
    finished already (or was cancelled before) is left as it is."""
    get_run(session, run_id=run_id)  # RunNotFound for an unknown id
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.CANCELLED.value, error="cancelled", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return RunStatus(get_run(session, run_id=run_id).status)


def is_cancelled(session: Session, *, run_id: int) -> bool:
    status = session.scalar(select(Run.status).where(Run.id == run_id))
    return status == RunStatus.CANCELLED.value


def reopen_run(session: Session, *, run_id: int) -> int:
    """Prepare a resume: returns how many points have no usable result (none yet, or a failed
    request). When some have, or the run never finished, it is running again, whatever its
    status was (cancelled included)."""
    run = get_run(session, run_id=run_id)
    pending = len(pending_point_ids(session, run_id=run_id))
    if pending or not RunStatus(run.status).is_final:
        set_run_status(session, run_id=run_id, status=RunStatus.RUNNING)
    return pending
