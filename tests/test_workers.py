"""Distributed audits with real processes: Celery workers and beat (`celery -A workers ...`) on
the real Redis, PostgreSQL and a real tritonserver serving the fixed-cost model (deterministic
answers, a known cost per batch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import tritonclient.http as httpclient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from aixaudit.model_repo import render_fixed_cost
from aixaudit.scoring import METRICS
from aixaudit.server import MODEL_DIR_ENV, LocalTriton
from aixaudit.store import control, history
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import Point, Run, Schedule, Score, Suggestion
from workers.celery import CONTROL_QUEUE, POINTS_QUEUE
from workers.local import LocalCelery

pytestmark = [
    pytest.mark.triton,
    pytest.mark.skipif(
        os.environ.get("AIXAUDIT_SKIP_PG") == "1", reason="workers are tested on PostgreSQL"
    ),
]

AIXAUDIT = Path(sys.executable).with_name("aixaudit")
REDIS_URL = "redis://127.0.0.1:6379/0"
BATCH_MS = 40  # the fixed cost of one batch
SMALL = ["--profile", "l2r", "--per-file", "2", "--max-new-tokens", "4"]

MODULE = """\
def total_{i}(values):
    result = 0
    for value in values:
        if value > {i}:
            result += value
    return result


def label_{i}(name, count):
    text = "{{}}: {{}}".format(name, count)
    return text.upper()
"""


@pytest.fixture(scope="session")
def fixed_cost_server(
    cpu_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    repo = render_fixed_cost(tmp_path_factory.mktemp("fixed-cost") / "repo", delay_ms=BATCH_MS)
    server = LocalTriton(log_dir=tmp_path_factory.mktemp("fixed-cost-logs"))
    with server.start(repo, env={MODEL_DIR_ENV: str(cpu_model_dir)}):
        yield server


@pytest.fixture(scope="session")
def jobs_db(pg_database: str) -> str:
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def sessions(jobs_db: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(jobs_db)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def prefix() -> Iterator[str]:
    """Redis keys of this test only; deleted afterwards (lost tasks included)."""
    name = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def env(
    jobs_db: str, fixed_cost_server: LocalTriton, prefix: str, tmp_path: Path
) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")}
    return clean | {
        "AIXAUDIT_DATA_DIR": str(tmp_path / "data"),
        "AIXAUDIT_DATABASE_URL": jobs_db,
        "AIXAUDIT_BROKER_URL": REDIS_URL,
        "AIXAUDIT_RESULT_BACKEND": REDIS_URL,
        "AIXAUDIT_CELERY_KEY_PREFIX": prefix,
        "AIXAUDIT_TRITON_URL": f"grpc://{fixed_cost_server.grpc_url}",
        "AIXAUDIT_CHUNK_SIZE": "2",
        "AIXAUDIT_MAX_IN_FLIGHT": "2",
        "AIXAUDIT_SCHEDULE_CHECK_S": "0.5",
        "AIXAUDIT_ALLOWED_ROOTS": str(tmp_path),  # workers audit the local repositories there
    }


@pytest.fixture
def celery(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., LocalCelery]]:
    """Starts workers (or beat, with kind="beat"); all are stopped after the test."""
    started: list[LocalCelery] = []

    def start(kind: str = "worker", **options: Any) -> LocalCelery:
        log_dir = tmp_path / "celery"
        options.setdefault("env", env)
        if kind == "beat":
            process = LocalCelery.beat(log_dir=log_dir, **options)
        else:
            options.setdefault("name", f"w{len(started)}")
            process = LocalCelery.worker(log_dir=log_dir, **options)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def make_repo(root: Path, files: int) -> Path:
    root.mkdir()
    for i in range(files):
        (root / f"mod{i:02d}.py").write_text(MODULE.format(i=i))
    return root


def aixaudit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(AIXAUDIT), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def progress(sessions: sessionmaker[Session], run_id: int) -> control.RunProgress:
    with sessions() as session:
        return control.run_progress(session, run_id=run_id)


def wait_for(condition: Callable[[], Any], *, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def results(sessions: sessionmaker[Session], run_id: int) -> dict[str, tuple[Any, ...]]:
    """point key -> (suggestion text, accepted, {metric: value})."""
    with sessions() as session:
        rows = session.execute(
            select(Point.key, Suggestion.id, Suggestion.text, Suggestion.accepted)
            .join(Suggestion, Suggestion.point_id == Point.id)
            .where(Point.run_id == run_id)
        ).all()
        scores: dict[int, dict[str, float]] = {}
        for suggestion_id, name, value in session.execute(
            select(Score.suggestion_id, Score.metric_name, Score.value).where(
                Score.suggestion_id.in_([row.id for row in rows])
            )
        ):
            scores.setdefault(suggestion_id, {})[name] = value
    return {row.key: (row.text, row.accepted, scores[row.id]) for row in rows}


def assert_complete_once(sessions: sessionmaker[Session], run_id: int) -> control.RunProgress:
    """Every point has exactly one good suggestion with every metric: none missing, none twice."""
    final = progress(sessions, run_id)
    with sessions() as session:
        points = session.scalar(select(func.count(Point.id)).where(Point.run_id == run_id))
        rows, distinct = session.execute(
            select(func.count(Suggestion.id), func.count(func.distinct(Suggestion.point_id)))
            .where(Suggestion.run_id == run_id)
        ).one()  # fmt: skip
        scores = session.scalar(
            select(func.count())
            .select_from(Score)
            .join(Suggestion, Score.suggestion_id == Suggestion.id)
            .where(Suggestion.run_id == run_id)
        )
    assert (final.status, final.failed) == ("done", 0)
    assert final.points_total == points == rows == distinct
    assert scores == points * len(METRICS)
    return final


def inferences(server: LocalTriton) -> int:
    """Requests the server's ensemble has answered since it started."""
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model_name="ensemble")
    finally:
        client.close()
    return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])


