"""A run's final status, from what is stored: the status matrix of `audit.finish_run` and
`audit.start_run` (a cancel is never overwritten), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, sources
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.store import control, queries
from aixaudit.store.db import session_factory
from aixaudit.store.rows import ResultRow
from aixaudit.store.tables import Run, RunStatus

POINTS = 3
OPTIONS = audit.AuditOptions(profile="l2r", per_file=POINTS)
SOURCE = """\
import math


def total(values):
    result = 0
    for value in values:
        if value > 2:
            result += math.floor(value)
    return result
"""


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def planned(sessions: sessionmaker[Session], tmp_path: Path, *, empty: bool = False) -> int:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("" if empty else SOURCE)
    checkout = sources.checkout(str(root), ref=None, cache_dir=tmp_path / "cache")
    return audit.plan_run(sessions, checkout=checkout, options=OPTIONS, rule=AcceptanceRule())


def store(sessions: sessionmaker[Session], run_id: int, *, good: int, failed: int) -> None:
    """`good` answered points and `failed` request errors; the rest stay pending."""
    with sessions.begin() as session:
        pending = queries.pending_points(session, run_id=run_id)
        assert len(pending) >= good + failed
        rows: list[ResultRow] = [
            {"point_id": p.id, "run_id": run_id, "raw_text": "x", "text": "x", "accepted": True,
             "scores": dict.fromkeys(METRICS, 1.0)}
            for p in pending[:good]
        ] + [
            {"point_id": p.id, "run_id": run_id, "raw_text": None, "text": None, "scores": {},
             "error": "the server went away"}
            for p in pending[good : good + failed]
        ]  # fmt: skip
        queries.add_results(session, results=rows, metrics=METRICS)


def stored(sessions: sessionmaker[Session], run_id: int) -> Run:
    with sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


@pytest.mark.parametrize(
    ("good", "failed", "error", "expected", "stored_error"),
    [
        (POINTS, 0, None, RunStatus.DONE, None),
        (POINTS - 1, 1, None, RunStatus.PARTIAL, f"1 of {POINTS} points have no suggestion"),
        (POINTS - 1, 0, None, RunStatus.PARTIAL, None),  # one point never answered
        (POINTS, 0, "server gone", RunStatus.PARTIAL, "server gone"),
        (1, 0, "server gone", RunStatus.PARTIAL, "server gone"),
        (0, POINTS, None, RunStatus.FAILED, f"{POINTS} of {POINTS} points have no suggestion"),
        (0, 0, None, RunStatus.FAILED, None),
        (0, 0, "server gone", RunStatus.FAILED, "server gone"),
    ],
    ids=[
        "all",
        "one-failed",
        "one-pending",
        "error-after-all",
        "error-midway",
        "all-failed",
        "none",
        "error-before-any",
    ],
)
def test_the_final_status_follows_what_is_stored(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    good: int,
    failed: int,
    error: str | None,
    expected: RunStatus,
    stored_error: str | None,
) -> None:
    run_id = planned(sessions, tmp_path)
    assert stored(sessions, run_id).points_total == POINTS
    assert audit.start_run(sessions, run_id=run_id)
    store(sessions, run_id, good=good, failed=failed)
    assert audit.finish_run(sessions, run_id=run_id, error=error) is expected
    run = stored(sessions, run_id)
    assert run.status == expected
    if stored_error is None:
        assert run.error is None
    else:
        assert run.error is not None and run.error.startswith(stored_error)


def test_a_run_with_nothing_to_answer_is_done_unless_it_failed(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run_id = planned(sessions, tmp_path, empty=True)
    assert stored(sessions, run_id).points_total == 0
    assert audit.finish_run(sessions, run_id=run_id) is RunStatus.DONE


@pytest.mark.parametrize("final", [RunStatus.DONE, RunStatus.CANCELLED])
def test_a_final_status_is_never_overwritten(
    sessions: sessionmaker[Session], tmp_path: Path, final: RunStatus
) -> None:
    """Finishing or starting again (a redelivered task, a late worker) leaves a finished or
    cancelled run as it is, and says what it is."""
    run_id = planned(sessions, tmp_path)
    if final is RunStatus.CANCELLED:
        with sessions.begin() as session:
            control.cancel_run(session, run_id=run_id)
    else:
        store(sessions, run_id, good=POINTS, failed=0)
        assert audit.finish_run(sessions, run_id=run_id) is RunStatus.DONE
    assert not audit.start_run(sessions, run_id=run_id)
    assert audit.finish_run(sessions, run_id=run_id, error="late failure") is final
    run = stored(sessions, run_id)
    assert run.status == final and run.error != "late failure"
