"""Nightly schedules and run control in the store, and their CLI commands (no broker needed)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import cli, config
from aixaudit.errors import ConfigError, RunNotFound
from aixaudit.execution.verify import ExecutionOptions
from aixaudit.store import control, queries, schedules
from aixaudit.store.db import session_factory
from aixaudit.store.tables import Run, RunStatus, Schedule

NIGHT = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 01:00 UTC


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def add(session: Session, origin: str, at: str, now: datetime = NIGHT) -> int:
    schedule = schedules.add_schedule(
        session, origin=origin, ref="main", at=at, options={}, acceptance_rule={}, now=now
    )
    return schedule.id


@pytest.mark.parametrize(
    ("given", "stored"), [("02:00", "02:00"), ("2:05", "02:05"), (" 23:59 ", "23:59")]
)
def test_times_are_zero_padded(given: str, stored: str) -> None:
    assert schedules.check_time(given) == stored


@pytest.mark.parametrize("bad", ["24:00", "12:60", "noon", "1200", "12:00:00", ""])
def test_bad_times_are_refused_in_one_sentence(bad: str) -> None:
    with pytest.raises(ConfigError, match="HH:MM"):
        schedules.check_time(bad)


def test_a_schedule_starts_once_a_night_from_its_time_on(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        passed = add(session, "https://example.test/a.git", "00:30")  # 00:30 is past at 01:00
        later = add(session, "https://example.test/b.git", "02:00")
        assert session.get(Schedule, passed).last_started_on == NIGHT.date()
        assert session.get(Schedule, later).last_started_on is None
    with sessions.begin() as session:
        assert schedules.claim_due(session, now=NIGHT) == []
        assert schedules.claim_due(session, now=NIGHT.replace(hour=2)) == [later]
        assert schedules.claim_due(session, now=NIGHT.replace(hour=23)) == []  # once a day
    next_night = NIGHT.replace(day=2, hour=3)  # beat was down at 00:30 and 02:00
    with sessions.begin() as session:
        assert schedules.claim_due(session, now=next_night) == [passed, later]
        assert schedules.claim_due(session, now=next_night) == []
        assert session.get(Schedule, later).last_started_on == date(2026, 3, 2)


def test_a_schedule_keeps_its_execution_request(sessions: sessionmaker[Session]) -> None:
    asked = {"max_points": 5, "max_test_s": 60.0, "seed": 1, "wall_s": 30.0}
    with sessions.begin() as session:
        plain = add(session, "https://example.test/a.git", "02:00")
        executed = schedules.add_schedule(
            session, origin="https://example.test/b.git", ref=None, at="02:00", options={},
            acceptance_rule={}, now=NIGHT, execution=asked,
        ).id  # fmt: skip
    with sessions() as session:
        assert session.get(Schedule, plain).execution is None
        assert session.get(Schedule, executed).execution == asked


def test_duplicates_unknown_ids_and_removal(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first = add(session, "https://example.test/a.git", "02:00")
        with pytest.raises(ConfigError, match=f"already schedule {first}"):
            add(session, "https://example.test/a.git", "03:00")
        schedules.remove_schedule(session, schedule_id=first)
        assert schedules.list_schedules(session) == []
        with pytest.raises(ConfigError, match="no schedule with id 999"):
            schedules.remove_schedule(session, schedule_id=999)


def new_run(session: Session, status: RunStatus) -> int:
    repository = queries.get_or_create_repository(session, origin="/repo", name="repo")
    run = queries.create_run(
        session, repository_id=repository.id, ref=None, commit=None, profile="l2r",
        config={}, acceptance_rule={},
    )  # fmt: skip
    queries.set_run_status(session, run_id=run.id, status=status)
    return run.id


def test_cancel_is_safe_twice_and_leaves_finished_runs_alone(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        running = new_run(session, RunStatus.RUNNING)
        done = new_run(session, RunStatus.DONE)
    for _ in range(2):
        with sessions.begin() as session:
            assert control.cancel_run(session, run_id=running) is RunStatus.CANCELLED
            assert control.cancel_run(session, run_id=done) is RunStatus.DONE
            assert control.is_cancelled(session, run_id=running)
    with sessions() as session:
        assert session.get(Run, running).finished_at is not None
        with pytest.raises(RunNotFound):
            control.cancel_run(session, run_id=12345)


def test_reopen_makes_a_cancelled_run_run_again(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        run_id = new_run(session, RunStatus.CANCELLED)  # no points: nothing to answer
        stuck = new_run(session, RunStatus.RUNNING)  # its final task was lost
    with sessions.begin() as session:
        assert control.reopen_run(session, run_id=run_id) == 0
        assert control.reopen_run(session, run_id=stuck) == 0
    with sessions() as session:
        assert session.get(Run, run_id).status == RunStatus.CANCELLED
        assert session.get(Run, stuck).status == RunStatus.RUNNING


def test_schedule_commands(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config.get_settings(), "database_url", db_url)
    monkeypatch.setattr(config.get_settings(), "allowed_roots", [tmp_path])  # workers read it
    runner = CliRunner()
    repo = tmp_path / "repo"
    repo.mkdir()

    added = runner.invoke(
        cli.main, ["schedule", "add", str(repo), "--at", "3:15", "--max-points", "7"]
    )
    assert added.exit_code == 0, added.output
    assert "every night at 03:15 UTC" in added.output
    again = runner.invoke(cli.main, ["schedule", "add", str(repo)])
    assert again.exit_code == 1 and "already schedule" in again.output

    [listed] = json.loads(runner.invoke(cli.main, ["schedule", "list", "--json"]).output)
    assert (listed["origin"], listed["ref"], listed["at"]) == (str(repo.resolve()), None, "03:15")
    assert listed["options"]["max_points"] == 7
    assert listed["acceptance_rule"]["metric"] == "es_rapidfuzz"

    bad = runner.invoke(cli.main, ["schedule", "add", str(repo), "--ref", "dev", "--at", "25:00"])
    assert bad.exit_code == 1 and "HH:MM" in bad.output
    assert listed["execution"] is None

    # --execute: the same audit options (so the same fingerprint), plus the execution's.
    executed = runner.invoke(
        cli.main,
        ["schedule", "add", str(repo), "--ref", "dev", "--max-points", "7", "--execute",
         "--execute-max-points", "5", "--execute-wall-s", "30"],
    )  # fmt: skip
    assert executed.exit_code == 0, executed.output
    _, with_execution = json.loads(runner.invoke(cli.main, ["schedule", "list", "--json"]).output)
    assert with_execution["options"] == listed["options"]
    stored = ExecutionOptions.model_validate(with_execution["execution"])
    assert stored == ExecutionOptions(max_points=5, wall_s=30)
    assert "5 points" in runner.invoke(cli.main, ["schedule", "list"]).output
    runner.invoke(cli.main, ["schedule", "remove", str(with_execution["id"])])

    removed = runner.invoke(cli.main, ["schedule", "remove", str(listed["id"])])
    assert removed.exit_code == 0
    assert json.loads(runner.invoke(cli.main, ["schedule", "list", "--json"]).output) == []
    assert runner.invoke(cli.main, ["schedule", "remove", str(listed["id"])]).exit_code == 1


def test_cancel_and_runs_commands(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config.get_settings(), "database_url", db_url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        run_id = new_run(session, RunStatus.RUNNING)
        session.execute(update(Run).where(Run.id == run_id).values(regression=True))
    runner = CliRunner()
    for _ in range(2):
        cancelled = runner.invoke(cli.main, ["cancel", str(run_id)])
        assert cancelled.exit_code == 0 and f"run {run_id} cancelled" in cancelled.output
    with sessions() as session:
        assert session.scalar(select(Run.status).where(Run.id == run_id)) == "cancelled"
    [summary] = json.loads(runner.invoke(cli.main, ["runs", "--json"]).output)
    assert (summary["status"], summary["regression"], summary["reused"]) == ("cancelled", True, 0)
    assert "yes" in runner.invoke(cli.main, ["runs"]).output
    assert runner.invoke(cli.main, ["cancel", "999"]).exit_code == 1
