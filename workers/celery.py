"""The workers' Celery app: what senders agree on (`jobs.celery_config`) plus delivery rules.

At-least-once delivery made safe: tasks are acknowledged only after they finish (`acks_late`),
a task whose worker process died is handed out again (`reject_on_worker_lost`), each worker
process holds one task at a time (prefetch 1, so a killed worker loses at most that one), and
Redis hands out an unacknowledged task again only after longer than any task may run. Writes are
idempotent per point, so a task that runs twice stores each result once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, signals
from celery.beat import PersistentScheduler

from aixaudit import jobs
from aixaudit.config import Settings, get_settings
from aixaudit.errors import SchemaError
from aixaudit.store import db


def make_app(settings: Settings) -> Celery:
    app = Celery("aixaudit", include=["workers.tasks"])
    app.conf.update(
        jobs.celery_config(settings),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        beat_schedule={
            "nightly-audits": {
                "task": jobs.START_DUE_SCHEDULES,
                "schedule": settings.schedule_check_s,
            }
        },
        beat_scheduler="workers.celery:Scheduler",
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    return app


class Scheduler(PersistentScheduler):
    """Beat's own scheduler, keeping its state file in the data directory (made if missing)."""

    schedule_filename: str  # set by PersistentScheduler.__init__ (the stubs omit it)

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
