"""An ablation of repository context: the same points asked with each strategy, one run per
strategy, the runs linked as a group (`runs.group_id`, the first run's id).

The points are planned once; every other run of the group gets copies of that run's files and
points, so the runs differ in nothing but the strategy, and `aixaudit compare` pairs them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from . import sources
from .audit import AuditOptions, plan_run
from .context import ContextStrategy
from .scoring import AcceptanceRule
from .store import context as stored


def plan_group(
    session_factory: sessionmaker[Session],
    *,
    checkout: sources.Checkout,
    options: AuditOptions,
    rule: AcceptanceRule,
    strategies: Sequence[ContextStrategy],
) -> list[int]:
    """One run per strategy on the same points, in the order given; returns their ids."""
    first, *others = strategies
    with_first = options.model_copy(update={"context": first})
    run_id = plan_run(session_factory, checkout=checkout, options=with_first, rule=rule)
    with session_factory.begin() as session:
        ids = [run_id] + [
            stored.copy_run(
                session,
                run_id=run_id,
                config=options.model_copy(update={"context": strategy}).model_dump(),
            )
            for strategy in others
        ]
        stored.set_group(session, run_ids=ids, group_id=run_id)
    return ids
