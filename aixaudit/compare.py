"""Two runs on the same points: which is better, by how much, and how sure that is.

Points are paired by key (path, byte range, span kind) and file content, where both runs got a
suggestion back; the same commit and seed give the same points, so two models or two options
are compared on the very same completions. Each number is a mean of per-pair differences with
a file-clustered bootstrap interval; acceptance also gets McNemar's exact test, which looks at
the pairs accepted in one run only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from aixaudit.errors import ComparisonError
from aixaudit.scoring import AcceptanceRule
from aixaudit.stats import SEED, Interval, cluster_bootstrap, mcnemar_exact
from aixaudit.store import lineage, queries
from aixaudit.store.scored import ScoredPoints, point_texts, scored_points
from aixaudit.store.tables import Run

# ScoredPoints columns the comparison is broken down by, after the whole ("all").
GROUPINGS = ["language", "kind", "role"]
MIN_PAIRS = 30  # fewer pairs make intervals too wide to decide anything
MAX_TOP = 100  # disagreements a stored comparison keeps: the most a request lists
ACCEPTANCE = "acceptance_rate"


@dataclass(frozen=True)
class Paired:
    """The two runs' shared points, aligned: `a.take(i)` and `b.take(i)` are one point."""

    a: ScoredPoints
    b: ScoredPoints
    left_out_a: int  # points of A not paired (not in B, or no suggestion on either side)
    left_out_b: int

    def __len__(self) -> int:
        return len(self.a)


def pair(a: ScoredPoints, b: ScoredPoints) -> Paired:
    """Points with the same key and file content that both runs answered."""
    where_b = {(key, sha): i for i, (key, sha) in enumerate(zip(b.key, b.sha256, strict=True))}
    in_a, in_b = [], []
    for i, (key, sha) in enumerate(zip(a.key, a.sha256, strict=True)):
        j = where_b.get((key, sha))
        if j is not None and a.answered[i] and b.answered[j]:
            in_a.append(i)
            in_b.append(j)
    index_a, index_b = np.array(in_a, dtype=np.int64), np.array(in_b, dtype=np.int64)
    return Paired(
        a=a.take(index_a),
        b=b.take(index_b),
        left_out_a=len(a) - len(in_a),
        left_out_b=len(b) - len(in_b),
    )


@dataclass(frozen=True)
class MetricComparison:
    """One number on the n pairs that have it: A's mean, B's mean, and B - A with its 95%
    interval (None when the pairs lie in a single file)."""

    metric: str
    n: int
    a: float
    b: float
    difference: float
    interval: Interval | None


def differences(paired: Paired, *, seed: int = SEED) -> list[MetricComparison]:
    """The acceptance rate and every metric both runs have, compared on the pairs."""
    if not len(paired):
        return []
    names = [name for name in paired.a.scores if name in paired.b.scores]
    first = [paired.a.accepted.astype(float), *(paired.a.scores[name] for name in names)]
    second = [paired.b.accepted.astype(float), *(paired.b.scores[name] for name in names)]
    table_a, table_b = np.column_stack(first), np.column_stack(second)
    both = ~np.isnan(table_a) & ~np.isnan(table_b)  # a metric compares where both have it
    table_a[~both] = np.nan
    table_b[~both] = np.nan
    intervals = cluster_bootstrap(table_b - table_a, paired.a.path, seed=seed)
    return [
        MetricComparison(
            metric=name,
            n=int(np.count_nonzero(both[:, column])),
            a=float(np.nanmean(table_a[:, column])),
            b=float(np.nanmean(table_b[:, column])),
            difference=float(np.nanmean(table_b[:, column] - table_a[:, column])),
            interval=interval,
        )
        for column, (name, interval) in enumerate(zip([ACCEPTANCE, *names], intervals, strict=True))
        if both[:, column].any()
    ]


@dataclass(frozen=True)
class GroupComparison:
    """The comparison over one group of pairs: all of them, or one language, span kind or file
    role."""

    grouping: str  # "all" or one of GROUPINGS
    key: str
    pairs: int
    accepted_a_only: int
    accepted_b_only: int
    mcnemar_p: float  # exact two-sided, on the pairs accepted in one run only
    metrics: list[MetricComparison]  # acceptance_rate first, then the metrics by name


@dataclass(frozen=True)
class Disagreement:
    """A pair the runs scored most differently, by the metric of A's acceptance rule."""

    path: str
    start_line: int
    end_line: int
    reference: str
    text_a: str | None
    text_b: str | None
    score_a: float
    score_b: float


