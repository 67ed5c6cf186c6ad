"""Run control under races, in the store (no broker, no server): a cancel is never overwritten,
and planning is idempotent per plan key. Races run in threads on PostgreSQL, where workers,
the CLI and the API meet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, incremental, sources
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import control, queries
from aixaudit.store.db import session_factory
from aixaudit.store.tables import Run, RunStatus

ROUNDS = 25
OPTIONS = audit.AuditOptions(profile="l2r", per_file=2)
RULE = AcceptanceRule()
POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

SOURCE = """\
def total(values):
    result = 0
    for value in values:
        if value > 2:
            result += value
    return result
"""


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def checkout(tmp_path: Path) -> sources.Checkout:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text(SOURCE)
    return sources.checkout(str(root), ref=None, cache_dir=tmp_path / "cache")


def plan(sessions: sessionmaker[Session], checkout: sources.Checkout, key: str | None) -> int:
    return incremental.plan_tracked_run(
        sessions, checkout=checkout, options=OPTIONS, rule=RULE, model="m", distributed=True,
        plan_key=key,
    )  # fmt: skip


def race(*steps: Callable[[], Any]) -> list[Any]:
    """Run each step in a thread of its own, all released at once; their results in order."""
    barrier = threading.Barrier(len(steps))
    results: list[Any] = [None] * len(steps)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = steps[index]()
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def status(sessions: sessionmaker[Session], run_id: int) -> RunStatus:
    with sessions() as session:
        return RunStatus(queries.get_run(session, run_id=run_id).status)


def cancel(sessions: sessionmaker[Session], run_id: int) -> RunStatus:
    with sessions.begin() as session:
        return control.cancel_run(session, run_id=run_id)


def runs_planned(sessions: sessionmaker[Session], key: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Run.id)).where(Run.plan_key == key)) or 0


def test_a_cancel_between_dispatch_and_finish_stays(
    sessions: sessionmaker[Session], checkout: sources.Checkout
) -> None:
    run_id = plan(sessions, checkout, None)
    assert audit.start_run(sessions, run_id=run_id)
    assert cancel(sessions, run_id) is RunStatus.CANCELLED
    assert not audit.start_run(sessions, run_id=run_id)  # a dispatch after it enqueues nothing
    assert audit.finish_run(sessions, run_id=run_id) is RunStatus.CANCELLED
    assert audit.finish_run(sessions, run_id=run_id, error="a chunk failed") is RunStatus.CANCELLED
    assert status(sessions, run_id) is RunStatus.CANCELLED


@POSTGRESQL
def test_a_cancel_racing_a_dispatch_and_finish_is_never_overwritten(
    sessions: sessionmaker[Session], checkout: sources.Checkout
) -> None:
    for _ in range(ROUNDS):
        run_id = plan(sessions, checkout, None)

        def dispatch_and_finish(run_id: int = run_id) -> RunStatus:
            audit.start_run(sessions, run_id=run_id)
            return audit.finish_run(sessions, run_id=run_id)

        finished, cancelled = race(
            dispatch_and_finish, lambda run_id=run_id: cancel(sessions, run_id)
        )
        # Whichever came first, both report what is stored: a cancel that said `cancelled`
        # was never overwritten, and one that came too late found the run finished.
        assert finished is cancelled is status(sessions, run_id)


@POSTGRESQL
def test_a_cancel_racing_a_resume_wins_unless_it_came_first(
    sessions: sessionmaker[Session], checkout: sources.Checkout
) -> None:
    outcomes = set()
    for round_ in range(ROUNDS):
        run_id = plan(sessions, checkout, None)
        with sessions.begin() as session:  # cut short: its points still want answers
            queries.set_run_status(session, run_id=run_id, status=RunStatus.PARTIAL)

        def resume(run_id: int = run_id) -> RunStatus:
            with sessions.begin() as session:
                control.reopen_run(session, run_id=run_id)
            audit.start_run(sessions, run_id=run_id)
            return audit.finish_run(sessions, run_id=run_id)

        def late_cancel(run_id: int = run_id, delay_s: float = (round_ % 5) / 1000) -> RunStatus:
            time.sleep(delay_s)  # lands before, during or after the resume's steps
            return cancel(sessions, run_id)

        resumed, cancelled = race(resume, late_cancel)
        outcomes.add(cancelled)
        # A cancel that came in during the resume wins; one that found the run finished
        # (partial before the resume reopened it, or failed after: nothing answered it here)
        # leaves it to the resume.
        expected = RunStatus.CANCELLED if cancelled is RunStatus.CANCELLED else RunStatus.FAILED
        assert resumed is status(sessions, run_id) is expected
    assert RunStatus.CANCELLED in outcomes


def test_planning_twice_under_one_key_makes_one_run(
    sessions: sessionmaker[Session], checkout: sources.Checkout
) -> None:
    first = plan(sessions, checkout, "task-1")
    assert audit.start_run(sessions, run_id=first)
    assert plan(sessions, checkout, "task-1") == first  # delivered again after it succeeded
    assert runs_planned(sessions, "task-1") == 1
    assert status(sessions, first) is RunStatus.RUNNING  # left as the first delivery made it
    assert plan(sessions, checkout, "task-2") != first  # another request is another run
    assert plan(sessions, checkout, None) != plan(sessions, checkout, None)


def test_planning_again_after_a_crash_completes_the_same_run(
    sessions: sessionmaker[Session], checkout: sources.Checkout
) -> None:
    # The first delivery died right after storing the points, before anything else.
    run_id = audit.plan_run(sessions, checkout=checkout, options=OPTIONS, rule=RULE, plan_key="k")
    with sessions() as session:
        assert queries.get_run(session, run_id=run_id).fingerprint is None
    assert plan(sessions, checkout, "k") == run_id
    with sessions() as session:
        run = queries.get_run(session, run_id=run_id)
        assert (run.distributed, run.model, run.status) == (True, "m", "pending")
        assert run.fingerprint is not None
        tallied = control.tally(session, run_id=run_id)
    assert runs_planned(sessions, "k") == 1
    assert tallied.planned == run.points_total > 0


def test_a_crash_while_storing_the_plan_leaves_no_run(
    sessions: sessionmaker[Session], checkout: sources.Checkout, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(queries, "add_points", crash)
        with pytest.raises(SystemExit):
            plan(sessions, checkout, "k")
    assert runs_planned(sessions, "k") == 0  # one transaction: no orphan pending run
    run_id = plan(sessions, checkout, "k")
    with sessions() as session:
        assert control.tally(session, run_id=run_id).planned > 0
    assert runs_planned(sessions, "k") == 1


@POSTGRESQL
def test_two_deliveries_planning_at_once_make_one_run(
    sessions: sessionmaker[Session], checkout: sources.Checkout
) -> None:
    for round_ in range(5):
        key = f"twin-{round_}"
        first, second = race(*[lambda key=key: plan(sessions, checkout, key)] * 2)
        assert first == second
        assert runs_planned(sessions, key) == 1
