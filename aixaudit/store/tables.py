"""The database schema as SQLAlchemy 2 models; migrations/ must match it (`alembic check`).

    Repository 1─* Run 1─* File 1─* Point 1─1 Suggestion 1─* Score *─1 Metric
    File *─1 Blob (by sha256: the text, kept once per content)
    ContextOutline (by language, content and outline version: repository context, see context/)
    Run 1─* RunDelta; Run *─1 Run (baseline); Run *─1 Run (group); Schedule 1─* Run (nightly runs)
    Run 1─1 ExecutionRun; Suggestion 1─1 Execution; Repository 1─* CoverageMap (by commit, runner)
    Run 1─1 RunRollup (the finished run's report, added up once)
    Run *─* Run (RunComparison: a run and its baseline compared once, when it finished)

Deleting a run deletes everything under it (ON DELETE CASCADE, so SQLite needs foreign keys on;
see db.py). The composite unique constraints lead with run_id, so they double as the run_id
indexes of files and points.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints: SQLite batch migrations can only drop or alter constraints that have names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class RunStatus(StrEnum):
    """Where a run is; the last four are final."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"  # finished, but some points have no suggestion (errors)
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite keeps no offset, PostgreSQL answers in the
    session's time zone. Naive datetimes are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        str: Text(),
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Repository(Base):
    """A source repository, by where it came from (path or git URL)."""

    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """One audit of one repository at one commit, with everything needed to reproduce it."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    ref: Mapped[str | None]
    commit: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.PENDING.value)
    profile: Mapped[str]
    config: Mapped[dict[str, Any]]
    acceptance_rule: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None]
    points_total: Mapped[int] = mapped_column(Integer, default=0)
    # What answered the run (options, rule, metric versions, model identity), hashed: results of
    # an unchanged file are reused only from a run with the same fingerprint. None: never reused.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None]
    # What answered (audit.record_served_by): model name, versions, weights/engine sha256, server
    # URL, tokenizer name and sha256, whether token counts were exact. None: not recorded.
    served_by: Mapped[dict[str, Any] | None]
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"), index=True
    )
    # The paired comparison with the previous finished run of the same repository and
    # fingerprint (see RunDelta); regression is None until compared or when nothing could be
    # paired, True when a headline metric's interval lies wholly beyond the threshold.
    baseline_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    regression: Mapped[bool | None]
    regression_threshold: Mapped[float | None] = mapped_column(Float)
    # The planning task's id (a Celery task id): a task delivered twice finds the run it planned
    # instead of planning another. None: planned by the CLI, which plans once.
    plan_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Answered by the Celery workers (False: in the process that planned it); `resume` does the
    # same, so resuming a local run needs no worker.
    distributed: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The runs of one ablation (the same points, one run per context strategy) share the id of
    # the first of them; None for a run on its own.
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )


class RunDelta(Base):
    """How much one headline metric moved against the run's baseline run, on the points the
    two runs share (paired). Rows from before migration 0005 have no interval or pair count."""

    __tablename__ = "run_deltas"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    baseline: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)  # value - baseline, mean over the pairs
    delta_low: Mapped[float | None] = mapped_column(Float)  # 95% cluster-bootstrap interval
    delta_high: Mapped[float | None] = mapped_column(Float)
    pairs: Mapped[int | None] = mapped_column(Integer)
    # the whole interval is worse (in the metric's direction) than the threshold
    regressed: Mapped[bool]


class Schedule(Base):
    """A repository audited every night at `at` (HH:MM, UTC) with the stored options."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str]  # a git URL or a directory the workers can read
    ref: Mapped[str | None]
    at: Mapped[str] = mapped_column(String(5))
    options: Mapped[dict[str, Any]]
    acceptance_rule: Mapped[dict[str, Any]]
    # ExecutionOptions of the execution each nightly run asks for (issue 13); None: not executed.
    # Kept out of `options` so that it does not change the runs' fingerprint.
    execution: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The UTC day of the last start: claiming a day is one conditional UPDATE, so two beats
    # (or a beat restarted) never start the same night twice.
    last_started_on: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class File(Base):
    """A file the scan saw; skip_reason is set when it was not audited."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("run_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    path: Mapped[str]
    language: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None]
    # source, test, example or generated (sources.FileRole): reports break results down by it
    role: Mapped[str] = mapped_column(String(16), default="source", server_default="source")


class Blob(Base):
    """A file's text, stored once per content hash: any worker on any machine answers points
    from it, and an unchanged file costs nothing in the next run."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str]


class ContextOutline(Base):
    """A file's imports and definition signatures (`aixaudit.context.outline`), stored once per
    content, language and outline version: the next run's index does not parse the file again."""

    __tablename__ = "context_outlines"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    outline: Mapped[dict[str, Any]]


