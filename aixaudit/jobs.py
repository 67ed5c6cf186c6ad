"""What the CLI and the API ask of the workers, sent by task name so that neither imports them.

The names below are the contract with `workers/tasks.py`, which registers its tasks under them;
`celery_config` is what senders and workers must agree on (broker, encoding, queues, routes).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery import Celery
from kombu import Queue
from sqlalchemy.orm import Session, sessionmaker

from aixaudit.audit import AuditOptions
from aixaudit.config import Settings, get_settings
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import control, queries, schedules
from aixaudit.store.tables import RunStatus

CONTROL_QUEUE = "aixaudit"  # planning, finishing runs, nightly checks: short tasks
POINTS_QUEUE = "aixaudit.points"  # chunks of points: the long tasks
EXECUTION_QUEUE = "aixaudit.execution"  # repositories' own tests run on suggestions: CPU-bound

PLAN_AUDIT = "aixaudit.plan_audit"
DISPATCH_RUN = "aixaudit.dispatch_run"
COMPLETE_CHUNK = "aixaudit.complete_chunk"
FINALIZE_RUN = "aixaudit.finalize_run"
FAIL_RUN = "aixaudit.fail_run"
START_DUE_SCHEDULES = "aixaudit.start_due_schedules"
EXECUTE_SUGGESTIONS = "aixaudit.execute_suggestions"


def celery_config(settings: Settings) -> dict[str, Any]:
    prefix = {"global_keyprefix": settings.celery_key_prefix} if settings.celery_key_prefix else {}
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s, **prefix},
        "result_backend_transport_options": prefix,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_expires": timedelta(days=1),
        "task_default_queue": CONTROL_QUEUE,
        "task_queues": (Queue(CONTROL_QUEUE), Queue(POINTS_QUEUE), Queue(EXECUTION_QUEUE)),
        "task_routes": {
            COMPLETE_CHUNK: {"queue": POINTS_QUEUE},
            EXECUTE_SUGGESTIONS: {"queue": EXECUTION_QUEUE},
        },
        "timezone": "UTC",
        "enable_utc": True,
    }


def make_producer(settings: Settings) -> Celery:
    """An app that only sends tasks and reads their states: it holds no task code."""
    app = Celery("aixaudit", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


@lru_cache(maxsize=1)
def producer() -> Celery:
    """This process's producer, from its settings."""
    return make_producer(get_settings())


def plan(
    location: str,
    ref: str | None,
    options: AuditOptions,
    rule: AcceptanceRule,
    *,
    task_id: str | None = None,
) -> str:
    """Enqueue a distributed audit (a worker checks out, plans and dispatches); returns the
    planning task's id, whose result is the run id."""
    args = (location, ref, options.model_dump(mode="json"), rule.to_dict())
    return str(producer().send_task(PLAN_AUDIT, args, task_id=task_id).id)


def dispatch(*, run_id: int) -> None:
    """Enqueue a planned run's points for the workers (a worker builds the chunks)."""
    producer().send_task(DISPATCH_RUN, (run_id,), ignore_result=True)


def execute(*, run_id: int, options: dict[str, Any]) -> None:
    """Enqueue the execution of a run's suggestions (`aixaudit.execution`) on its own queue."""
    producer().send_task(EXECUTE_SUGGESTIONS, (run_id, options), ignore_result=True)


def resume(session_factory: sessionmaker[Session], *, run_id: int) -> tuple[RunStatus, int]:
    """Reopen a run (`control.reopen_run`) and enqueue its points that have no usable result;
    returns the run's status and how many points were enqueued. A finished run with no point
    missing is left as it is, and results are stored once per point, so resuming twice is safe."""
    with session_factory.begin() as session:
        pending = control.reopen_run(session, run_id=run_id)
        status = RunStatus(queries.get_run(session, run_id=run_id).status)
    if status.is_final:
        return status, 0
    dispatch(run_id=run_id)
    return status, pending


def cancel(session_factory: sessionmaker[Session], *, run_id: int) -> RunStatus:
    """Cancel a pending or running run (workers skip its remaining chunks); returns its status.
    A final run is left as it is, so cancelling twice is safe."""
    with session_factory.begin() as session:
        return control.cancel_run(session, run_id=run_id)


def schedule(session: Session, *, schedule_id: int) -> str:
    """Enqueue the incremental audit of one schedule now (and the execution the schedule asks
    for, after it); returns the planning task's id."""
    found = schedules.get_schedule(session, schedule_id=schedule_id)
    result = producer().send_task(
        PLAN_AUDIT,
        (found.origin, found.ref, found.options, found.acceptance_rule),
        {"reuse": True, "schedule_id": found.id, "execution": found.execution},
        ignore_result=True,  # the run is found by its schedule; nobody waits here
    )
    return str(result.id)
