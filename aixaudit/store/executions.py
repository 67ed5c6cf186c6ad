"""Reads and writes of execution-verified acceptance (aixaudit.execution): coverage maps,
each suggestion's test run with its `tests_passed` score, and the run's figures with Wilson
intervals. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from aixaudit.stats import Interval, wilson
from aixaudit.store.queries import MetricSpec
from aixaudit.store.tables import (
    Blob,
    CoverageMap,
    Execution,
    ExecutionRun,
    File,
    Metric,
    Point,
    Repository,
    Run,
    Score,
    Suggestion,
)

PASSED, FAILED = "passed", "failed"
UNCOVERED, BASELINE_FAILING = "uncovered", "baseline_failing"
EXECUTED = (PASSED, FAILED)
REQUESTED = "requested"  # an execution_runs row before the execution


@dataclass(frozen=True)
class ExecutablePoint:
    """A suggestion that came back, with what is needed to put it into its file."""

    suggestion_id: int
    key: str
    path: str
    language: str
    kind: str
    start_byte: int
    end_byte: int
    start_line: int
    end_line: int
    text: str  # the suggestion, as scored
    file_text: str  # the file as planned
    accepted: bool

    def changed_file(self) -> str:
        source = self.file_text.encode()
        return (source[: self.start_byte] + self.text.encode() + source[self.end_byte :]).decode()


def executable_points(session: Session, *, run_id: int) -> list[ExecutablePoint]:
    rows = session.execute(
        select(
            Suggestion.id.label("suggestion_id"),
            Point.key,
            File.path,
            File.language,
            Point.kind,
            Point.start_byte,
            Point.end_byte,
            Point.start_line,
            Point.end_line,
            Suggestion.text,
            Blob.text.label("file_text"),
            Suggestion.accepted,
        )
        .join(Point, Suggestion.point_id == Point.id)
        .join(File, Point.file_id == File.id)
        .join(Blob, Blob.sha256 == File.sha256)
        .where(Suggestion.run_id == run_id, Suggestion.text.is_not(None))
        .order_by(Point.id)
    )
    return [ExecutablePoint(**row._asdict()) for row in rows]


def run_origin(session: Session, *, run_id: int) -> str:
    """Where the run's repository came from (a path or a git URL)."""
    origin = session.scalar(
        select(Repository.origin)
        .join(Run, Run.repository_id == Repository.id)
        .where(Run.id == run_id)
    )
    assert origin is not None  # runs.repository_id is a non-null foreign key
    return origin


def get_coverage_map(
    session: Session, *, repository_id: int, commit: str, runner: str
) -> CoverageMap | None:
    return session.scalar(
        select(CoverageMap).where(
            CoverageMap.repository_id == repository_id,
            CoverageMap.commit == commit,
            CoverageMap.runner == runner,
        )
    )


def add_coverage_map(session: Session, **fields: Any) -> None:
    session.add(CoverageMap(**fields))


def replace_executions(
    session: Session,
    *,
    run_id: int,
    run: Mapping[str, Any],
    executions: Sequence[Mapping[str, Any]],
    metric: MetricSpec,
) -> None:
    """Store a run's execution (what an earlier execution of the run stored is replaced), and
    `metric` (1 passed, 0 failed) for each suggestion whose tests ran."""
    ids = select(Suggestion.id).where(Suggestion.run_id == run_id)
    session.execute(
        delete(Score).where(Score.metric_name == metric.name, Score.suggestion_id.in_(ids))
    )
    session.execute(delete(Execution).where(Execution.run_id == run_id))
    session.execute(delete(ExecutionRun).where(ExecutionRun.run_id == run_id))
    session.add(ExecutionRun(run_id=run_id, **run))
    session.add_all(Execution(run_id=run_id, **row) for row in executions)
    if session.get(Metric, (metric.name, metric.version)) is None:
        session.add(
            Metric(
                name=metric.name,
                version=metric.version,
                definition=metric.definition,
                higher_is_better=metric.higher_is_better,
            )
        )
    session.add_all(
        Score(
            suggestion_id=row["suggestion_id"],
            metric_name=metric.name,
            metric_version=metric.version,
            value=1.0 if row["status"] == PASSED else 0.0,
        )
        for row in executions
        if row["status"] in EXECUTED
    )


def request_execution(session: Session, *, run_id: int, options: Mapping[str, Any]) -> None:
    """Ask for the run to be executed once its completions are in (on the workers)."""
    session.execute(delete(ExecutionRun).where(ExecutionRun.run_id == run_id))
    session.add(ExecutionRun(run_id=run_id, status=REQUESTED, options=dict(options)))


def requested_options(session: Session, *, run_id: int) -> dict[str, Any] | None:
    """The options of a pending request to execute the run; None when there is none."""
    facts = session.get(ExecutionRun, run_id)
    return facts.options if facts is not None and facts.status == REQUESTED else None


@dataclass(frozen=True)
class Verified:
    """Execution-verified beside textual acceptance over one group of executed points (the
    run, a language, a span kind): both rates share the same denominator."""

    key: str
    executed: int  # points whose tests ran
    passed: int
    accepted: int  # textually accepted (the run's acceptance rule)
    verified: int  # accepted AND the tests pass
    accepted_rate: Interval | None
    verified_rate: Interval | None
    passed_rate: Interval | None


@dataclass(frozen=True)
class ExecutionReport:
    run_id: int
    runner: str | None
    status: str
    reason: str | None
    points_sampled: int
    by_status: dict[str, int]  # passed, failed, uncovered, baseline_failing
    cpu_s: float
    cpu_s_per_point: float | None  # test CPU seconds per point whose tests ran
    totals: Verified
    by_language: list[Verified]
    by_kind: list[Verified]


def execution_report(session: Session, *, run_id: int) -> ExecutionReport | None:
    """The run's execution figures; None when it was never executed."""
    facts = session.get(ExecutionRun, run_id)
    if facts is None or facts.status == REQUESTED:
        return None
    rows = session.execute(
        select(Execution.status, Execution.cpu_s, File.language, Point.kind, Suggestion.accepted)
        .join(Suggestion, Execution.suggestion_id == Suggestion.id)
        .join(Point, Suggestion.point_id == Point.id)
        .join(File, Point.file_id == File.id)
        .where(Execution.run_id == run_id)
    ).all()
    by_status = {status: 0 for status in (PASSED, FAILED, UNCOVERED, BASELINE_FAILING)}
    for row in rows:
        by_status[row.status] += 1
    executed = [row for row in rows if row.status in EXECUTED]

    def group(key: str, members: list[Any]) -> Verified:
        passed = sum(row.status == PASSED for row in members)
        accepted = sum(bool(row.accepted) for row in members)
        verified = sum(row.status == PASSED and bool(row.accepted) for row in members)
        n = len(members)
        return Verified(key, n, passed, accepted, verified,
                        wilson(accepted, n), wilson(verified, n), wilson(passed, n))  # fmt: skip

    def grouped(attribute: str) -> list[Verified]:
        keys = sorted({getattr(row, attribute) or "" for row in executed})
        return [group(k, [r for r in executed if (getattr(r, attribute) or "") == k]) for k in keys]

    count = len(executed)
    return ExecutionReport(
        run_id=run_id,
        runner=facts.runner,
        status=facts.status,
        reason=facts.reason,
        points_sampled=facts.points_sampled,
        by_status=by_status,
        cpu_s=facts.cpu_s,
        cpu_s_per_point=sum(row.cpu_s or 0.0 for row in executed) / count if count else None,
        totals=group("all", executed),
        by_language=grouped("language"),
        by_kind=grouped("kind"),
    )