class Point(Base):
    """A completion point: a masked syntax node and its original text."""

    __tablename__ = "points"
    __table_args__ = (UniqueConstraint("run_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    key: Mapped[str]
    kind: Mapped[str] = mapped_column(String(32))
    node_type: Mapped[str]  # unbounded: a run of statements joins its node types with '+'
    start_byte: Mapped[int] = mapped_column(Integer)
    end_byte: Mapped[int] = mapped_column(Integer)
    start_line: Mapped[int] = mapped_column(Integer)
    end_line: Mapped[int] = mapped_column(Integer)
    original: Mapped[str]


class Suggestion(Base):
    """The model's answer for one point (at most one: point_id is unique, which makes writes
    idempotent per point). `error` is set, and the texts are null, when every attempt failed."""

    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("points.id", ondelete="CASCADE"), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    raw_text: Mapped[str | None]
    text: Mapped[str | None]
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)  # send to answer
    queued_ms: Mapped[float | None] = mapped_column(Float)  # in the client before the send
    max_new_tokens: Mapped[int | None] = mapped_column(Integer)  # asked; output_tokens at it: cut
    prompt_truncated: Mapped[bool | None]
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    # Why each attempt but the last was tried again (one line each), None when none was: a
    # request that timed out may have been computed by the server as well.
    retries: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None]
    accepted: Mapped[bool] = mapped_column(default=False)
    lines_suggested: Mapped[int] = mapped_column(Integer, default=0)
    lines_accepted: Mapped[int] = mapped_column(Integer, default=0)
    chars_suggested: Mapped[int] = mapped_column(Integer, default=0)
    chars_accepted: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Copied from an earlier run for an unchanged file and configuration, not asked again.
    reused: Mapped[bool] = mapped_column(default=False, server_default=false())


class Metric(Base):
    """A metric's definition as it was when scores were computed with that version."""

    __tablename__ = "metrics"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[str]
    higher_is_better: Mapped[bool]


class Score(Base):
    """One metric's value for one suggestion."""

    __tablename__ = "scores"
    __table_args__ = (
        ForeignKeyConstraint(
            ["metric_name", "metric_version"], ["metrics.name", "metrics.version"]
        ),
    )

    suggestion_id: Mapped[int] = mapped_column(
        ForeignKey("suggestions.id", ondelete="CASCADE"), primary_key=True
    )
    metric_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)


class CoverageMap(Base):
    """Which tests execute which lines of a repository at one commit, and which pass there
    (aixaudit.execution): made once per commit and runner, reused by every run on it."""

    __tablename__ = "coverage_maps"
    __table_args__ = (UniqueConstraint("repository_id", "commit", "runner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    commit: Mapped[str] = mapped_column(String(64))
    runner: Mapped[str] = mapped_column(String(32))
    lines: Mapped[dict[str, Any]]  # path -> line -> test ids
    passing: Mapped[list[str]] = mapped_column(JSON)
    whole_suite: Mapped[bool]  # a runner without per-test coverage: `files` map to the suite
    files: Mapped[list[str]] = mapped_column(JSON)
    cpu_s: Mapped[float] = mapped_column(Float)
    wall_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExecutionRun(Base):
    """How a run's suggestions were tested: the runner, why not when they could not be, and
    what it cost. One row per run, replaced when the run is executed again."""

    __tablename__ = "execution_runs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    runner: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # requested, done, not_runnable
    reason: Mapped[str | None]
    # What was asked (aixaudit.execution.verify.ExecutionOptions): a run audited with
    # --execute on the workers is executed once its completions are in.
    options: Mapped[dict[str, Any] | None]
    points_sampled: Mapped[int] = mapped_column(Integer, default=0)
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)  # test runs, baseline included
    test_s: Mapped[float] = mapped_column(Float, default=0.0)  # wall time of the test runs
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Execution(Base):
    """One suggestion tested: `status` passed or failed (the tests ran), uncovered (no test
    executes the point's lines) or baseline_failing (they fail without the suggestion too)."""

    __tablename__ = "executions"

    suggestion_id: Mapped[int] = mapped_column(
        ForeignKey("suggestions.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    tests: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    failure: Mapped[str | None]
    wall_s: Mapped[float | None] = mapped_column(Float)
    cpu_s: Mapped[float | None] = mapped_column(Float)


class RunRollup(Base):
    """What a finished run's report and trend point add up, computed once when it finished:
    reading a large run's report then costs one row, not a scan and a bootstrap. Valid only
    while `finished_at` equals the run's (a resumed run finishes again, later)."""

    __tablename__ = "run_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    finished_at: Mapped[datetime]
    suggestions: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    reused: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]]  # reports.report_sections: files, breakdowns, metrics...
    trend: Mapped[dict[str, Any]]  # trends.rollup: counts, metric sums and intervals
    points: Mapped[bytes] = mapped_column(LargeBinary)  # scored.ScoredPoints.to_bytes


class RunComparison(Base):
    """The paired comparison of run B with run A (`compare.Comparison`, as JSON, with its
    MAX_TOP disagreements), computed when B finished against its baseline A: the dashboard's
    compare of that pair then reads one row instead of pairing and resampling two large runs.
    Valid only while both runs' `finished_at` equal those stored (a resumed run finishes again)."""

    __tablename__ = "run_comparisons"

    run_a: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    run_b: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    finished_a: Mapped[datetime]
    finished_b: Mapped[datetime]
    comparison: Mapped[dict[str, Any]]
