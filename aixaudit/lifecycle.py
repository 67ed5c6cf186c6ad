"""One lifecycle for every run, whoever starts it: the CLI (here or on the workers), a worker's
planning task (for the API and the schedules) or an ablation.

Plan, always tracked (fingerprint, plan key, reuse of unchanged files); execute (here, or in
chunks on the workers: both answer with `audit.complete_points`); finish, then compare with
the previous run of the same repository and fingerprint. Entry points differ only in where
the points are answered, so every run can be reused and compared the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from . import ablation, audit, incremental
from .context import ContextStrategy
from .inference import TritonCompleter
from .scoring import AcceptanceRule
from .sources import Checkout
from .store.tables import RunStatus
from .tokens import TokenCounter

COMPARED = (RunStatus.DONE, RunStatus.PARTIAL)  # a run with results to compare


def plan(
    session_factory: sessionmaker[Session],
    *,
    checkout: Checkout,
    options: audit.AuditOptions,
    rule: AcceptanceRule,
    model: str | None,
    strategies: Sequence[ContextStrategy] = (),
    reuse: bool = False,
    schedule_id: int | None = None,
    distributed: bool = False,
    plan_key: str | None = None,
) -> list[int]:
    """Plan the run (`options.context`), or with several `strategies` one run per strategy on
    the same points, linked as a group; returns the run ids. Idempotent per `plan_key`."""
    if len(strategies) > 1:
        return ablation.plan_group(
            session_factory, checkout=checkout, options=options, rule=rule,
            strategies=strategies, model=model, reuse=reuse, schedule_id=schedule_id,
            distributed=distributed, plan_key=plan_key,
        )  # fmt: skip
    if strategies:
        options = options.model_copy(update={"context": strategies[0]})
    run_id = incremental.plan_tracked_run(
        session_factory, checkout=checkout, options=options, rule=rule, model=model,
        reuse=reuse, schedule_id=schedule_id, distributed=distributed, plan_key=plan_key,
    )  # fmt: skip
    return [run_id]


def execute(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    completer: TritonCompleter,
    counter: TokenCounter,
    threshold: float,
    progress: audit.Progress | None = None,
) -> RunStatus:
    """Answer the run's points in this process, then `finish` it (with the reason, when the
    server fails it: the error is raised again)."""
    return audit.execute_run(
        session_factory,
        run_id=run_id,
        completer=completer,
        counter=counter,
        progress=progress,
        finish=partial(finish, threshold=threshold),
    )


def finish(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    threshold: float,
    error: str | None = None,
) -> RunStatus:
    """`audit.finish_run`, then, for a run with results, the comparison with the previous run
    of the same fingerprint (`incremental.compare_with_previous`: a regression is a paired drop
    beyond `threshold`). Safe to repeat."""
    status = audit.finish_run(session_factory, run_id=run_id, error=error)
    if status in COMPARED:
        incremental.compare_with_previous(session_factory, run_id=run_id, threshold=threshold)
    return status
