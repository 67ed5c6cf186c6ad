"""What a run takes from earlier runs of its repository: results of unchanged files, and the
paired comparison of its headline metrics that flags a regression.

Reuse is safe only when nothing that shapes an answer changed, so a run carries a fingerprint of
the options, the acceptance rule, every metric's version, aixaudit's version and the model's
identity; an unchanged file (same path and content hash) takes over the results of a previous
run with the same fingerprint instead of asking the model again. Points are still planned fresh
(deterministic from seed and content), so a changed file, or a point new to the run cap, is
asked as usual.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from . import __version__, compare
from .audit import AuditOptions, plan_run
from .scoring import METRICS, AcceptanceRule
from .sources import Checkout
from .stats import SEED, Interval
from .store import lineage, queries
from .store.scored import scored_points
from .store.tables import Run

# Headline numbers compared between runs, with their direction (True: higher is better).
HEADLINE = {
    "acceptance_rate": True,
    **{
        name: METRICS[name].higher_is_better
        for name in ("exact_match", "es_rapidfuzz", "identifier_f1", "parses_after_insert")
    },
}

_WRITE_BATCH = 500  # results per add_results call: bounded IN lists on both databases


def fingerprint(*, options: AuditOptions, rule: AcceptanceRule, model: str) -> str:
    """A hash of everything that decides a point's stored result, but the file itself."""
    identity = {
        "options": options.with_budgets().model_dump(mode="json"),  # defaults as resolved
        "rule": rule.to_dict(),
        "metrics": {name: metric.version for name, metric in sorted(METRICS.items())},
        "aixaudit": __version__,
        "model": model,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def plan_tracked_run(
    session_factory: sessionmaker[Session],
    *,
    checkout: Checkout,
    options: AuditOptions,
    rule: AcceptanceRule,
    model: str | None,
    reuse: bool = False,
    schedule_id: int | None = None,
    distributed: bool = False,
    plan_key: str | None = None,
) -> int:
    """`audit.plan_run`, then `track_run`. Returns the run id.

    Idempotent per `plan_key`: a second call (a task delivered again, after it succeeded or
    crashed half-way) plans nothing and completes what the first left undone."""
    run_id = planned_once(
        session_factory,
        plan_key,
        lambda: plan_run(
            session_factory, checkout=checkout, options=options, rule=rule, plan_key=plan_key
        ),
    )
    track_run(
        session_factory,
        run_id=run_id,
        model=model,
        reuse=reuse,
        schedule_id=schedule_id,
        distributed=distributed,
    )
    return run_id


def planned_once(
    session_factory: sessionmaker[Session], plan_key: str | None, plan: Callable[[], int]
) -> int:
    """The run planned under `plan_key`, planned by `plan` (which stores it under that key)
    unless an earlier or a twin call already did."""
    run_id = _planned(session_factory, plan_key)
    if run_id is not None:
        return run_id
    try:
        return plan()
    except IntegrityError:
        # A twin delivery planned it at the same time; its run is the one.
        run_id = _planned(session_factory, plan_key)
        if run_id is None:
            raise
        return run_id


def track_run(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    model: str | None,
    reuse: bool = False,
    schedule_id: int | None = None,
    distributed: bool = False,
) -> None:
    """What later runs need of a planned run: the model and the fingerprint of its stored
    options and rule (None without a known model: such a run is never reused nor compared),
    the schedule and who answers it; with `reuse`, the results of unchanged files are taken
    over at once. Safe to repeat."""
    with session_factory.begin() as session:
        run = queries.get_run(session, run_id=run_id)
        options = AuditOptions.model_validate(run.config)
        rule = AcceptanceRule.from_dict(run.acceptance_rule)
        run.model = model
        run.fingerprint = fingerprint(options=options, rule=rule, model=model) if model else None
        run.schedule_id = schedule_id
        run.distributed = distributed
    if reuse:
        reuse_unchanged(session_factory, run_id=run_id)


def _planned(session_factory: sessionmaker[Session], plan_key: str | None) -> int | None:
    if plan_key is None:
        return None
    with session_factory() as session:
        return queries.planned_run_id(session, plan_key=plan_key)


def reuse_unchanged(session_factory: sessionmaker[Session], *, run_id: int) -> int:
    """Copy the results of unchanged files from the latest finished run with the same
    fingerprint, marked reused; returns how many points got one."""
    with session_factory.begin() as session:
        run = queries.get_run(session, run_id=run_id)
        if run.fingerprint is None:
            return 0
        source = lineage.previous_run(session, run_id=run_id, fingerprint=run.fingerprint)
        if source is None:
            return 0
        results = lineage.reusable_results(session, run_id=run_id, source_run_id=source.id)
        for result in results:  # tests_passed (aixaudit.execution) held for that run's tests only
            result["scores"] = {k: v for k, v in result["scores"].items() if k in METRICS}
        for start in range(0, len(results), _WRITE_BATCH):
            batch = results[start : start + _WRITE_BATCH]
            queries.add_results(session, results=batch, metrics=METRICS)
        return len(results)


def compare_with_previous(
    session_factory: sessionmaker[Session], *, run_id: int, threshold: float, seed: int = SEED
) -> bool | None:
    """Compare the run with the previous finished run of the same repository and fingerprint
    on the points both answered, and store each headline number's paired change with its
    interval. A change is a regression when its whole 95% interval lies beyond `threshold`
    (absolute, on the metric's scale) in the worse direction: a significant drop, not noise.
    Returns the flag (None: no such run, or no shared point)."""
    with session_factory.begin() as session:
        run = queries.get_run(session, run_id=run_id)
        baseline = (
            lineage.previous_run(session, run_id=run_id, fingerprint=run.fingerprint)
            if run.fingerprint is not None
            else None
        )
        if baseline is None:
            return lineage.save_comparison(
                session, run_id=run_id, baseline_run_id=None, deltas=[], threshold=threshold
            )
        paired = compare.pair(
            scored_points(session, run_id=baseline.id), scored_points(session, run_id=run_id)
        )
        deltas = [
            {
                "metric": found.metric,
                "baseline": found.a,
                "value": found.b,
                "delta": found.difference,
                "delta_low": None if found.interval is None else found.interval.low,
                "delta_high": None if found.interval is None else found.interval.high,
                "pairs": found.n,
                "regressed": _regressed(found.interval, HEADLINE[found.metric], threshold),
            }
            for found in _differences(session, baseline=baseline, run=run, paired=paired, seed=seed)
            if found.metric in HEADLINE
        ]
        return lineage.save_comparison(
            session, run_id=run_id, baseline_run_id=baseline.id, deltas=deltas, threshold=threshold
        )


def _differences(
    session: Session, *, baseline: Run, run: Run, paired: compare.Paired, seed: int
) -> list[compare.MetricComparison]:
    """The paired differences over all pairs. For a baseline of the same commit, the whole
    comparison is computed and kept for the dashboard (its "all" group is these differences)."""
    if baseline.commit != run.commit or len(paired) < compare.MIN_PAIRS or seed != SEED:
        return compare.differences(paired, seed=seed)
    found = compare.compared(
        session, first=baseline, second=run, paired=paired, top=compare.MAX_TOP, seed=seed
    )
    lineage.save_paired(session, run_a=baseline.id, run_b=run.id, comparison=asdict(found))
    return found.groups[0].metrics


def _regressed(interval: Interval | None, higher_is_better: bool, threshold: float) -> bool:
    """The whole interval of the change is worse than `threshold` in the metric's direction
    (no interval, as on a single file: nothing is significant)."""
    if interval is None:
        return False
    return interval.high < -threshold if higher_is_better else interval.low > threshold
