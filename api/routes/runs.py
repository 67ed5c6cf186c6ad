"""Runs: the latest, one run's report and suggestions, and starting, cancelling, resuming."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import TypeAdapter

from aixaudit import jobs
from aixaudit.errors import SourceError
from aixaudit.model_server import profile_for
from aixaudit.sources import FileRole, check_location
from aixaudit.spans import SpanKind
from aixaudit.store import lineage, queries, reports, suggestions, trends
from api import queue
from api.deps import MAX_INT, IdPath, SessionDep, SessionsDep, SettingsDep
from api.export import CSV_RESPONSE, Format, FormatQuery, csv_response
from api.schemas import (
    AuditQueued,
    AuditRequest,
    DeltaOut,
    PointOut,
    RunControlOut,
    RunOut,
    RunReportOut,
    SuggestionPageOut,
    errors,
)

router = APIRouter(prefix="/runs", tags=["runs"])
_ITEMS = TypeAdapter(list[PointOut])


@router.get("", responses=errors(404))
def list_runs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    repository: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="only this repository's runs")
    ] = None,
) -> list[RunOut]:
    """The latest runs first."""
    if repository is not None:
        trends.get_repository(session, repository_id=repository)
    runs = reports.list_runs(session, limit=limit, repository_id=repository)
    return [RunOut.model_validate(run) for run in runs]


@router.get("/{run_id}", response_model=RunReportOut, responses=errors(404) | CSV_RESPONSE)
def run_report(
    run_id: IdPath, session: SessionDep, export: FormatQuery = Format.JSON
) -> RunReportOut | Response:
    """Totals, breakdowns by language, span kind and file role with the 95% interval and n of
    each rate and mean, the metrics' definitions, the acceptance rule, skipped files and the
    comparison with the baseline run. As CSV: the totals and breakdown rows, named by a
    `grouping` column (all, language, kind, role)."""
    report = reports.run_report(session, run_id=run_id)
    if export is Format.CSV:
        tables = {
            "all": [report.totals],
            "language": report.by_language,
            "kind": report.by_kind,
            "role": report.by_role,
        }
        rows = [
            {"grouping": grouping, **asdict(breakdown)}
            for grouping, breakdowns in tables.items()
            for breakdown in breakdowns
        ]
        return csv_response(rows, filename=f"run-{run_id}-report.csv")
    return RunReportOut.model_validate(
        {
            **vars(report),  # nested dataclasses are read by attribute: no deep copy
            "baseline_run_id": queries.get_run(session, run_id=run_id).baseline_run_id,
            "deltas": [
                DeltaOut.model_validate(d) for d in lineage.run_deltas(session, run_id=run_id)
            ],
        }
    )


@router.get(
    "/{run_id}/suggestions",
    response_model=SuggestionPageOut,
    responses=errors(404) | CSV_RESPONSE,
)
def run_suggestions(
    run_id: IdPath,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    after: Annotated[
        int | None,
        Query(ge=1, le=MAX_INT, description="a point id: the page after it (`next_after`)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    accepted: bool | None = None,
    language: Annotated[str | None, Query(max_length=32, pattern="^[a-z0-9_+-]+$")] = None,
    kind: SpanKind | None = None,
    role: FileRole | None = None,
    export: FormatQuery = Format.JSON,
) -> SuggestionPageOut | Response:
    """The run's points in file order with the suggestion, acceptance and scores of each (as
    CSV: the page's items, one row each), from `offset`, or after the point `after` (the
    previous page's `next_after`: as fast however deep; it wins over `offset`)."""
    page = suggestions.suggestion_page(
        session,
        run_id=run_id,
        offset=offset,
        after=after,
        limit=limit,
        accepted=accepted,
        language=language,
        kind=kind,
        role=role,
    )
    found = SuggestionPageOut.model_validate(page)
    if export is Format.CSV:
        rows = _ITEMS.dump_python(found.items, mode="json")
        return csv_response(rows, filename=f"run-{run_id}-suggestions.csv")
    return found


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=errors(400, 403, 503))
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
        profile = profile_for(settings, None)  # what the server declares, by default
        options = options.model_copy(update={"profile": profile})
    task_id = queue.new_task_id(jobs.producer())
    jobs.plan(body.location, body.ref, options, body.acceptance.rule(), task_id=task_id)
    url = str(request.url_for("get_task", task_id=task_id))
    response.headers["Location"] = url
    return AuditQueued(task_id=task_id, task_url=url)


@router.post("/{run_id}/cancel", responses=errors(403, 404))
def cancel_run(run_id: IdPath, sessions: SessionsDep) -> RunControlOut:
    """Cancel a pending or running run (workers skip its remaining chunks); a run that is
    final already is left as it is, so cancelling twice is safe."""
    run_status = jobs.cancel(sessions, run_id=run_id)
    return RunControlOut(run_id=run_id, status=run_status.value, enqueued=0)


@router.post("/{run_id}/resume", responses=errors(403, 404, 503))
def resume_run(run_id: IdPath, sessions: SessionsDep) -> RunControlOut:
    """Enqueue again the points that have no result (after a cancel, a lost worker or failed
    requests); a finished run with nothing missing is left as it is."""
    run_status, enqueued = jobs.resume(sessions, run_id=run_id)
    return RunControlOut(run_id=run_id, status=run_status.value, enqueued=enqueued)
