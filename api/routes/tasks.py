"""Planning tasks enqueued by POST /api/runs, followed until they name their run."""

from __future__ import annotations

from typing import cast
from uuid import UUID

from celery.result import AsyncResult
from fastapi import APIRouter, HTTPException, status

from aixaudit.jobs import producer
from api import queue
from api.schemas import TaskOut, errors

router = APIRouter(prefix="/tasks", tags=["runs"])


@router.get("/{task_id}", responses=errors(404, 503))
def get_task(task_id: UUID) -> TaskOut:
    """A planning task's state; once it succeeded, the id of the run it planned. Tasks are
    known for a day after they were enqueued; an unknown id is 404."""
    app = producer()
    if not queue.is_known(app, str(task_id)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no task with id {task_id}.")
    result: AsyncResult[int] = AsyncResult(str(task_id), app=app)
    state = result.state
    return TaskOut(
        task_id=str(task_id),
        state=state,
        run_id=cast(int, result.result) if state == "SUCCESS" else None,
        error=str(result.result) if state == "FAILURE" else None,
    )
