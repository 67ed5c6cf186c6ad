"""The Celery app, configured from the same settings as the CLI.

At-least-once delivery made safe: tasks are acknowledged only after they finish (`acks_late`),
a task whose worker process died is handed out again (`reject_on_worker_lost`), each worker
process holds one task at a time (prefetch 1, so a killed worker loses at most that one), and
Redis hands out an unacknowledged task again only after longer than any task may run. Writes are
idempotent per point, so a task that runs twice stores each result once.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery, signals
from celery.beat import PersistentScheduler
from kombu import Queue

from aixaudit.config import Settings, get_settings
from aixaudit.errors import SchemaError
from aixaudit.store import db

CONTROL_QUEUE = "aixaudit"  # planning, finishing runs, nightly checks: short tasks
POINTS_QUEUE = "aixaudit.points"  # chunks of points: the long tasks
EXECUTION_QUEUE = "aixaudit.execution"  # repositories' own tests run on suggestions: CPU-bound


def make_app(settings: Settings) -> Celery:
    app = Celery("aixaudit", include=["workers.tasks"])
    prefix = {"global_keyprefix": settings.celery_key_prefix} if settings.celery_key_prefix else {}
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s, **prefix},
        result_backend_transport_options=prefix,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=timedelta(days=1),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        task_default_queue=CONTROL_QUEUE,
        task_queues=(Queue(CONTROL_QUEUE), Queue(POINTS_QUEUE), Queue(EXECUTION_QUEUE)),
        task_routes={
            "workers.tasks.complete_chunk": {"queue": POINTS_QUEUE},
            "workers.tasks.execute_suggestions": {"queue": EXECUTION_QUEUE},
        },
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "nightly-audits": {
                "task": "workers.tasks.start_due_schedules",
                "schedule": settings.schedule_check_s,
            }
        },
        beat_scheduler="workers.celery:Scheduler",
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    return app


class Scheduler(PersistentScheduler):
    """Beat's own scheduler, keeping its state file in the data directory (made if missing)."""

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()


@signals.worker_init.connect
def refuse_another_schema(**_: Any) -> None:
    """A worker on a database at another schema revision would fail every task: it does not
    start (exit status 1). A database away for now is the tasks' concern (they retry)."""
    try:
        db.require_current(get_settings().db_url)
    except SchemaError as error:
        raise SystemExit(f"error: {error}") from None


app = make_app(get_settings())
