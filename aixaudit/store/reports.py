"""Reports: what a run found, aggregated by the database (totals, by language, span kind and
file role),
with the uncertainty of each headline number: a Wilson interval for a rate, a file-clustered
bootstrap interval for a mean (see aixaudit/stats.py), each with its n.

Plain frozen dataclasses, so the CLI renders them, the API serialises them (`asdict`) and
tests compare them, all from one query path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, case, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from aixaudit.stats import SEED, Interval, cluster_bootstrap, wilson
from aixaudit.store.queries import fresh_rollups, get_run, scores_of_run
from aixaudit.store.scored import UNKNOWN, ScoredPoints, scored_points
from aixaudit.store.tables import (
    File,
    Metric,
    Point,
    Repository,
    Run,
    RunRollup,
    Score,
    Suggestion,
)


@dataclass(frozen=True)
class RunSummary:
    """One line of `list_runs`. Times are ISO 8601 strings in UTC, so asdict() is JSON-able."""

    id: int
    repository_id: int
    origin: str
    name: str
    ref: str | None
    commit: str | None
    status: str
    profile: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    points_total: int
    suggestions: int  # suggestions that came back from the model
    errors: int  # points whose every request failed
    accepted: int
    acceptance_rate: float | None  # accepted / suggestions; None before any suggestion
    acceptance_interval: Interval | None  # Wilson 95%, n = suggestions
    reused: int  # results taken over from an earlier run (unchanged files)
    regression: bool | None  # vs the previous run of the repository; None: not compared
    group_id: int | None = None  # the ablation this run belongs to (its first run's id)
    context: str = "none"  # the run's repository context strategy


@dataclass(frozen=True)
class Breakdown:
    """Tallies over a group of points (a language, a span kind, a file role, or the whole run:
    key "all").

    Rates and means are over suggestions that came back; errored points only count in `errors`.
    `metrics` maps each metric's name to its mean; the means of length_pred and length_ref are
    aiXcoder's Length(Pred/Ref), mean prediction and mean reference characters (a mean of
    per-suggestion ratios would weigh a 2-character reference like a 100-character one).
    `intervals` gives the 95% interval and n of "acceptance_rate" and of each metric's mean.
    """

    key: str
    points: int
    suggestions: int
    errors: int
    accepted: int
    acceptance_rate: float | None
    lines_suggested: int
    lines_accepted: int
    chars_suggested: int
    chars_accepted: int
    mean_latency_ms: float | None
    metrics: dict[str, float]
    intervals: dict[str, Interval]

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> Breakdown:
        intervals = {name: Interval(**found) for name, found in stored["intervals"].items()}
        return cls(**{**stored, "intervals": intervals})


@dataclass(frozen=True)
class MetricInfo:
    name: str
    version: int
    definition: str
    higher_is_better: bool


@dataclass(frozen=True)
class BudgetFacts:
    """How the run's budgets bit: prompts cut to fit, answers that stopped at the new-token limit
    (output tokens >= tokens asked: they may be cut short), and client-side waiting."""

    prompts_truncated: int
    at_limit: int
    mean_queued_ms: float | None


@dataclass(frozen=True)
class ReportSections:
    """The parts of a report computed from the run's rows: what its rollup stores."""

    files: int
    skipped: dict[str, int]
    totals: Breakdown
    by_language: list[Breakdown]
    by_kind: list[Breakdown]
    by_role: list[Breakdown]
    metrics: list[MetricInfo]
    retries: dict[str, int]
    budgets: BudgetFacts

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> ReportSections:
        """The sections from `asdict` of them (a rollup's JSON)."""
        return cls(
            files=stored["files"],
            skipped=stored["skipped"],
            totals=Breakdown.from_json(stored["totals"]),
            by_language=[Breakdown.from_json(found) for found in stored["by_language"]],
            by_kind=[Breakdown.from_json(found) for found in stored["by_kind"]],
            by_role=[Breakdown.from_json(found) for found in stored["by_role"]],
            metrics=[MetricInfo(**found) for found in stored["metrics"]],
            retries=stored["retries"],
            budgets=BudgetFacts(**stored["budgets"]),
        )


@dataclass(frozen=True)
class RunReport:
    """Everything a report shows; asdict() is JSON-able. `skipped` counts files by skip reason."""

    run: RunSummary
    config: dict[str, Any]
    acceptance_rule: dict[str, Any]
    files: int
    skipped: dict[str, int]
    totals: Breakdown
    by_language: list[Breakdown]
    by_kind: list[Breakdown]
    by_role: list[Breakdown]  # source, test, example, generated: what --roles audited
    metrics: list[MetricInfo]
    # Requests sent again, by cause (the first line of the error), most frequent first: a
    # timed-out request may have been computed by the server too.
    retries: dict[str, int]
    served_by: dict[str, Any] | None = None  # what answered: model, weights, server, tokenizer
    budgets: BudgetFacts | None = None


