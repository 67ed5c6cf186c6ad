"""Repositories and how their finished runs moved over time: the series a dashboard charts.

A trend point adds up the suggestions of one finished (done or partial) run, or of every
finished run started on one UTC day. Rates and means are recomputed from the sums, never
averaged from per-run rates, so a day of one small and one large run weighs each suggestion
once, as Copilot's and Tabby's daily acceptance charts do. Each carries its intervals as a run
report does (Wilson for the rate, a bootstrap over files for each mean; a day's runs resample
their files together) and the runs flagged as regressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aixaudit.errors import RepositoryNotFound
from aixaudit.stats import SEED, Interval, cluster_bootstrap, wilson
from aixaudit.store.lineage import FINISHED
from aixaudit.store.reports import rate_of, tallies
from aixaudit.store.scored import scored_points
from aixaudit.store.tables import Repository, Run, Score, Suggestion

# The metrics a trend follows, by name: their means per point are in TrendPoint.metrics.
TREND_METRICS = ("exact_match", "es_rapidfuzz")


class TrendBy(StrEnum):
    RUN = "run"
    DAY = "day"


@dataclass(frozen=True)
class RepositorySummary:
    id: int
    origin: str
    name: str
    created_at: str
    runs: int
    last_run_at: str | None


@dataclass(frozen=True)
class TrendPoint:
    """One point of a trend: a run (`period` is its start time) or a UTC day (YYYY-MM-DD)."""

    period: str
    run_ids: list[int]
    suggestions: int
    accepted: int
    acceptance_rate: float | None
    lines_suggested: int
    lines_accepted: int
    chars_suggested: int
    chars_accepted: int
    metrics: dict[str, float]  # mean of each of TREND_METRICS over the scored suggestions
    intervals: dict[str, Interval]  # 95% and n of "acceptance_rate" and each of `metrics`
    regressed_run_ids: list[int]  # its runs flagged as a regression against their baseline


def list_repositories(session: Session) -> list[RepositorySummary]:
    """Every repository with its number of runs and when the latest started, by name."""
    rows = session.execute(
        select(Repository, func.count(Run.id), func.max(Run.created_at))
        .outerjoin(Run, Run.repository_id == Repository.id)
        .group_by(Repository.id)
        .order_by(Repository.name, Repository.id)
    )
    return [
        RepositorySummary(
            id=repository.id,
            origin=repository.origin,
            name=repository.name,
            created_at=repository.created_at.isoformat(),
            runs=int(runs),
            last_run_at=None if last is None else last.isoformat(),
        )
        for repository, runs, last in rows
    ]


def get_repository(session: Session, *, repository_id: int) -> Repository:
    repository = session.get(Repository, repository_id)
    if repository is None:
        raise RepositoryNotFound(f"There is no repository with id {repository_id}.")
    return repository


@dataclass
class _Sums:
    """What a trend point adds up; the means are divided out at the end."""

    run_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_counts: dict[str, int] = field(default_factory=dict)
    regressed: list[int] = field(default_factory=list)

    def add(
        self,
        run_id: int,
        counts: dict[str, int],
        metrics: dict[str, tuple[float, int]],
        *,
        regressed: bool,
    ) -> None:
        self.run_ids.append(run_id)
        if regressed:
            self.regressed.append(run_id)
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        for name, (total, count) in metrics.items():
            self.metric_sums[name] = self.metric_sums.get(name, 0.0) + total
            self.metric_counts[name] = self.metric_counts.get(name, 0) + count

    def point(self, period: str, intervals: dict[str, Interval]) -> TrendPoint:
        return TrendPoint(
            period=period,
            run_ids=self.run_ids,
            intervals=intervals,
            regressed_run_ids=self.regressed,
            acceptance_rate=rate_of(self.counts["accepted"], self.counts["suggestions"]),
            metrics={
                name: self.metric_sums[name] / self.metric_counts[name]
                for name in TREND_METRICS
                if self.metric_counts.get(name)
            },
            **self.counts,
        )


_COUNTED = (
    "suggestions",
    "accepted",
    "lines_suggested",
    "lines_accepted",
    "chars_suggested",
    "chars_accepted",
)


def _intervals(session: Session, sums: _Sums, *, seed: int) -> dict[str, Interval]:
    """The point's rate interval, and the bootstrap interval of each trend metric's mean over
    the files of its runs (a file seen by two runs of a day is one cluster)."""
    found: dict[str, Interval] = {}
    rate = wilson(sums.counts["accepted"], sums.counts["suggestions"])
    if rate is not None:
        found["acceptance_rate"] = rate
    runs = [scored_points(session, run_id=run_id) for run_id in sums.run_ids]
    table = np.column_stack(
        [
            np.concatenate([r.scores.get(name, np.full(len(r), np.nan)) for r in runs])
            for name in TREND_METRICS
        ]
    )
    paths = np.concatenate([r.path for r in runs])
    for name, interval in zip(
        TREND_METRICS, cluster_bootstrap(table, paths, seed=seed), strict=True
    ):
        if interval is not None:
            found[name] = interval
    return found


def repository_trend(
    session: Session,
    *,
    repository_id: int,
    by: TrendBy = TrendBy.RUN,
    limit: int = 100,
    seed: int = SEED,
) -> list[TrendPoint]:
    """The latest `limit` points of a repository's finished runs, oldest first; `seed` drives
    the bootstrap."""
    get_repository(session, repository_id=repository_id)
    finished = (Run.repository_id == repository_id, Run.status.in_(FINISHED))
    runs = session.execute(
        select(Run.id, Run.created_at, Run.regression, *tallies())
        .outerjoin(Suggestion, Suggestion.run_id == Run.id)
        .where(*finished)
        .group_by(Run.id, Run.created_at, Run.regression)
        .order_by(Run.created_at, Run.id)
    ).all()
    metrics: dict[int, dict[str, tuple[float, int]]] = {}
    for run_id, name, total, count in session.execute(
        select(Run.id, Score.metric_name, func.sum(Score.value), func.count(Score.value))
        .join(Suggestion, Score.suggestion_id == Suggestion.id)
        .join(Run, Suggestion.run_id == Run.id)
        .where(*finished, Score.metric_name.in_(TREND_METRICS))
        .group_by(Run.id, Score.metric_name)
    ):
        metrics.setdefault(run_id, {})[name] = (float(total), int(count))
    points: dict[tuple[str, int | None], _Sums] = {}  # (period, run id or None: a day)
    for run in runs:
        day = run.created_at.date().isoformat()
        key = (run.created_at.isoformat(), run.id) if by is TrendBy.RUN else (day, None)
        counts = {name: int(getattr(run, name)) for name in _COUNTED}
        points.setdefault(key, _Sums()).add(
            run.id, counts, metrics.get(run.id, {}), regressed=bool(run.regression)
        )
    return [
        sums.point(period, _intervals(session, sums, seed=seed))
        for (period, _), sums in list(points.items())[-limit:]
    ]