@dataclass(frozen=True)
class Comparison:
    run_a: int
    run_b: int
    pairs: int
    left_out_a: int
    left_out_b: int
    disagreement_metric: str
    groups: list[GroupComparison]
    disagreements: list[Disagreement]

    @classmethod
    def from_json(cls, stored: dict[str, Any], *, top: int) -> Comparison:
        """The comparison from `asdict` of it (a stored one), with its first `top`
        disagreements."""
        groups = [
            GroupComparison(
                **{**group, "metrics": [_metric_from_json(found) for found in group["metrics"]]}
            )
            for group in stored["groups"]
        ]
        disagreements = [Disagreement(**found) for found in stored["disagreements"][:top]]
        return cls(**{**stored, "groups": groups, "disagreements": disagreements})


def _metric_from_json(stored: dict[str, Any]) -> MetricComparison:
    interval = stored["interval"]
    return MetricComparison(**{**stored, "interval": interval and Interval(**interval)})


def _group(paired: Paired, grouping: str, key: str, *, seed: int) -> GroupComparison:
    only_a = int(np.sum(paired.a.accepted & ~paired.b.accepted))
    only_b = int(np.sum(paired.b.accepted & ~paired.a.accepted))
    return GroupComparison(
        grouping=grouping,
        key=key,
        pairs=len(paired),
        accepted_a_only=only_a,
        accepted_b_only=only_b,
        mcnemar_p=mcnemar_exact(only_a, only_b),
        metrics=differences(paired, seed=seed),
    )


def _subset(paired: Paired, mask: npt.NDArray[np.bool_]) -> Paired:
    return Paired(a=paired.a.take(mask), b=paired.b.take(mask), left_out_a=0, left_out_b=0)


def compare_runs(
    session: Session, *, run_a: int, run_b: int, top: int = 5, seed: int = SEED
) -> Comparison:
    """Compare run B with run A on their shared points; refuses (ComparisonError) runs of two
    commits, and fewer than MIN_PAIRS pairs. A pair compared when B finished (its baseline,
    `incremental.compare_with_previous`) is read as it was stored, when `seed` is SEED."""
    first, second = queries.get_run(session, run_id=run_a), queries.get_run(session, run_id=run_b)
    if first.commit != second.commit:
        raise ComparisonError(
            f"Runs {run_a} and {run_b} audited different commits ({(first.commit or '-')[:12]} "
            f"and {(second.commit or '-')[:12]}), so they share no points to pair."
        )
    stored = lineage.stored_paired(session, run_a=run_a, run_b=run_b) if seed == SEED else None
    if stored is not None and top <= MAX_TOP:
        return Comparison.from_json(stored, top=top)
    paired = pair(scored_points(session, run_id=run_a), scored_points(session, run_id=run_b))
    return compared(session, first=first, second=second, paired=paired, top=top, seed=seed)


def compared(
    session: Session, *, first: Run, second: Run, paired: Paired, top: int, seed: int = SEED
) -> Comparison:
    """The comparison of run `second` with run `first` on their `paired` points; refuses
    (ComparisonError) fewer than MIN_PAIRS pairs."""
    if len(paired) < MIN_PAIRS:
        raise ComparisonError(
            f"Runs {first.id} and {second.id} share {len(paired)} answered points, fewer than "
            f"the {MIN_PAIRS} a comparison needs."
        )
    groups = [_group(paired, "all", "all", seed=seed)]
    for grouping in GROUPINGS:
        column = getattr(paired.a, grouping)
        for key in sorted(set(column.tolist())):
            groups.append(_group(_subset(paired, column == key), grouping, key, seed=seed))
    metric = AcceptanceRule.from_dict(first.acceptance_rule).metric
    return Comparison(
        run_a=first.id,
        run_b=second.id,
        pairs=len(paired),
        left_out_a=paired.left_out_a,
        left_out_b=paired.left_out_b,
        disagreement_metric=metric,
        groups=groups,
        disagreements=_disagreements(session, paired, metric, top),
    )


def _disagreements(session: Session, paired: Paired, metric: str, top: int) -> list[Disagreement]:
    """The `top` pairs with the largest |B - A| on `metric`, ties in key order."""
    if metric not in paired.a.scores or metric not in paired.b.scores:
        return []
    score_a, score_b = paired.a.scores[metric], paired.b.scores[metric]
    gap = np.nan_to_num(np.abs(score_b - score_a), nan=-1.0)
    order = np.lexsort((paired.a.key, -gap))[:top]
    ids_a, ids_b = paired.a.point_id[order].tolist(), paired.b.point_id[order].tolist()
    texts = point_texts(session, ids_a + ids_b)
    return [
        Disagreement(
            path=texts[i].path,
            start_line=texts[i].start_line,
            end_line=texts[i].end_line,
            reference=texts[i].original,
            text_a=texts[i].text,
            text_b=texts[j].text,
            score_a=float(score_a[position]),
            score_b=float(score_b[position]),
        )
        for position, i, j in zip(order.tolist(), ids_a, ids_b, strict=True)
    ]