def budget_facts(session: Session, *, run_id: int) -> BudgetFacts:
    came_back = Suggestion.error.is_(None)
    at_limit = and_(came_back, Suggestion.output_tokens >= Suggestion.max_new_tokens)
    row = session.execute(
        select(
            func.coalesce(func.sum(case((Suggestion.prompt_truncated.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((at_limit, 1), else_=0)), 0),
            func.avg(case((came_back, Suggestion.queued_ms))),
        ).where(Suggestion.run_id == run_id)
    ).one()
    return BudgetFacts(int(row[0]), int(row[1]), None if row[2] is None else float(row[2]))


def tallies() -> list[ColumnElement[Any]]:
    """Aggregates over suggestion rows, also correct under a LEFT JOIN (no suggestion yet)."""
    came_back = and_(Suggestion.id.is_not(None), Suggestion.error.is_(None))

    def total(expr: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(expr), 0)

    return [
        total(case((came_back, 1), else_=0)).label("suggestions"),
        total(case((Suggestion.error.is_not(None), 1), else_=0)).label("errors"),
        total(case((Suggestion.accepted, 1), else_=0)).label("accepted"),
        total(Suggestion.lines_suggested).label("lines_suggested"),
        total(Suggestion.lines_accepted).label("lines_accepted"),
        total(Suggestion.chars_suggested).label("chars_suggested"),
        total(Suggestion.chars_accepted).label("chars_accepted"),
        func.avg(case((came_back, Suggestion.latency_ms))).label("mean_latency_ms"),
    ]


def rate_of(accepted: int, suggestions: int) -> float | None:
    """Acceptance rate as Copilot's metrics count it: accepted / suggestions shown."""
    return accepted / suggestions if suggestions else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


_COUNTS = (RunRollup.suggestions, RunRollup.errors, RunRollup.accepted, RunRollup.reused)


def _summaries(session: Session, runs: Select[Any]) -> list[RunSummary]:
    """Counts from the rollups of finished runs; the other runs' suggestions are added up."""
    rows = session.execute(runs.add_columns(Repository.origin, Repository.name)).all()
    run_ids = [run.id for run, _, _ in rows]
    counts: dict[int, Any] = fresh_rollups(session, run_ids=run_ids, columns=_COUNTS)
    counting = [run_id for run_id in run_ids if run_id not in counts]
    if counting:
        counts.update(
            (row.run_id, row)
            for row in session.execute(
                select(
                    Suggestion.run_id,
                    *tallies(),
                    func.coalesce(func.sum(case((Suggestion.reused, 1), else_=0)), 0).label(
                        "reused"
                    ),
                )
                .where(Suggestion.run_id.in_(counting))
                .group_by(Suggestion.run_id)
            )
        )
    summaries = []
    for run, origin, name in rows:
        count = counts.get(run.id)
        suggestions = int(count.suggestions) if count else 0
        accepted = int(count.accepted) if count else 0
        summaries.append(
            RunSummary(
                id=run.id,
                repository_id=run.repository_id,
                origin=origin,
                name=name,
                ref=run.ref,
                commit=run.commit,
                status=run.status,
                profile=run.profile,
                created_at=run.created_at.isoformat(),
                started_at=_iso(run.started_at),
                finished_at=_iso(run.finished_at),
                error=run.error,
                points_total=run.points_total,
                suggestions=suggestions,
                errors=int(count.errors) if count else 0,
                accepted=accepted,
                acceptance_rate=rate_of(accepted, suggestions),
                acceptance_interval=wilson(accepted, suggestions),
                reused=int(count.reused) if count else 0,
                regression=run.regression,
                group_id=run.group_id,
                context=run.config.get("context", "none"),
            )
        )
    return summaries


def _runs_with_repository() -> Select[Any]:
    return select(Run).join(Repository, Run.repository_id == Repository.id)


def list_runs(
    session: Session, *, limit: int = 50, repository_id: int | None = None
) -> list[RunSummary]:
    """The latest runs first, of every repository or of one."""
    runs = _runs_with_repository().order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
    if repository_id is not None:
        runs = runs.where(Run.repository_id == repository_id)
    return _summaries(session, runs)


def _mean_intervals(points: ScoredPoints, *, seed: int) -> dict[str, Interval]:
    """The cluster-bootstrap interval of each metric's mean over `points`, by metric name."""
    names = list(points.scores)
    if not names:
        return {}
    table = np.column_stack([points.scores[name] for name in names])
    found = cluster_bootstrap(table, points.path, seed=seed)
    return {name: interval for name, interval in zip(names, found, strict=True) if interval}


def _breakdowns(
    session: Session,
    *,
    run_id: int,
    group: InstrumentedAttribute[Any] | None,
    points: ScoredPoints,
    seed: int,
) -> list[Breakdown]:
    """Tallies, metric means and their intervals per value of `group` (one "all" row when
    group is None)."""
    grouping = [group] if group is not None else []
    keys = [group.label("key")] if group is not None else []
    counts = (
        select(*keys, func.count(Point.id).label("points"), *tallies())
        .select_from(Point)
        .join(File, and_(Point.file_id == File.id, File.run_id == run_id))
        .outerjoin(Suggestion, and_(Suggestion.point_id == Point.id, Suggestion.run_id == run_id))
        .where(Point.run_id == run_id)
        .group_by(*grouping)
        .order_by(*grouping)
    )

    def key_of(row: Any) -> str:
        return "all" if group is None else str(row.key or UNKNOWN)

    column = None if group is None else getattr(points, group.key)
    rows = session.execute(counts).all()
    scopes = {
        key_of(row): points if column is None else points.take(column == key_of(row))
        for row in rows
    }

    def intervals(row: Any) -> dict[str, Interval]:
        rate = wilson(int(row.accepted), int(row.suggestions))
        found = _mean_intervals(scopes[key_of(row)], seed=seed)
        return {"acceptance_rate": rate, **found} if rate else found

    return [
        Breakdown(
            key=key_of(row),
            points=int(row.points),
            suggestions=int(row.suggestions),
            errors=int(row.errors),
            accepted=int(row.accepted),
            acceptance_rate=rate_of(int(row.accepted), int(row.suggestions)),
            lines_suggested=int(row.lines_suggested),
            lines_accepted=int(row.lines_accepted),
            chars_suggested=int(row.chars_suggested),
            chars_accepted=int(row.chars_accepted),
            mean_latency_ms=None if row.mean_latency_ms is None else float(row.mean_latency_ms),
            metrics=metric_means(scopes[key_of(row)]),
            intervals=intervals(row),
        )
        for row in rows
    ]


def metric_means(points: ScoredPoints) -> dict[str, float]:
    """Each metric's mean over the points scored on it, by name (from exact sums)."""
    return {name: total / n for name, (total, n) in points.metric_sums().items()}


def retry_causes(session: Session, *, run_id: int) -> dict[str, int]:
    """How many requests of the run each cause made the client send again."""
    causes: Counter[str] = Counter()
    stored = select(Suggestion.retries).where(
        Suggestion.run_id == run_id, Suggestion.retries.is_not(None)
    )
    for retries in session.scalars(stored):
        causes.update(retries or ())
    return dict(causes.most_common())


def report_sections(
    session: Session, *, run_id: int, points: ScoredPoints, seed: int = SEED
) -> ReportSections:
    """The report's sections computed from the run's rows and `points` (aggregates and
    bootstraps): what a rollup stores. Metric means assume one version of each metric per run."""
    skipped = session.execute(
        select(File.skip_reason, func.count())
        .where(File.run_id == run_id, File.skip_reason.is_not(None))
        .group_by(File.skip_reason)
        .order_by(File.skip_reason)
    )
    files = session.scalar(select(func.count()).select_from(File).where(File.run_id == run_id))
    used = exists().where(
        Score.metric_name == Metric.name,
        Score.metric_version == Metric.version,
        Score.suggestion_id == Suggestion.id,
        Suggestion.run_id == run_id,
        scores_of_run(session, run_id=run_id),
    )
    metrics = session.scalars(select(Metric).where(used).order_by(Metric.name, Metric.version))
    [totals] = _breakdowns(session, run_id=run_id, group=None, points=points, seed=seed)
    return ReportSections(
        files=int(files or 0),
        skipped={str(reason): int(count) for reason, count in skipped},
        totals=totals,
        by_language=_breakdowns(
            session, run_id=run_id, group=File.language, points=points, seed=seed
        ),
        by_kind=_breakdowns(session, run_id=run_id, group=Point.kind, points=points, seed=seed),
        by_role=_breakdowns(session, run_id=run_id, group=File.role, points=points, seed=seed),
        metrics=[
            MetricInfo(
                name=m.name,
                version=m.version,
                definition=m.definition,
                higher_is_better=m.higher_is_better,
            )
            for m in metrics
        ],
        retries=retry_causes(session, run_id=run_id),
        budgets=budget_facts(session, run_id=run_id),
    )


def run_report(session: Session, *, run_id: int, seed: int = SEED) -> RunReport:
    """The report of one run: a finished run's sections from its rollup (computed with SEED),
    any other's from its rows. `seed` drives the bootstrap."""
    run = get_run(session, run_id=run_id)
    [summary] = _summaries(session, _runs_with_repository().where(Run.id == run_id))
    stored = (
        fresh_rollups(session, run_ids=[run_id], columns=[RunRollup.report]) if seed == SEED else {}
    )
    if run_id in stored:
        sections = ReportSections.from_json(stored[run_id].report)
    else:
        points = scored_points(session, run_id=run_id)
        sections = report_sections(session, run_id=run_id, points=points, seed=seed)
    return RunReport(
        run=summary,
        config=run.config,
        acceptance_rule=run.acceptance_rule,
        served_by=run.served_by,
        **vars(sections),
    )
