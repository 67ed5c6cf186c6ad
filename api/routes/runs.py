"""Runs: the latest, one run's report and suggestions, and starting, cancelling, resuming."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from aixaudit.audit import default_profile
from aixaudit.errors import SourceError
from aixaudit.sources import check_location
from aixaudit.store import control, history, queries, reports, suggestions, trends
from api.deps import SessionDep, SessionsDep, SettingsDep
from api.schemas import (
    AuditQueued,
    AuditRequest,
    DeltaOut,
    RunControlOut,
    RunOut,
    RunReportOut,
    SuggestionPageOut,
)
from workers.tasks import plan_audit, resume

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("")
def list_runs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    repository: Annotated[int | None, Query(description="only this repository's runs")] = None,
) -> list[RunOut]:
    """The latest runs first."""
    if repository is not None:
        trends.get_repository(session, repository_id=repository)
    runs = reports.list_runs(session, limit=limit, repository_id=repository)
    return [RunOut.model_validate(run) for run in runs]


@router.get("/{run_id}")
def run_report(run_id: int, session: SessionDep) -> RunReportOut:
    """Totals, breakdowns by language and span kind, the metrics' definitions, the acceptance
    rule, skipped files and the comparison with the baseline run."""
    report = reports.run_report(session, run_id=run_id)
    return RunReportOut.model_validate(
        {
            **asdict(report),
            "baseline_run_id": queries.get_run(session, run_id=run_id).baseline_run_id,
            "deltas": [
                DeltaOut.model_validate(d) for d in history.run_deltas(session, run_id=run_id)
            ],
        }
    )


@router.get("/{run_id}/suggestions")
def run_suggestions(
    run_id: int,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    accepted: bool | None = None,
    language: str | None = None,
    kind: str | None = None,
) -> SuggestionPageOut:
    """The run's points in file order with the suggestion, acceptance and scores of each."""
    page = suggestions.suggestion_page(
        session,
        run_id=run_id,
        offset=offset,
        limit=limit,
        accepted=accepted,
        language=language,
        kind=kind,
    )
    return SuggestionPageOut.model_validate(page)


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def start_audit(
    body: AuditRequest, settings: SettingsDep, request: Request, response: Response
) -> AuditQueued:
    """Enqueue a distributed audit: a worker checks the repository out, plans the run and
    enqueues its points. The task's result (GET the task_url) is the run id. A local path or
    file:// URL must lie under AIXAUDIT_ALLOWED_ROOTS (422 otherwise)."""
    try:
        check_location(body.location, settings.allowed_roots)
    except SourceError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(err)) from None
    options = body.options
    if "profile" not in options.model_fields_set:
        profile = default_profile(configured_server=bool(settings.triton_url))
        options = options.model_copy(update={"profile": profile})
    task = plan_audit.apply_async(
        (body.location, body.ref, options.model_dump(mode="json"), body.acceptance.rule().to_dict())
    )
    url = str(request.url_for("get_task", task_id=task.id))
    response.headers["Location"] = url
    return AuditQueued(task_id=task.id, task_url=url)


@router.post("/{run_id}/cancel")
def cancel_run(run_id: int, sessions: SessionsDep) -> RunControlOut:
    """Cancel a pending or running run (workers skip its remaining chunks); a run that is
    final already is left as it is, so cancelling twice is safe."""
    with sessions.begin() as session:
        run_status = control.cancel_run(session, run_id=run_id)
    return RunControlOut(run_id=run_id, status=run_status.value, enqueued=0)


@router.post("/{run_id}/resume")
def resume_run(run_id: int, sessions: SessionsDep) -> RunControlOut:
    """Enqueue again the points that have no result (after a cancel, a lost worker or failed
    requests); a finished run with nothing missing is left as it is."""
    run_status, enqueued = resume(sessions, run_id=run_id)
    return RunControlOut(run_id=run_id, status=run_status.value, enqueued=enqueued)
