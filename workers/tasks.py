"""Thin tasks over aixaudit's audit steps; each takes ids and re-reads what it needs.

    plan_audit (or the CLI plans, then dispatch_run)
      └─> dispatch: chord( complete_chunk(run, 16 point ids) x N ) ──> finalize_run
                                  (fail_run when a chunk fails for good)
                                         └─> execute_suggestions, when asked (own queue)

A chunk answers its points with `audit.complete_points`, many requests in flight from one
asyncio loop. Every write is idempotent per point, so redelivered, retried or resumed chunks
never duplicate a result, and `finalize_run` decides the status from what is stored. Planning
is idempotent per task id (one run however often `plan_audit` runs), and every status change
is one conditional update, so a cancel is never overwritten by a dispatch or a finish.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Task, chord
from celery.utils.log import get_task_logger
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, jobs, lifecycle, sources
from aixaudit.config import get_settings
from aixaudit.errors import ServerError, SourceError
from aixaudit.execution import verify
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import control, executions, queries, schedules
from aixaudit.store.tables import RunStatus
from workers import context
from workers.celery import app

logger = get_task_logger(__name__)

# Worth another try later: the database or the Triton server is away for a while.
TRANSIENT = (DBAPIError, ServerError)
RETRY: dict[str, Any] = {
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 6,
}


def dispatch(session_factory: sessionmaker[Session], *, run_id: int) -> int:
    """Mark the run running and enqueue its points that have no usable result, in chunks, with
    `finalize_run` after the last one; returns how many points were enqueued. A cancelled or
    finished run is left as it is (`control.reopen_run` reopens a run): the status moves in one
    conditional update, so a cancel that lands at any moment is never overwritten."""
    if not audit.start_run(session_factory, run_id=run_id):
        return 0
    with session_factory() as session:
        ids = queries.pending_point_ids(session, run_id=run_id)
    size = get_settings().chunk_size
    final = finalize_run.si(run_id)
    if ids:
        chunks = [complete_chunk.si(run_id, ids[i : i + size]) for i in range(0, len(ids), size)]
        chord(chunks)(final.on_error(fail_run.s(run_id=run_id)))
    else:
        final.apply_async()
    return len(ids)


@app.task(name=jobs.DISPATCH_RUN, autoretry_for=TRANSIENT, **RETRY)
def dispatch_run(run_id: int) -> int:
    """`dispatch` on a worker: what `jobs.dispatch` and `jobs.resume` send (the chord is built
    where no caller waits for its results)."""
    return dispatch(context.sessions(), run_id=run_id)


@app.task(
    name=jobs.PLAN_AUDIT,
    bind=True,
    autoretry_for=(*TRANSIENT, SourceError),
    **RETRY | {"max_retries": 3},
)
def plan_audit(
    self: Task[..., int],
    location: str,
    ref: str | None,
    options: dict[str, Any],
    rule: dict[str, Any],
    *,
    reuse: bool = False,
    schedule_id: int | None = None,
    execution: dict[str, Any] | None = None,
) -> int:
    """Check out and scan the repository, store the run's points (reusing the results of
    unchanged files when asked) and enqueue the rest; returns the run id. With `execution`
    (ExecutionOptions), the run asks to be executed once its completions are in (`_finish`).

    The run is recorded under this task's id, which a retry or a redelivery keeps: the task
    run twice (after it succeeded, or after a crash half-way) plans one run, and enqueues its
    points only while the run is still pending."""
    settings = get_settings()
    sessions = context.sessions()
    with _checkout_lock(settings.repos_dir, location):
        checkout = sources.checkout(
            location, ref=ref, cache_dir=settings.repos_dir, allowed_roots=settings.allowed_roots
        )
        [run_id] = lifecycle.plan(
            sessions,
            checkout=checkout,
            options=audit.AuditOptions.model_validate(options),
            rule=AcceptanceRule.from_dict(rule),
            model=settings.model,
            reuse=reuse,
            schedule_id=schedule_id,
            distributed=True,
            plan_key=self.request.id,
        )
    with sessions() as session:
        status = RunStatus(queries.get_run(session, run_id=run_id).status)
    if status is RunStatus.PENDING:
        if execution is not None:  # before the dispatch, whose end reads it
            with sessions.begin() as session:
                executions.request_execution(session, run_id=run_id, options=execution)
        queued = dispatch(sessions, run_id=run_id)
        logger.info("run %s planned from %s: %s points to answer", run_id, checkout.origin, queued)
    else:
        logger.info("run %s was planned by an earlier delivery of this task", run_id)
    return run_id


@contextmanager
def _checkout_lock(cache_dir: Path, location: str) -> Iterator[None]:
    """One checkout and scan of a location at a time per machine: two worker processes must
    not fetch into, or scan, the same cached clone at once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(location.encode()).hexdigest()[:16]
    with (cache_dir / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@app.task(name=jobs.COMPLETE_CHUNK, autoretry_for=TRANSIENT, **RETRY)
def complete_chunk(run_id: int, point_ids: list[int]) -> int:
    """Answer the given points of a run (those still without a result); returns how many were
    answered. Skips the chunk when the run was cancelled."""
    sessions = context.sessions()
    with sessions() as session:
        if control.is_cancelled(session, run_id=run_id):
            logger.info("run %s is cancelled: %s points skipped", run_id, len(point_ids))
            return 0
    return asyncio.run(_answer(sessions, run_id, point_ids))


async def _answer(sessions: sessionmaker[Session], run_id: int, point_ids: list[int]) -> int:
    async with context.completer() as completer:
        await completer.check()  # a server that is down retries the chunk, not each point
        counter = context.model_access().counter
        await audit.record_served_by(sessions, run_id=run_id, completer=completer, counter=counter)
        return await audit.complete_points(
            sessions, run_id=run_id, completer=completer, counter=counter, point_ids=point_ids
        )


@app.task(name=jobs.FINALIZE_RUN, autoretry_for=TRANSIENT, **RETRY)
def finalize_run(run_id: int) -> str:
    """The run's final status from what is stored, then the comparison with the previous run
    of the same fingerprint (`lifecycle.finish`, as for a run answered by the CLI). Points
    still without a result belong to chunks of a later dispatch (a resume): it finalizes."""
    sessions = context.sessions()
    with sessions() as session:
        progress = control.run_progress(session, run_id=run_id)
    if progress.answered < progress.points_total and progress.status != RunStatus.CANCELLED:
        logger.info("run %s: %s points still in flight", run_id, progress.points_total)
        return progress.status
    return _finish(sessions, run_id=run_id, error=None)


@app.task(name=jobs.FAIL_RUN)
def fail_run(request: Any, exc: BaseException, traceback: Any, *, run_id: int) -> str:
    """Chord error callback: a chunk failed for good (its retries are spent)."""
    logger.error("run %s: a chunk failed: %r", run_id, exc)
    return _finish(context.sessions(), run_id=run_id, error=f"a chunk of points failed: {exc}")


def _finish(sessions: sessionmaker[Session], *, run_id: int, error: str | None) -> str:
    threshold = get_settings().regression_threshold
    status = lifecycle.finish(sessions, run_id=run_id, threshold=threshold, error=error)
    logger.info("run %s %s", run_id, status.value)
    if status in (RunStatus.DONE, RunStatus.PARTIAL):
        with sessions() as session:
            asked = executions.requested_options(session, run_id=run_id)
        if asked is not None:
            jobs.execute(run_id=run_id, options=asked)
    return status.value


@app.task(
    name=jobs.EXECUTE_SUGGESTIONS,
    autoretry_for=(*TRANSIENT, SourceError),
    **RETRY | {"max_retries": 3},
)
def execute_suggestions(run_id: int, options: dict[str, Any]) -> dict[str, int]:
    """Run the repository's own tests against the run's stored suggestions (sandboxed; see
    aixaudit.execution), on the execution queue so that test runs scale on workers of their
    own; returns the points by outcome. Running it again replaces the run's execution."""
    settings = get_settings()
    sessions = context.sessions()
    with sessions() as session:
        origin = executions.run_origin(session, run_id=run_id)
    # The clone is the sandboxes' read-only layer: no checkout may move it meanwhile.
    with _checkout_lock(settings.repos_dir, origin):
        source = verify.run_checkout(
            sessions, run_id=run_id, cache_dir=settings.repos_dir,
            allowed_roots=settings.allowed_roots,
        )  # fmt: skip
        report = verify.execute_run(
            sessions, run_id=run_id, source=source, cache_dir=settings.data_dir / "execution",
            options=verify.ExecutionOptions.model_validate(options),
        )  # fmt: skip
    logger.info("run %s executed: %s", run_id, report.by_status)
    return report.by_status


@app.task(name=jobs.START_DUE_SCHEDULES, autoretry_for=TRANSIENT, **RETRY)
def start_due_schedules(now: str | None = None) -> list[int]:
    """Beat calls this every minute: start the nightly audit of each schedule due at `now`
    (ISO 8601; default: the current UTC time). Returns the started schedules' ids."""
    moment = datetime.fromisoformat(now) if now else datetime.now(UTC)
    with context.sessions().begin() as session:
        # Enqueued inside the claiming transaction: if the broker refuses, nothing is claimed
        # and the next check tries again.
        due = schedules.claim_due(session, now=moment)
        for schedule_id in due:
            jobs.schedule(session, schedule_id=schedule_id)
    return due
