"""The store on SQLite and PostgreSQL: migrations match the models, bulk writes, report sums."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from paths import ROOT
from sqlalchemy import Engine, delete, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from aixaudit import scoring
from aixaudit.errors import ConfigError, RunNotFound
from aixaudit.languages import get_language
from aixaudit.store import queries, reports, suggestions
from aixaudit.store.db import alembic_config, make_engine, session_factory, upgrade
from aixaudit.store.tables import (
    Base,
    File,
    Point,
    Repository,
    Run,
    RunStatus,
    Score,
    Suggestion,
)

TABLES = {
    "repositories", "runs", "files", "blobs", "points", "suggestions", "metrics", "scores",
    "schedules", "run_deltas", "context_outlines", "run_rollups", "coverage_maps",
    "execution_runs", "executions", "run_comparisons",
}  # fmt: skip


@dataclass(frozen=True)
class FakeMetric:
    name: str
    version: int
    definition: str
    higher_is_better: bool


METRICS = {
    "es": FakeMetric("es", 1, "edit similarity", True),
    "em": FakeMetric("em", 2, "exact match", True),
}


class Reason(StrEnum):  # like aixaudit.sources.SkipReason: str subclasses must bind as text
    MINIFIED = "minified"
    VENDORED = "vendored"


def drift(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


def new_run(session: Session, origin: str = "https://example.test/repo.git") -> int:
    repository = queries.get_or_create_repository(session, origin=origin, name="repo")
    run = queries.create_run(
        session,
        repository_id=repository.id,
        ref="main",
        commit="a" * 40,
        profile="aixcoder",
        config={"seed": 0, "per_file": 3},
        acceptance_rule={"metric": "es", "threshold": 0.8},
    )
    return run.id


def point(file_id: int, key: str, kind: str = "function_body") -> dict[str, Any]:
    return {
        "file_id": file_id,
        "key": key,
        "kind": kind,
        "node_type": "block",
        "start_byte": 0,
        "end_byte": 10,
        "start_line": 1,
        "end_line": 2,
        "original": "pass",
    }


def result(run_id: int, point_id: int, **columns: Any) -> dict[str, Any]:
    return {"run_id": run_id, "point_id": point_id, "raw_text": "x", "text": "x", **columns}


def test_migrations_match_models_up_down_up(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert TABLES | {"alembic_version"} == set(inspect(engine).get_table_names())
        assert drift(engine) == []
        command.check(alembic_config(db_url))  # `alembic check`, through migrations/env.py

        command.downgrade(alembic_config(db_url), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}

        upgrade(db_url)
        assert drift(engine) == []
        with engine.connect() as connection:
            head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == head
    finally:
        engine.dispose()


def test_alembic_ini_takes_the_url_from_settings(tmp_path: Path) -> None:
    env = {"AIXAUDIT_DATA_DIR": str(tmp_path / "data"), "PATH": ""}
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'aixaudit.db'}")
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_sqlite_has_foreign_keys_and_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1
            assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
    finally:
        engine.dispose()


def test_make_engine_picks_psycopg_and_refuses_other_databases() -> None:
    assert make_engine("postgresql://u@localhost/db").dialect.driver == "psycopg"
    with pytest.raises(ConfigError, match="sqlite or postgresql"):
        make_engine("mysql://u@localhost/db")


def test_bulk_writes_return_the_new_ids(session: Session) -> None:
    run_id = new_run(session)
    first = queries.add_files(
        session,
        run_id=run_id,
        files=[
            {"path": "a.py", "language": "python", "size": 10, "sha256": "0" * 64},
            {
                "path": "big.js",
                "language": "javascript",
                "size": 5_000_000_000,
                "skip_reason": Reason.MINIFIED,
                "detail": "line of 20000 chars",
            },
        ],
    )
    second = queries.add_files(session, run_id=run_id, files=[{"path": "b.go", "size": 3}])
    stored = dict(session.execute(select(File.path, File.id)).all())
    assert first == {"a.py": stored["a.py"], "big.js": stored["big.js"]}
    assert second == {"b.go": stored["b.go"]}
    assert session.scalar(select(File.size).where(File.path == "big.js")) == 5_000_000_000

    # More keys than one IN (...) list holds.
    keys = [f"k{i:04d}" for i in range(1203)]
    ids = queries.add_points(
        session, run_id=run_id, points=[point(first["a.py"], key) for key in keys]
    )
    stored_points = dict(session.execute(select(Point.key, Point.id)).all())
    assert ids == stored_points
    assert len(set(ids.values())) == 1203
    assert queries.add_points(session, run_id=run_id, points=[]) == {}


def seed_report(session: Session) -> int:
    """Five points; three suggestions came back (two accepted), one failed, one is pending."""
    run_id = new_run(session)
    files = queries.add_files(
        session,
        run_id=run_id,
        files=[
            {"path": "a.py", "language": "python", "size": 100},
            {"path": "b.go", "language": "go", "size": 100},
            {"path": "c.min.js", "size": 1, "skip_reason": Reason.MINIFIED},
            {"path": "vendor/x.py", "size": 1, "skip_reason": Reason.VENDORED},
            {"path": "vendor/y.py", "size": 1, "skip_reason": Reason.VENDORED},
        ],
    )
    points = queries.add_points(
        session,
        run_id=run_id,
        points=[
            point(files["a.py"], "p1", "function_body"),
            point(files["a.py"], "p2", "condition"),
            point(files["b.go"], "p3", "function_body"),
            point(files["b.go"], "p4", "call"),
            point(files["b.go"], "p5", "statement"),
        ],
    )
    queries.add_results(
        session,
        metrics=METRICS,
        results=[
            result(
                run_id,
                points["p1"],
                accepted=True,
                latency_ms=100.0,
                lines_suggested=3,
                lines_accepted=3,
                chars_suggested=30,
                chars_accepted=30,
                scores={"es": 1.0, "em": 1.0},
            ),
            result(
                run_id,
                points["p2"],
                accepted=True,
                latency_ms=200.0,
                lines_suggested=1,
                lines_accepted=1,
                chars_suggested=10,
                chars_accepted=10,
                scores={"es": 0.75, "em": 0.0},
            ),
            result(
                run_id,
                points["p3"],
                accepted=False,
                latency_ms=300.0,
                lines_suggested=2,
                chars_suggested=20,
                scores={"es": 0.25, "em": 0.0},
            ),
            {
                "run_id": run_id,
                "point_id": points["p4"],
                "error": "timed out",
                "attempts": 4,
                "latency_ms": 9000.0,
            },
        ],
    )
    return run_id


def test_report_numbers(session: Session) -> None:
    run_id = seed_report(session)
    session.commit()
    report = reports.run_report(session, run_id=run_id)

    assert report.files == 5
    assert report.skipped == {"minified": 1, "vendored": 2}
    assert report.config == {"seed": 0, "per_file": 3}
    assert [(m.name, m.version, m.definition) for m in report.metrics] == [
        ("em", 2, "exact match"),
        ("es", 1, "edit similarity"),
    ]
    assert (report.run.suggestions, report.run.errors, report.run.accepted) == (3, 1, 2)
    assert report.run.acceptance_rate == pytest.approx(2 / 3)

    totals = report.totals
    assert (totals.key, totals.points, totals.suggestions, totals.errors, totals.accepted) == (
        "all",
        5,
        3,
        1,
        2,
    )
    assert totals.acceptance_rate == pytest.approx(2 / 3)
    assert (totals.lines_suggested, totals.lines_accepted) == (6, 4)
    assert (totals.chars_suggested, totals.chars_accepted) == (60, 40)
    assert totals.mean_latency_ms == pytest.approx(200.0)  # the failed request's 9 s not included
    assert totals.metrics == pytest.approx({"em": 1 / 3, "es": 2 / 3})

    go, python = report.by_language
    assert (go.key, go.points, go.suggestions, go.errors, go.accepted) == ("go", 3, 1, 1, 0)
    assert go.acceptance_rate == 0.0
    assert go.mean_latency_ms == pytest.approx(300.0)
    assert go.metrics == pytest.approx({"em": 0.0, "es": 0.25})
    assert (python.key, python.points, python.suggestions, python.accepted) == ("python", 2, 2, 2)
    assert python.acceptance_rate == 1.0
    assert (python.lines_suggested, python.chars_accepted) == (4, 40)
    assert python.metrics == pytest.approx({"em": 0.5, "es": 0.875})

    call, condition, body, statement = report.by_kind
    assert [call.key, condition.key, body.key, statement.key] == [
        "call",
        "condition",
        "function_body",
        "statement",
    ]
    assert (call.points, call.suggestions, call.errors, call.acceptance_rate) == (1, 0, 1, None)
    assert call.mean_latency_ms is None
    assert call.metrics == {}
    assert (body.points, body.suggestions, body.accepted, body.acceptance_rate) == (2, 2, 1, 0.5)
    assert body.metrics == pytest.approx({"em": 0.5, "es": 0.625})
    assert (statement.points, statement.suggestions, statement.errors) == (1, 0, 0)

    assert json.loads(json.dumps(asdict(report)))["totals"]["accepted"] == 2


def test_report_lengths_are_mean_prediction_and_mean_reference_chars(session: Session) -> None:
    """aiXcoder's Length(Pred/Ref): (10, 2) and (100, 100) characters report 55 / 51, where a
    mean of per-suggestion ratios would say 3.0."""
    run_id = new_run(session)
    files = queries.add_files(session, run_id=run_id, files=[{"path": "a.py", "size": 1}])
    pairs = {"p1": ("x" * 10, "y" * 2), "p2": ("z" * 100, "z" * 100)}
    points = queries.add_points(
        session, run_id=run_id, points=[point(files["a.py"], key) for key in pairs]
    )
    python = get_language("python")
    results = [
        result(
            run_id,
            points[key],
            accepted=False,
            scores=scoring.score(pred, ref, language=python, parses=True),
        )
        for key, (pred, ref) in pairs.items()
    ]
    queries.add_results(session, metrics=scoring.METRICS, results=results)
    session.commit()
    means = reports.run_report(session, run_id=run_id).totals.metrics
    assert (means["length_pred"], means["length_ref"]) == (55.0, 51.0)


def test_report_counts_truncated_prompts_and_answers_at_the_limit(session: Session) -> None:
    run_id = new_run(session)
    files = queries.add_files(session, run_id=run_id, files=[{"path": "a.py", "size": 1}])
    keys = ("cut", "whole", "at_limit", "failed")
    points = queries.add_points(
        session, run_id=run_id, points=[point(files["a.py"], key) for key in keys]
    )
    asked = {"max_new_tokens": 16, "queued_ms": 2.0}
    queries.add_results(
        session,
        metrics=scoring.METRICS,
        results=[
            result(run_id, points["cut"], output_tokens=3, prompt_truncated=True, **asked),
            result(run_id, points["whole"], output_tokens=15, prompt_truncated=False, **asked),
            result(run_id, points["at_limit"], output_tokens=16, prompt_truncated=True, **asked),
            # a failed request is not an answer at the limit, whatever its columns say
            result(run_id, points["failed"], output_tokens=99, error="unavailable", **asked),
        ],
    )
    run = queries.get_run(session, run_id=run_id)
    run.served_by = {"model": "ensemble", "tokens_exact": False}
    session.commit()
    report = reports.run_report(session, run_id=run_id)
    assert report.budgets == reports.BudgetFacts(
        prompts_truncated=2, at_limit=1, mean_queued_ms=2.0
    )
    assert report.served_by == {"model": "ensemble", "tokens_exact": False}


def test_report_of_an_empty_run_and_a_missing_one(session: Session) -> None:
    run_id = new_run(session)
    report = reports.run_report(session, run_id=run_id)
    assert (report.totals.points, report.totals.suggestions) == (0, 0)
    assert report.totals.acceptance_rate is None
    assert (report.by_language, report.by_kind, report.metrics) == ([], [], [])
    with pytest.raises(RunNotFound):
        reports.run_report(session, run_id=run_id + 1)


def test_results_need_registered_metrics(session: Session) -> None:
    run_id = new_run(session)
    files = queries.add_files(session, run_id=run_id, files=[{"path": "a.py", "size": 1}])
    points = queries.add_points(session, run_id=run_id, points=[point(files["a.py"], "p")])
    with pytest.raises(ValueError, match="bleu"):
        queries.add_results(
            session, metrics=METRICS, results=[result(run_id, points["p"], scores={"bleu": 1})]
        )


def test_status_times_and_run_list(session: Session) -> None:
    first = new_run(session)
    second = new_run(session)
    queries.set_run_status(session, run_id=first, status=RunStatus.RUNNING)
    queries.set_run_status(session, run_id=first, status="failed", error="server died")
    session.commit()
    session.expire_all()

    run = session.get(Run, first)
    assert run is not None
    assert (run.status, run.error) == ("failed", "server died")
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at.tzinfo is UTC and run.created_at.tzinfo is UTC
    assert run.created_at <= run.started_at <= run.finished_at <= datetime.now(UTC)

    summaries = reports.list_runs(session)
    assert [s.id for s in summaries] == [second, first]
    assert (summaries[1].status, summaries[1].suggestions, summaries[1].acceptance_rate) == (
        "failed",
        0,
        None,
    )
    assert datetime.fromisoformat(summaries[1].finished_at or "") == run.finished_at
    assert [s.id for s in reports.list_runs(session, limit=1)] == [second]

    with pytest.raises(RunNotFound):
        queries.set_run_status(session, run_id=second + 1, status="done")
    with pytest.raises(ValueError):
        queries.set_run_status(session, run_id=second, status="finished")


def test_naive_datetimes_are_refused(session: Session) -> None:
    run = session.get(Run, new_run(session))
    assert run is not None
    run.started_at = datetime(2026, 1, 1)
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_repository_is_found_not_duplicated(session: Session) -> None:
    a = queries.get_or_create_repository(session, origin="/src/x", name="x")
    b = queries.get_or_create_repository(session, origin="/src/x", name="other")
    assert (a.id, b.name) == (b.id, "x")
    assert session.scalar(select(func.count()).select_from(Repository)) == 1


def test_unique_constraints_hold(engine: Engine) -> None:
    make_session = session_factory(engine)
    with make_session() as session:
        run_id = seed_report(session)
        other_run = new_run(session, origin="/elsewhere")
        session.commit()
        point_id = session.scalars(select(Point.id).where(Point.key == "p1")).one()
        suggestion_id = session.scalars(
            select(Suggestion.id).where(Suggestion.point_id == point_id)
        ).one()
        # The same path in another run is fine.
        queries.add_files(session, run_id=other_run, files=[{"path": "a.py", "size": 1}])
        session.commit()

    def same_origin(s: Session) -> None:
        s.add(Repository(origin="/elsewhere", name="again"))
        s.flush()

    duplicates = [
        lambda s: queries.add_files(s, run_id=run_id, files=[{"path": "a.py", "size": 1}]),
        lambda s: queries.add_points(s, run_id=run_id, points=[point(1, "p1")]),
        lambda s: s.execute(insert(Suggestion), [result(run_id, point_id)]),
        lambda s: s.execute(
            insert(Score),
            [
                {
                    "suggestion_id": suggestion_id,
                    "metric_name": "es",
                    "metric_version": 1,
                    "value": 0.0,
                }
            ],
        ),
        same_origin,
    ]
    for write in duplicates:
        with make_session() as session, pytest.raises(IntegrityError):
            write(session)


def test_results_are_stored_once_per_point_and_failures_are_replaced(engine: Engine) -> None:
    make_session = session_factory(engine)
    with make_session() as session:
        run_id = new_run(session, origin="/once")
        file_ids = queries.add_files(session, run_id=run_id, files=[{"path": "a.py", "size": 1}])
        ids = queries.add_points(
            session,
            run_id=run_id,
            points=[{**point(file_ids["a.py"], "good")}, {**point(file_ids["a.py"], "bad")}],
        )
        session.commit()
    good, bad = ids["good"], ids["bad"]
    failed = {"raw_text": None, "text": None, "error": "UNAVAILABLE", "attempts": 5}

    def write(*results: dict[str, Any]) -> None:
        with make_session.begin() as session:
            queries.add_results(session, metrics=METRICS, results=list(results))

    write(result(run_id, good, scores={"es": 0.5}), result(run_id, bad, **failed))
    # A redelivered task writes the same results again; a retried point now succeeds.
    write(
        result(run_id, good, text="other", scores={"es": 0.9}),
        result(run_id, bad, text="fixed", scores={"es": 1.0}),
    )
    # A late failure never replaces a good answer.
    write(result(run_id, good, **failed))
    with make_session() as session:
        rows = session.execute(
            select(Suggestion.point_id, Suggestion.text, Suggestion.error, Score.value)
            .join(Score, Score.suggestion_id == Suggestion.id)
            .order_by(Suggestion.point_id)
        ).all()
        assert [tuple(row) for row in rows] == [(good, "x", None, 0.5), (bad, "fixed", None, 1.0)]
        assert queries.count_results(session, run_id=run_id) == (2, 0)
        assert queries.pending_points(session, run_id=run_id) == []


def test_foreign_keys_are_enforced_and_runs_cascade(engine: Engine) -> None:
    make_session = session_factory(engine)
    with make_session() as session, pytest.raises(IntegrityError):
        queries.add_files(session, run_id=12345, files=[{"path": "a.py", "size": 1}])
    with make_session() as session:
        run_id = seed_report(session)
        session.execute(delete(Run).where(Run.id == run_id))
        session.commit()
        for table in (File, Point, Suggestion, Score):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_pages_run_across_files_in_file_order(session: Session) -> None:
    run_id = new_run(session, origin="/paged")
    files = queries.add_files(
        session, run_id=run_id, files=[{"path": p, "size": 1} for p in ("c.py", "a.py", "b.py")]
    )
    points = [
        point(files[path], f"{path}:{start}", kind) | {"start_byte": start, "start_line": start}
        for path in files
        for start, kind in ((30, "call"), (10, "condition"), (20, "call"), (0, "call"))
    ]
    queries.add_points(session, run_id=run_id, points=points)
    session.commit()
    everything = sorted((p["key"].split(":")[0], p["start_byte"], p["kind"]) for p in points)
    for kind in (None, "call"):
        wanted = [row for row in everything if kind in (None, row[2])]
        pages = [
            suggestions.suggestion_page(session, run_id=run_id, offset=o, limit=5, kind=kind)
            for o in range(0, 15, 5)
        ]
        found = [(i.path, i.start_line, i.kind) for page in pages for i in page.items]
        assert wanted == found
        assert {page.total for page in pages} == {len(wanted)}
        # The same pages by cursor: each after the previous page's last point.
        followed = [pages[0]]
        while (after := followed[-1].next_after) is not None:
            page = suggestions.suggestion_page(
                session, run_id=run_id, after=after, limit=5, kind=kind
            )
            followed.append(page)
        assert followed == [page for page in pages if page.items]
    with pytest.raises(RunNotFound):  # a cursor that is no point of the run
        suggestions.suggestion_page(session, run_id=run_id, after=10**6)
