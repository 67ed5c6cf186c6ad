"""Per-run rollups: a finished run's report sections and trend sums, computed once when it
finishes, so the dashboard reads one row per run instead of scanning and resampling its
points on every request. A rollup is used only while its run is final and finished at the
time it was computed (see `queries.fresh_rollups`): a resumed run is read from its rows until
it finishes again and its rollup is refreshed.
"""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aixaudit.store import trends
from aixaudit.store.queries import FINAL, save_rollup
from aixaudit.store.reports import report_sections
from aixaudit.store.scored import scored_rows
from aixaudit.store.tables import Run, Suggestion


def refresh(session: Session, *, run_id: int) -> None:
    """Compute and store the rollup of a run that has just finished (again)."""
    finished_at = session.scalar(select(Run.finished_at).where(Run.id == run_id))
    points = scored_rows(session, run_id=run_id)
    sections = report_sections(session, run_id=run_id, points=points)
    reused = session.scalar(
        select(func.count(Suggestion.id)).where(Suggestion.run_id == run_id, Suggestion.reused)
    )
    values = {
        "finished_at": finished_at,
        "suggestions": sections.totals.suggestions,
        "errors": sections.totals.errors,
        "accepted": sections.totals.accepted,
        "reused": int(reused or 0),
        "report": asdict(sections),
        "trend": trends.rollup(session, run_id=run_id, points=points),
        "points": points.to_bytes(),
    }
    save_rollup(session, run_id=run_id, values=values)


def backfill(session: Session) -> int:
    """Roll up every final run that has finished; returns how many (migration 0009)."""
    stmt = select(Run.id).where(Run.status.in_(FINAL), Run.finished_at.is_not(None))
    run_ids = list(session.scalars(stmt.order_by(Run.id)))
    for run_id in run_ids:
        refresh(session, run_id=run_id)
    return len(run_ids)
