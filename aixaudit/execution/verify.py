"""Execute a run's suggestions: put each into its file and run the tests that reach it.

Works on stored suggestions only, so an old run is executed (again) without asking the model.
Per commit the suite runs once with coverage (stored, reused); a sample of the run's points,
deterministic under the seed and bounded by a point cap and a test-time cap, then runs the
tests that execute each point's lines, inside the sandbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from aixaudit.errors import ExecutionError
from aixaudit.execution.make_runner import MakeRunner
from aixaudit.execution.pytest_runner import PytestRunner
from aixaudit.execution.runner import Baseline, NotRunnable, Prepared, Runner, TestRun
from aixaudit.execution.sandbox import Limits
from aixaudit.scoring import Metric
from aixaudit.sources import Checkout, checkout, is_git_url
from aixaudit.store import executions as store
from aixaudit.store.executions import run_origin
from aixaudit.store.queries import get_run

TESTS_PASSED = Metric(
    "tests_passed",
    1,
    "1 when every test of the repository's own suite that executes the point's lines passes "
    "with the suggestion in its place (sandboxed, within the limits), else 0; only for points "
    "some test executes and whose tests pass without the suggestion",
    True,
)

RUNNERS: tuple[Runner, ...] = (PytestRunner(), MakeRunner())


class ExecutionOptions(BaseModel):
    """How much of a run to execute: given per execution, or stored with a request to execute
    (a run's, a schedule's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_points: int = Field(default=50, ge=1, le=1_000_000)
    max_test_s: float = Field(default=1800.0, gt=0, le=7 * 86_400)  # wall seconds of test runs
    seed: int = Field(default=0, ge=-(2**63), le=2**63 - 1)
    wall_s: float = Field(default=300.0, gt=0, le=86_400)  # one test run
    memory_bytes: int = Field(default=4 << 30, ge=1 << 26)

    def limits(self) -> Limits:
        return Limits(
            wall_s=self.wall_s, cpu_s=int(self.wall_s) + 1, memory_bytes=self.memory_bytes
        )


def pick_runner(checkout: Path) -> Runner | None:
    return next((runner for runner in RUNNERS if runner.detect(checkout)), None)


def sample(
    points: Sequence[store.ExecutablePoint], *, seed: int, cap: int
) -> list[store.ExecutablePoint]:
    """At most `cap` points, the same ones for the same seed however the run was stored."""

    def rank(point: store.ExecutablePoint) -> str:
        return hashlib.sha256(f"{seed}:{point.key}".encode()).hexdigest()

    return sorted(points, key=rank)[:cap]


def execute_run(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    source: Checkout,
    cache_dir: Path,
    options: ExecutionOptions,
) -> store.ExecutionReport:
    """Execute the run's sampled suggestions on `source` (at the run's commit) and store
    the results, replacing an earlier execution of the run; returns the run's figures."""
    with session_factory() as session:
        run = get_run(session, run_id=run_id)
        repository_id, commit = run.repository_id, run.commit
        points = store.executable_points(session, run_id=run_id)
    if commit is not None and source.commit != commit:
        raise ExecutionError(
            f"Run {run_id} audited commit {commit}; the checkout is at {source.commit}."
        )
    root = source.root
    runner = pick_runner(root)
    prepared = (
        runner.prepare(root, cache_dir=cache_dir)
        if runner
        else NotRunnable("no test runner recognises this checkout")
    )
    picked = sample(points, seed=options.seed, cap=options.max_points)
    facts: dict[str, Any]
    if isinstance(prepared, NotRunnable):
        facts = {"runner": runner.name if runner else None, "status": "not_runnable",
                 "reason": prepared.reason, "points_sampled": len(picked)}  # fmt: skip
        _store(session_factory, run_id, facts, [], options)
    else:
        assert runner is not None
        baseline, baseline_cpu = _baseline(
            session_factory, prepared, repository_id=repository_id, commit=commit,
            runner=runner.name, limits=options.limits(),
        )  # fmt: skip
        rows = _execute(prepared, baseline, picked, options)
        facts = {
            "runner": runner.name,
            "status": "done",
            "reason": None if baseline.run.passed else f"baseline: {baseline.run.failure}",
            "points_sampled": len(picked),
            "cpu_s": baseline_cpu + sum(row["cpu_s"] or 0.0 for row in rows),
            "test_s": sum(row["wall_s"] or 0.0 for row in rows),
        }
        _store(session_factory, run_id, facts, rows, options)
    with session_factory() as session:
        report = store.execution_report(session, run_id=run_id)
    assert report is not None
    return report


def _store(
    session_factory: sessionmaker[Session],
    run_id: int,
    facts: dict[str, Any],
    rows: list[dict[str, Any]],
    options: ExecutionOptions,
) -> None:
    with session_factory.begin() as session:
        store.replace_executions(
            session, run_id=run_id, run=facts | {"options": options.model_dump()},
            executions=rows, metric=TESTS_PASSED,
        )  # fmt: skip


def run_checkout(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    cache_dir: Path,
    allowed_roots: Sequence[Path] | None = None,
) -> Checkout:
    """The run's repository at the commit it audited: a git URL is checked out at that
    commit, a local directory is taken as it is (execute_run refuses another commit)."""
    with session_factory() as session:
        run = get_run(session, run_id=run_id)
        origin, commit = run_origin(session, run_id=run_id), run.commit
    ref = commit if is_git_url(origin) else None
    return checkout(origin, ref=ref, cache_dir=cache_dir, allowed_roots=allowed_roots)


def _baseline(
    session_factory: sessionmaker[Session],
    prepared: Prepared,
    *,
    repository_id: int,
    commit: str | None,
    runner: str,
    limits: Limits,
) -> tuple[Baseline, float]:
    """The commit's stored coverage map, or a new one (stored when the commit is known);
    returns it and the CPU seconds spent on it now."""
    if commit is not None:
        with session_factory() as session:
            stored = store.get_coverage_map(
                session, repository_id=repository_id, commit=commit, runner=runner
            )
            if stored is not None:
                lines = {path: {int(n): t for n, t in by_line.items()}
                         for path, by_line in stored.lines.items()}  # fmt: skip
                run = TestRun(True, [], None, stored.wall_s, stored.cpu_s, False)
                return Baseline(lines, set(stored.passing), run, stored.whole_suite,
                                set(stored.files)), 0.0  # fmt: skip
    baseline = prepared.baseline(limits=limits)
    if commit is not None:
        with session_factory.begin() as session:
            store.add_coverage_map(
                session, repository_id=repository_id, commit=commit, runner=runner,
                lines=baseline.lines, passing=sorted(baseline.passing),
                whole_suite=baseline.whole_suite, files=sorted(baseline.files),
                cpu_s=baseline.run.cpu_s, wall_s=baseline.run.wall_s,
            )  # fmt: skip
    return baseline, baseline.run.cpu_s


def _execute(
    prepared: Prepared,
    baseline: Baseline,
    points: Sequence[store.ExecutablePoint],
    options: ExecutionOptions,
) -> list[dict[str, Any]]:
    """One Execution row per point, until the test-time cap is spent."""
    rows: list[dict[str, Any]] = []
    spent = 0.0
    for point in points:
        tests = baseline.tests_for(point.path, point.start_line, point.end_line)
        row: dict[str, Any] = {"suggestion_id": point.suggestion_id, "tests": None,
                               "failure": None, "wall_s": None, "cpu_s": None}  # fmt: skip
        if not tests:
            rows.append(row | {"status": store.UNCOVERED})
            continue
        if not baseline.all_pass(tests):
            rows.append(row | {"status": store.BASELINE_FAILING})
            continue
        if spent >= options.max_test_s:
            break
        result = prepared.run(
            tests, changes={point.path: point.changed_file()}, limits=options.limits()
        )
        spent += result.wall_s
        rows.append(
            row
            | {
                "status": store.PASSED if result.passed else store.FAILED,
                "tests": [
                    {"name": t.name, "passed": t.passed, "duration_s": t.duration_s}
                    for t in result.tests
                ],
                "failure": result.failure,
                "wall_s": result.wall_s,
                "cpu_s": result.cpu_s,
            }
        )
    return rows
