"""Rollups answer exactly what the rows answer: the report, the runs list and the trends of
finished runs, on SQLite and PostgreSQL, before and after a resume, and after the migration
that backfills them."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit
from aixaudit.scoring import METRICS
from aixaudit.store import control, queries, reports, trends
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import RunRollup, RunStatus

FILES, PER_FILE = 6, 5
KINDS = ("function_body", "condition", "call")


def plan(session: Session, *, created: datetime) -> int:
    """A run of FILES files (python and go) of PER_FILE points each, running."""
    repository = queries.get_or_create_repository(session, origin="/srv/rolled", name="rolled")
    run = queries.create_run(
        session,
        repository_id=repository.id,
        ref="main",
        commit="c0ffee",
        profile="aixcoder",
        config={"seed": 0},
        acceptance_rule={"metric": "es_rapidfuzz", "threshold": 0.8},
    )
    run.created_at = created
    files = queries.add_files(
        session,
        run_id=run.id,
        files=[
            {"path": f"f{n}.{'py' if n % 2 else 'go'}", "language": "python" if n % 2 else "go"}
            | {"size": 100, "sha256": f"{n:064d}"}
            for n in range(FILES)
        ],
    )
    points = [
        {
            "file_id": file_id,
            "key": f"{path}:{n}",
            "kind": KINDS[n % len(KINDS)],
            "node_type": "block",
            "start_byte": n,
            "end_byte": n + 1,
            "start_line": n,
            "end_line": n,
            "original": "pass",
        }
        for path, file_id in files.items()
        for n in range(PER_FILE)
    ]
    queries.add_points(session, run_id=run.id, points=points)
    run.points_total = len(points)
    queries.move_run(session, run_id=run.id, to=RunStatus.RUNNING, only_from=control.ACTIVE)
    return run.id


def answer(session: Session, *, run_id: int, seed: int, fail: int = 0) -> None:
    """Answer the run's pending points with seeded scores; the first `fail` of them fail."""
    draw = random.Random(seed)
    results = []
    for number, point_id in enumerate(queries.pending_point_ids(session, run_id=run_id)):
        row: dict[str, Any] = {"point_id": point_id, "run_id": run_id, "latency_ms": 10.0 * seed}
        if number < fail:
            results.append(row | {"error": "timed out", "attempts": 3})
            continue
        es = round(draw.random(), 3)
        results.append(
            row
            | {"raw_text": "x", "text": "x", "accepted": es >= 0.8, "reused": number % 7 == 0}
            | {"lines_suggested": 2, "lines_accepted": int(es >= 0.8), "chars_suggested": 9}
            | {"scores": {"exact_match": float(es > 0.9), "es_rapidfuzz": es}}
        )
    queries.add_results(session, results=results, metrics=METRICS)


def answers(session: Session, repository_id: int) -> dict[str, Any]:
    """Everything the dashboard reads, as JSON-able dicts."""
    runs = reports.list_runs(session)
    return {
        "runs": [asdict(run) for run in runs],
        "reports": [asdict(reports.run_report(session, run_id=run.id)) for run in runs],
        "trends": {
            by.value: [
                asdict(point)
                for point in trends.repository_trend(session, repository_id=repository_id, by=by)
            ]
            for by in trends.TrendBy
        },
    }


def rolled(session: Session) -> set[int]:
    return set(session.scalars(select(RunRollup.run_id)))


def three_runs(sessions: sessionmaker[Session]) -> list[int]:
    """Two runs on one day (the second partial), one on the next; all finished."""
    days = [datetime(2026, 1, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 5, tzinfo=UTC)]
    days.append(datetime(2026, 1, 2, 1, tzinfo=UTC))
    run_ids = []
    for number, created in enumerate(days):
        with sessions.begin() as session:
            run_id = plan(session, created=created)
            answer(session, run_id=run_id, seed=number + 1, fail=2 * (number == 1))
        audit.finish_run(sessions, run_id=run_id)
        run_ids.append(run_id)
    return run_ids


def test_rollups_answer_what_the_rows_answer(engine: Engine) -> None:
    sessions = session_factory(engine)
    run_ids = three_runs(sessions)
    with sessions() as session:
        assert rolled(session) == set(run_ids)
        repository_id = queries.get_run(session, run_id=run_ids[0]).repository_id
        from_rollups = answers(session, repository_id)
        session.execute(delete(RunRollup))
        from_rows = answers(session, repository_id)
    assert from_rollups == from_rows
    report = from_rows["reports"][-1]  # the oldest run: two files per language, intervals
    assert report["totals"]["suggestions"] == FILES * PER_FILE
    assert set(report["totals"]["intervals"]) == {"acceptance_rate", "exact_match", "es_rapidfuzz"}
    assert [len(point["run_ids"]) for point in from_rows["trends"]["day"]] == [2, 1]


def test_a_resumed_run_is_read_from_its_rows_until_it_finishes_again(engine: Engine) -> None:
    sessions = session_factory(engine)
    run_id = three_runs(sessions)[1]  # partial: two points failed
    with sessions.begin() as session:
        assert control.reopen_run(session, run_id=run_id) == 2
    with sessions.begin() as session:
        assert queries.fresh_rollups(session, run_ids=[run_id], columns=[]) == {}
        answer(session, run_id=run_id, seed=9)
        assert reports.run_report(session, run_id=run_id).totals.errors == 0  # from the rows
    assert audit.finish_run(sessions, run_id=run_id) is RunStatus.DONE
    with sessions() as session:
        assert run_id in queries.fresh_rollups(session, run_ids=[run_id], columns=[])
        rolled_up = asdict(reports.run_report(session, run_id=run_id))
        session.execute(delete(RunRollup))
        assert rolled_up == asdict(reports.run_report(session, run_id=run_id))
    assert rolled_up["totals"]["errors"] == 0
    assert rolled_up["totals"]["suggestions"] == FILES * PER_FILE


def test_the_migration_rolls_up_finished_runs(db_url: str) -> None:
    upgrade(db_url, revision="0010")  # the one before the rollups
    engine = make_engine(db_url)
    try:
        sessions = session_factory(engine)
        with sessions.begin() as session:
            finished = plan(session, created=datetime(2026, 1, 1, tzinfo=UTC))
            answer(session, run_id=finished, seed=1)
            queries.set_run_status(session, run_id=finished, status=RunStatus.DONE)
            running = plan(session, created=datetime(2026, 1, 2, tzinfo=UTC))
        upgrade(db_url)
        with sessions() as session:
            assert rolled(session) == {finished}
            report = asdict(reports.run_report(session, run_id=finished))
            session.execute(delete(RunRollup))
            assert report == asdict(reports.run_report(session, run_id=finished))
            assert queries.get_run(session, run_id=running).status == RunStatus.RUNNING.value
    finally:
        engine.dispose()
