"""Executing a stored run: suggestions put into their files, the tests that reach them run in
the sandbox, results and `tests_passed` stored, figures reported; the coverage map is made once
per commit, and executing again replaces the results. No model is asked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from execution_repos import PYREPO, git_fixture
from sqlalchemy import Engine, func, select

from aixaudit.audit import AuditOptions, plan_run
from aixaudit.execution.sandbox import available
from aixaudit.execution.verify import TESTS_PASSED, ExecutionOptions, execute_run, sample
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import executions, queries
from aixaudit.store.db import session_factory
from aixaudit.store.tables import CoverageMap, Execution, Metric, Score

pytestmark = pytest.mark.skipif(available() is not None, reason=f"no sandbox: {available()}")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    directory = Path("/var/tmp") / f"aixaudit-verify-{tmp_path.name}"  # outside the sandbox's /tmp
    directory.mkdir(exist_ok=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _suggest(engine: Engine, run_id: int, texts: dict[str, str]) -> None:
    """Store a suggestion for each point whose original is a key of `texts`."""
    sessions = session_factory(engine)
    with sessions.begin() as session:
        pending = queries.pending_points(session, run_id=run_id)
        rows = [
            {"point_id": p.id, "run_id": run_id, "raw_text": texts[p.original],
             "text": texts[p.original], "accepted": True, "scores": {}}
            for p in pending
            if p.original in texts
        ]  # fmt: skip
        assert len(rows) == len(texts), [p.original for p in pending]
        queries.add_results(session, results=rows, metrics={})


@pytest.mark.sandbox
def test_execute_a_run(engine: Engine, tmp_path: Path, cache_dir: Path) -> None:
    checkout = git_fixture(PYREPO, tmp_path / "pyrepo")
    sessions = session_factory(engine)
    options = AuditOptions(per_file=100, max_points=1000, min_chars=1)
    run_id = plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
    _suggest(
        engine,
        run_id,
        {
            "return a + b": "return a - b",  # breaks test_add
            "return low": "return low",  # as it was: test_clamp_low passes
            "return len(words)": "return 0",  # no test reaches never_tested
        },
    )

    report = execute_run(
        sessions, run_id=run_id, source=checkout, cache_dir=cache_dir,
        options=ExecutionOptions(wall_s=120),
    )  # fmt: skip
    assert report.runner == "pytest" and report.status == "done", report.reason
    assert report.by_status == {"passed": 1, "failed": 1, "uncovered": 1, "baseline_failing": 0}
    assert (report.totals.executed, report.totals.accepted, report.totals.verified) == (2, 2, 1)
    assert report.totals.verified_rate is not None and report.totals.verified_rate.n == 2
    assert [v.key for v in report.by_language] == ["python"]
    assert report.cpu_s_per_point is not None and report.cpu_s_per_point > 0

    with sessions() as session:
        failed = session.scalars(select(Execution).where(Execution.status == "failed")).one()
        assert failed.tests is not None
        assert [t["name"] for t in failed.tests] == ["tests/test_ops.py::test_add"]
        assert failed.failure is not None and "assert -1 == 5" in failed.failure
        scores = session.scalars(
            select(Score.value).where(Score.metric_name == "tests_passed").order_by(Score.value)
        ).all()
        assert scores == [0.0, 1.0]
        metric = session.get(Metric, (TESTS_PASSED.name, TESTS_PASSED.version))
        assert metric is not None and metric.definition == TESTS_PASSED.definition

    again = execute_run(
        sessions, run_id=run_id, source=checkout, cache_dir=cache_dir,
        options=ExecutionOptions(wall_s=120),
    )  # fmt: skip
    assert again.by_status == report.by_status
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CoverageMap)) == 1  # reused
        assert session.scalar(select(func.count()).select_from(Execution)) == 3  # replaced
        assert executions.execution_report(session, run_id=run_id) == again


def test_sampling_is_deterministic_and_capped() -> None:
    points = [
        executions.ExecutablePoint(
            i, f"f.py:{i}", "f.py", "python", "k", 0, 1, 1, 1, "x", "y", True
        )
        for i in range(50)
    ]
    first = sample(points, seed=3, cap=10)
    assert len(first) == 10
    assert sample(list(reversed(points)), seed=3, cap=10) == first
    assert sample(points, seed=4, cap=10) != first


def test_an_execution_asked_for_waits_for_the_completions(engine: Engine, tmp_path: Path) -> None:
    """`audit --distributed --execute` stores the request; the workers' finalize reads it."""
    checkout = git_fixture(PYREPO, tmp_path / "pyrepo")
    sessions = session_factory(engine)
    run_id = plan_run(sessions, checkout=checkout, options=AuditOptions(), rule=AcceptanceRule())
    with sessions.begin() as session:
        assert executions.requested_options(session, run_id=run_id) is None
        executions.request_execution(session, run_id=run_id, options={"max_points": 7})
    with sessions() as session:
        assert executions.requested_options(session, run_id=run_id) == {"max_points": 7}
        assert executions.execution_report(session, run_id=run_id) is None  # not yet executed


def test_the_execution_task_has_a_queue_of_its_own() -> None:
    from aixaudit.jobs import COMPLETE_CHUNK, EXECUTE_SUGGESTIONS, EXECUTION_QUEUE
    from workers.tasks import app  # the app with its tasks registered

    assert app.tasks[EXECUTE_SUGGESTIONS].name == EXECUTE_SUGGESTIONS  # registered under it
    route = app.amqp.router.route({}, EXECUTE_SUGGESTIONS)
    assert route["queue"].name == EXECUTION_QUEUE
    assert app.amqp.router.route({}, COMPLETE_CHUNK)["queue"].name != EXECUTION_QUEUE
