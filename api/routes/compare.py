"""Two runs of one commit compared on the points both answered."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response

from aixaudit import compare
from aixaudit.store import queries
from api.deps import MAX_INT, SessionDep
from api.export import CSV_RESPONSE, Format, FormatQuery, csv_response
from api.schemas import ComparedRunOut, ComparisonOut, errors

router = APIRouter(prefix="/compare", tags=["runs"])
RunQuery = Annotated[int, Query(ge=1, le=MAX_INT, description="a run id")]


@router.get("", response_model=ComparisonOut, responses=errors(404, 409) | CSV_RESPONSE)
def compare_runs(
    a: RunQuery,
    b: RunQuery,
    session: SessionDep,
    top: Annotated[int, Query(ge=0, le=compare.MAX_TOP, description="disagreements listed")] = 10,
    export: FormatQuery = Format.JSON,
) -> ComparisonOut | Response:
    """Run B against run A, paired point by point: per metric, overall and by language, span
    kind and file role, both means and B - A with a 95% cluster-bootstrap interval, McNemar's
    exact test for acceptance, how many points were paired and left out, and the pairs that
    differ most. 409 for runs of different commits or under 30 pairs. As CSV: one row per group
    and metric."""
    found = compare.compare_runs(session, run_a=a, run_b=b, top=top)
    if export is Format.CSV:
        rows = [
            {**{k: v for k, v in asdict(group).items() if k != "metrics"}, **asdict(metric)}
            for group in found.groups
            for metric in group.metrics
        ]
        return csv_response(rows, filename=f"compare-{a}-{b}.csv")
    return ComparisonOut.model_validate(
        {
            **vars(found),  # nested dataclasses are read by attribute: no deep copy
            "a": ComparedRunOut.model_validate(queries.get_run(session, run_id=a)),
            "b": ComparedRunOut.model_validate(queries.get_run(session, run_id=b)),
        }
    )
