"""An ablation of repository context: the same points asked with each strategy, one run per
strategy, the runs linked as a group (`runs.group_id`, the first run's id).

The points are planned once; every other run of the group gets copies of that run's files and
points, so the runs differ in nothing but the strategy, and `aixaudit compare` pairs them. Each
run is tracked as any run is (its own fingerprint, so it is compared with the previous run of
the same strategy).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from . import incremental, sources
from .audit import AuditOptions
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
    model: str | None,
    reuse: bool = False,
    schedule_id: int | None = None,
    distributed: bool = False,
    plan_key: str | None = None,
) -> list[int]:
    """One tracked run per strategy on the same points, in the order given; returns their ids.

    Idempotent per `plan_key` as `incremental.plan_tracked_run` is: the first run is stored under
    it, each other under `plan_key:strategy`."""
    first, *others = strategies
    run_id = incremental.plan_tracked_run(
        session_factory,
        checkout=checkout,
        options=options.model_copy(update={"context": first}),
        rule=rule,
        model=model,
        reuse=reuse,
        schedule_id=schedule_id,
        distributed=distributed,
        plan_key=plan_key,
    )
    ids = [run_id]
    for strategy in others:
        key = None if plan_key is None else f"{plan_key}:{strategy.value}"
        config = options.with_budgets().model_copy(update={"context": strategy}).model_dump()
        copy = partial(_copy_run, session_factory, run_id=run_id, config=config, plan_key=key)
        ids.append(incremental.planned_once(session_factory, key, copy))
        incremental.track_run(
            session_factory,
            run_id=ids[-1],
            model=model,
            reuse=reuse,
            schedule_id=schedule_id,
            distributed=distributed,
        )
    with session_factory.begin() as session:
        stored.set_group(session, run_ids=ids, group_id=run_id)
    return ids


def _copy_run(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    config: dict[str, Any],
    plan_key: str | None,
) -> int:
    with session_factory.begin() as session:
        return stored.copy_run(session, run_id=run_id, config=config, plan_key=plan_key)
