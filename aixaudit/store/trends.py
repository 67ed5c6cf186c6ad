"""Repositories and how their finished runs moved over time: the series a dashboard charts.

A trend point adds up the suggestions of one finished (done or partial) run, or of every
finished run started on one UTC day. Rates and means are recomputed from the sums, never
averaged from per-run rates, so a day of one small and one large run weighs each suggestion
once, as Copilot's and Tabby's daily acceptance charts do. Each carries its intervals as a run
report does (Wilson for the rate, a bootstrap over files for each mean; a day's runs resample
their files together) and the runs flagged as regressions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aixaudit.errors import RepositoryNotFound
from aixaudit.stats import SEED, Interval, cluster_bootstrap, wilson
from aixaudit.store.lineage import FINISHED
from aixaudit.store.queries import fresh_rollups
from aixaudit.store.reports import rate_of, tallies
from aixaudit.store.scored import ScoredPoints, scored_points
from aixaudit.store.tables import Repository, Run, RunRollup, Score, Suggestion

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


RunSums = dict[str, Any]  # {"counts": {_COUNTED name: n}, "metrics": {name: [sum, count]}}


def run_sums(session: Session, *, run_ids: Sequence[int]) -> dict[int, RunSums]:
    """What each run adds to a trend point, by run id, added up from its rows; metric sums are
    exact (fsum), so the same in any row order and the same from a rollup."""
    found = _counts(session, run_ids=run_ids)
    values: dict[int, dict[str, list[float]]] = {}
    for run_id, name, value in session.execute(
        select(Suggestion.run_id, Score.metric_name, Score.value)
        .join(Score, Score.suggestion_id == Suggestion.id)
        .where(Suggestion.run_id.in_(run_ids), Score.metric_name.in_(TREND_METRICS))
    ):
        values.setdefault(run_id, {}).setdefault(name, []).append(value)
    for run_id, by_name in values.items():
        found[run_id]["metrics"] = {
            name: [math.fsum(got), len(got)] for name, got in by_name.items()
        }
    return found


def _counts(session: Session, *, run_ids: Sequence[int]) -> dict[int, RunSums]:
    """The runs' sums with their counts filled in and no metric yet, by run id."""
    found: dict[int, RunSums] = {
        run_id: {"counts": dict.fromkeys(_COUNTED, 0), "metrics": {}} for run_id in run_ids
    }
    if not found:
        return found
    for row in session.execute(
        select(Suggestion.run_id, *tallies())
        .where(Suggestion.run_id.in_(run_ids))
        .group_by(Suggestion.run_id)
    ):
        found[row.run_id]["counts"] = {name: int(getattr(row, name)) for name in _COUNTED}
    return found


def intervals(
    runs: Sequence[ScoredPoints], *, counts: dict[str, int], seed: int = SEED
) -> dict[str, Interval]:
    """A trend point's rate interval, and the bootstrap interval of each trend metric's mean
    over the files of its runs (a file seen by two runs of a day is one cluster)."""
    found: dict[str, Interval] = {}
    rate = wilson(counts["accepted"], counts["suggestions"])
    if rate is not None:
        found["acceptance_rate"] = rate
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


def rollup(session: Session, *, run_id: int, points: ScoredPoints) -> dict[str, Any]:
    """A finished run's trend point parts for its rollup: sums (the metrics' from `points`,
    the run's scores: no second read of them), and intervals with SEED."""
    [sums] = _counts(session, run_ids=[run_id]).values()
    exact = points.metric_sums()
    sums["metrics"] = {name: list(exact[name]) for name in TREND_METRICS if name in exact}
    found = intervals([points], counts=sums["counts"])
    return sums | {"intervals": {name: asdict(interval) for name, interval in found.items()}}


def repository_trend(
    session: Session,
    *,
    repository_id: int,
    by: TrendBy = TrendBy.RUN,
    limit: int = 100,
    seed: int = SEED,
) -> list[TrendPoint]:
    """The latest `limit` points of a repository's finished runs, oldest first; `seed` drives
    the bootstrap. Runs with a rollup are read from it; a day of several runs resamples their
    files together, so its intervals are computed from their rows."""
    get_repository(session, repository_id=repository_id)
    runs = session.execute(
        select(Run.id, Run.created_at, Run.regression)
        .where(Run.repository_id == repository_id, Run.status.in_(FINISHED))
        .order_by(Run.created_at, Run.id)
    ).all()
    periods: dict[tuple[str, int | None], list[Any]] = {}  # (period, run id or None: a day)
    for run in runs:
        day = run.created_at.date().isoformat()
        key = (run.created_at.isoformat(), run.id) if by is TrendBy.RUN else (day, None)
        periods.setdefault(key, []).append(run)
    shown = list(periods.items())[-limit:]
    run_ids = [run.id for _, period_runs in shown for run in period_runs]
    stored = (
        {
            run_id: row.trend
            for run_id, row in fresh_rollups(
                session, run_ids=run_ids, columns=[RunRollup.trend]
            ).items()
        }
        if seed == SEED
        else {}
    )
    found = stored | run_sums(session, run_ids=[i for i in run_ids if i not in stored])
    points = []
    for (period, _), period_runs in shown:
        sums = _Sums()
        for run in period_runs:
            metrics = {
                name: (total, count) for name, (total, count) in found[run.id]["metrics"].items()
            }
            sums.add(run.id, found[run.id]["counts"], metrics, regressed=bool(run.regression))
        only = period_runs[0].id if len(period_runs) == 1 else None
        if only in stored:
            found_intervals = stored[only]["intervals"].items()
            known = {name: Interval(**value) for name, value in found_intervals}
        else:
            scored = [scored_points(session, run_id=run_id) for run_id in sums.run_ids]
            known = intervals(scored, counts=sums.counts, seed=seed)
        points.append(sums.point(period, known))
    return points
