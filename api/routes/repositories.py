"""Repositories and the trend of their finished runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aixaudit.store import trends
from api.deps import IdPath, SessionDep
from api.schemas import RepositoryOut, RepositoryRef, TrendOut, TrendPointOut, errors

router = APIRouter(prefix="/repositories", tags=["repositories"])


@router.get("")
def list_repositories(session: SessionDep) -> list[RepositoryOut]:
    """Every audited repository, with its number of runs."""
    return [RepositoryOut.model_validate(r) for r in trends.list_repositories(session)]


@router.get("/{repository_id}/trend", responses=errors(404))
def repository_trend(
    repository_id: IdPath,
    session: SessionDep,
    by: trends.TrendBy = trends.TrendBy.RUN,
    limit: Annotated[int, Query(ge=1, le=1000, description="the latest points")] = 100,
) -> TrendOut:
    """Suggestions, acceptances, acceptance rate, lines and characters suggested and accepted,
    exact match and ES per finished run (by=run) or per UTC day (by=day), oldest first."""
    points = trends.repository_trend(session, repository_id=repository_id, by=by, limit=limit)
    return TrendOut(
        repository=RepositoryRef.model_validate(
            trends.get_repository(session, repository_id=repository_id)
        ),
        by=by,
        points=[TrendPointOut.model_validate(point) for point in points],
    )
