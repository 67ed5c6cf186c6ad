"""Planning tasks enqueued by POST /api/runs, followed until they name their run."""

from __future__ import annotations

from celery.result import AsyncResult
from fastapi import APIRouter

from api.schemas import TaskOut
from workers.celery import app

router = APIRouter(prefix="/tasks", tags=["runs"])


@router.get("/{task_id}")
def get_task(task_id: str) -> TaskOut:
    """A planning task's state; once it succeeded, the id of the run it planned. Results are
    kept a day; an unknown id reads as PENDING (Celery cannot tell them apart)."""
    result = AsyncResult(task_id, app=app)
    state = result.state
    return TaskOut(
        task_id=task_id,
        state=state,
        run_id=result.result if state == "SUCCESS" else None,
        error=str(result.result) if state == "FAILURE" else None,
    )