def test_a_distributed_run_stores_what_the_in_process_run_stores(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", files=4)
    args = ["audit", str(repo), *SMALL, "--json"]
    local = json.loads(aixaudit(*args, env=env).stdout)
    celery(concurrency=2)
    distributed = json.loads(aixaudit(*args, "--distributed", "--wait", env=env).stdout)

    assert distributed["run"]["status"] == local["run"]["status"] == "done"
    expected = results(sessions, local["run"]["id"])
    assert len(expected) == 8  # 4 files x 2 points
    assert results(sessions, distributed["run"]["id"]) == expected
    for report in (local, distributed):
        report["totals"].pop("mean_latency_ms")
    # The database averages in its own order: equal up to rounding.
    assert distributed["totals"].pop("metrics") == pytest.approx(local["totals"].pop("metrics"))
    assert distributed["totals"] == local["totals"]
    # The distributed run is compared with the previous run of the repository: no change.
    with sessions() as session:
        deltas = history.run_deltas(session, run_id=distributed["run"]["id"])
    assert deltas and not any(delta.regressed for delta in deltas)
    assert [delta.delta for delta in deltas] == pytest.approx([0.0] * len(deltas))


def start_run(env: dict[str, str], repo: Path) -> int:
    return int(aixaudit("audit", str(repo), *SMALL, "--distributed", env=env).stdout)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    doomed = celery(name="doomed")
    run_id = start_run(env, make_repo(tmp_path / "repo", files=12))
    wait_for(lambda: progress(sessions, run_id).answered >= 2)
    doomed.kill()  # the machine is gone: no warm shutdown, its task is never acknowledged
    lost = progress(sessions, run_id)
    assert 0 < lost.answered < lost.points_total == 24
    assert lost.status == "running"

    celery(name="survivor", concurrency=2)
    aixaudit("resume", str(run_id), "--wait", env=env)
    assert_complete_once(sessions, run_id)


def test_a_pool_process_killed_mid_task_is_redelivered_and_the_run_finishes(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    worker = celery()
    run_id = start_run(env, make_repo(tmp_path / "repo", files=12))
    wait_for(lambda: progress(sessions, run_id).answered >= 2)
    [child] = worker.pool_pids()
    os.kill(child, signal.SIGKILL)  # the worker requeues that child's task (reject_on_worker_lost)
    wait_for(lambda: progress(sessions, run_id).finished)
    assert_complete_once(sessions, run_id)


def test_a_chunk_that_fails_for_good_fails_the_run_with_the_reason(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    broken = {k: v for k, v in env.items() if k != "AIXAUDIT_TRITON_URL"}
    celery(env=broken)  # a worker deployed without its server: not worth a retry
    run_id = start_run(env, make_repo(tmp_path / "repo", files=1))
    failed = wait_for(lambda: (p := progress(sessions, run_id)).finished and p)
    assert (failed.status, failed.answered) == ("failed", 0)
    assert "Workers need a Triton server: set AIXAUDIT_TRITON_URL." in (failed.error or "")


def test_cancel_and_resume_are_safe_twice(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    prefix: str,
    tmp_path: Path,
) -> None:
    celery(name="planner", queues=[CONTROL_QUEUE])  # dispatches chunks nobody answers yet
    run_id = start_run(env, make_repo(tmp_path / "repo", files=3))
    wait_for(lambda: progress(sessions, run_id).status == "running")
    queue = redis.Redis.from_url(REDIS_URL)
    assert queue.llen(f"{prefix}{POINTS_QUEUE}") == 3  # 6 points in chunks of 2
    for _ in range(2):
        assert f"run {run_id} cancelled" in aixaudit("cancel", str(run_id), env=env).stdout

    celery(name="answerer", queues=[POINTS_QUEUE])  # every chunk sees the cancel and skips
    wait_for(lambda: not queue.llen(f"{prefix}{POINTS_QUEUE}"))
    wait_for(
        lambda: not queue.llen(f"{prefix}{CONTROL_QUEUE}") and not queue.hlen(f"{prefix}unacked")
    )
    skipped = progress(sessions, run_id)
    assert (skipped.status, skipped.answered) == ("cancelled", 0)
    queue.close()

    resumed = aixaudit("resume", str(run_id), env=env)
    assert "6 points without a result enqueued again" in resumed.stderr
    again = aixaudit("resume", str(run_id), env=env).stderr  # in flight, or done already
    assert "points without a result enqueued again" in again or "is done" in again
    status = aixaudit("status", str(run_id), env=env)
    assert f"run {run_id} done: 6/6 points answered" in status.stdout
    assert_complete_once(sessions, run_id)
    assert "no point is missing a result" in aixaudit("resume", str(run_id), env=env).stderr
    assert "is done already" in aixaudit("cancel", str(run_id), env=env).stdout
    assert progress(sessions, run_id).status == "done"


def nightly_runs(sessions: sessionmaker[Session], schedule_id: int, count: int) -> list[int]:
    """Ids of the schedule's runs once `count` of them are final."""

    def finished() -> list[int] | None:
        with sessions() as session:
            runs = session.scalars(
                select(Run).where(Run.schedule_id == schedule_id).order_by(Run.id)
            ).all()
        done = [run.id for run in runs if run.status in ("done", "partial", "failed")]
        return done if len(done) >= count else None

    return wait_for(finished)


def test_nightly_runs_reuse_unchanged_files_and_ask_the_server_nothing_twice(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    fixed_cost_server: LocalTriton,
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", files=3)
    aixaudit("schedule", "add", str(repo), "--at", "00:00", *SMALL, env=env)
    [schedule] = json.loads(aixaudit("schedule", "list", "--json", env=env).stdout)
    with sessions.begin() as session:  # due now: as if it had not started today yet
        session.execute(
            update(Schedule).where(Schedule.id == schedule["id"]).values(last_started_on=None)
        )
    celery(concurrency=2)
    celery("beat")
    [first] = nightly_runs(sessions, schedule["id"], 1)
    assert_complete_once(sessions, first)
    asked = inferences(fixed_cost_server)

    aixaudit("schedule", "run", str(schedule["id"]), env=env)
    [_, second] = nightly_runs(sessions, schedule["id"], 2)
    final = assert_complete_once(sessions, second)
    assert final.reused == final.points_total == 6
    assert inferences(fixed_cost_server) == asked  # recomputed nothing
    assert results(sessions, second) == results(sessions, first)
    with sessions() as session:
        run = session.get(Run, second)
        assert (run.baseline_run_id, run.regression) == (first, False)

    (repo / "mod00.py").write_text(MODULE.format(i=7))  # one file changes
    aixaudit("schedule", "run", str(schedule["id"]), env=env)
    [*_, third] = nightly_runs(sessions, schedule["id"], 3)
    final = assert_complete_once(sessions, third)
    with sessions() as session:
        fresh = session.scalars(
            select(Point.key)
            .join(Suggestion, Suggestion.point_id == Point.id)
            .where(Point.run_id == third, ~Suggestion.reused)
        ).all()
    assert len(fresh) == 2 and all(key.startswith("mod00.py:") for key in fresh)
    assert final.reused == 4
    assert inferences(fixed_cost_server) == asked + 2
    listed = json.loads(aixaudit("runs", "--json", env=env).stdout)
    assert {run["id"]: run["regression"] for run in listed}[third] is not None
