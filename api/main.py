"""The FastAPI app: the /api routes, the dashboard page at /, OpenAPI at /docs."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aixaudit import __version__, jobs
from aixaudit.errors import ComparisonError, RepositoryNotFound, RunNotFound
from aixaudit.resources import static_dir
from api import queue
from api.routes import api_router

STATIC = static_dir()

queue.fail_fast(jobs.producer())
app = FastAPI(
    title="aixaudit",
    version=__version__,
    summary="Audits of a code-completion model: runs, reports, suggestions, trends.",
)
app.include_router(api_router)
app.mount("/static", StaticFiles(directory=STATIC), name="static")


@app.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@app.exception_handler(RunNotFound)
@app.exception_handler(RepositoryNotFound)
def not_found(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_404_NOT_FOUND)


@app.exception_handler(ComparisonError)
def not_comparable(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)


@app.exception_handler(OperationalError)
@app.exception_handler(RedisConnectionError)
@app.exception_handler(RedisTimeoutError)
def broker_down(request: Request, error: Exception) -> JSONResponse:
    """The Celery broker or result backend (Redis) cannot be reached: try again later."""
    detail = f"The task queue cannot be reached, try again later ({error})."
    return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
