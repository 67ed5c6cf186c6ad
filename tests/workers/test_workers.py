"""Distributed audits with real processes: Celery workers and beat (`celery -A workers ...`) on
the real Redis, PostgreSQL and a real tritonserver serving the fixed-cost model (deterministic
answers, a known cost per batch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from execution_repos import PYREPO, git_fixture
from fault_injection import (
    AIXAUDIT,
    MODULE,
    SMALL,
    UNREACHABLE,
    PrivateRedis,
    inferences,
    local_env,
    make_repo,
    restart_on_its_ports,
    run_env,
    terminate_backends,
    wait_for,
)
from local_celery import LocalCelery
from sqlalchemy import create_engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from aixaudit import audit, sources
from aixaudit.audit import AuditOptions, plan_run
from aixaudit.config import Settings
from aixaudit.execution.sandbox import available
from aixaudit.jobs import (
    CONTROL_QUEUE,
    EXECUTE_SUGGESTIONS,
    EXECUTION_QUEUE,
    PLAN_AUDIT,
    POINTS_QUEUE,
    make_producer,
)
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
from aixaudit.model_server import model_access
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.store import control, executions, lineage, queries
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import (
    Execution,
    Point,
    Run,
    RunStatus,
    Schedule,
    Score,
    Suggestion,
)

pytestmark = [
    pytest.mark.triton,
    pytest.mark.skipif(
        os.environ.get("AIXAUDIT_SKIP_PG") == "1", reason="workers are tested on PostgreSQL"
    ),
]

REDIS_URL = "redis://127.0.0.1:6379/0"
FILES = 20  # 40 points (the default cap): long enough for a fault to land mid-run


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
    base = run_env(
        data_dir=tmp_path / "data",
        database_url=jobs_db,
        broker_url=REDIS_URL,
        triton_url=fixed_cost_server.grpc_url,
    )
    return base | {
        "AIXAUDIT_CELERY_KEY_PREFIX": prefix,
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


def aixaudit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(AIXAUDIT), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def progress(sessions: sessionmaker[Session], run_id: int) -> control.RunProgress:
    with sessions() as session:
        return control.run_progress(session, run_id=run_id)


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


def tally(sessions: sessionmaker[Session], run_id: int) -> control.Tally:
    with sessions() as session:
        return control.tally(session, run_id=run_id)


def assert_complete_once(sessions: sessionmaker[Session], run_id: int) -> control.RunProgress:
    """Every point has exactly one good suggestion with every metric: none lost, none twice."""
    final = progress(sessions, run_id)
    counted = tally(sessions, run_id)
    with sessions() as session:
        scores = session.scalar(
            select(func.count())
            .select_from(Score)
            .join(Suggestion, Score.suggestion_id == Suggestion.id)
            .where(Suggestion.run_id == run_id)
        )
    assert (final.status, final.failed) == ("done", 0)
    assert counted == control.Tally(final.points_total, final.points_total, 0, 0)
    assert final.points_total > 0
    assert scores == final.points_total * len(METRICS)
    return final


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
    # One lifecycle: the same fingerprint, and the distributed run is compared with the run
    # answered here (the previous one of that fingerprint): no change.
    assert_compared(sessions, distributed["run"]["id"], baseline=local["run"]["id"])


def assert_compared(sessions: sessionmaker[Session], run_id: int, *, baseline: int) -> None:
    """`run_id` has `baseline`'s fingerprint, was compared with it and nothing changed."""
    with sessions() as session:
        run, base = session.get(Run, run_id), session.get(Run, baseline)
        assert run is not None and base is not None
        assert run.fingerprint is not None and run.fingerprint == base.fingerprint
        assert (run.baseline_run_id, run.regression) == (baseline, False)
        deltas = lineage.run_deltas(session, run_id=run_id)
    assert deltas and not any(delta.regressed for delta in deltas)
    assert [delta.delta for delta in deltas] == pytest.approx([0.0] * len(deltas))


def test_an_ablation_on_the_workers_is_the_ablation_answered_here(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    """`--context none,similar --distributed`: the group is planned here and each of its runs
    answered on the workers. Answered here afterwards, each run gets the same points and
    answers, and is compared with the workers' run of its strategy: one lifecycle."""
    repo = make_repo(tmp_path / "repo", files=3)
    args = ["audit", str(repo), *SMALL, "--context", "none,similar", "--json"]
    celery(concurrency=2)
    distributed = json.loads(aixaudit(*args, "--distributed", "--wait", env=env).stdout)
    local = json.loads(aixaudit(*args, env=env).stdout)
    assert [row["strategy"] for row in distributed["runs"]] == ["none", "similar"]
    for there, here in zip(distributed["runs"], local["runs"], strict=True):
        assert there["suggestions"] == there["points"] == 6
        assert results(sessions, here["run_id"]) == results(sessions, there["run_id"])
        assert_compared(sessions, here["run_id"], baseline=there["run_id"])
        with sessions() as session:
            run = session.get(Run, there["run_id"])
            assert run is not None and run.distributed
            assert run.group_id == distributed["group_id"] != local["group_id"]


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """The CLI in a process of its own, not waited for."""
    return subprocess.Popen(
        [str(AIXAUDIT), *args], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def start_run(env: dict[str, str], repo: Path) -> int:
    return int(aixaudit("audit", str(repo), *SMALL, "--distributed", env=env).stdout)


def run_midway(env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path) -> int:
    """A distributed run of FILES files, once its first points are answered: where a fault lands
    mid-run."""
    run_id = start_run(env, make_repo(tmp_path / "repo", files=FILES))
    wait_for(lambda: progress(sessions, run_id).answered >= 2)
    return run_id


@pytest.mark.parametrize("resumed", ["on a survivor", "here"])
def test_a_worker_killed_mid_run_then_resume_loses_and_duplicates_nothing(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
    resumed: str,
) -> None:
    doomed = celery(name="doomed")
    run_id = run_midway(env, sessions, tmp_path)
    doomed.kill()  # the machine is gone: no warm shutdown, its task is never acknowledged
    lost, cut = progress(sessions, run_id), tally(sessions, run_id)
    assert 0 < lost.answered < lost.points_total == 2 * FILES
    assert lost.status == "running"
    assert (cut.planned, cut.duplicated) == (2 * FILES, 0) and 0 < cut.answered < 2 * FILES

    if resumed == "here":  # no worker left: the run is finished in this process
        here = env | {"AIXAUDIT_BROKER_URL": UNREACHABLE, "AIXAUDIT_RESULT_BACKEND": UNREACHABLE}
        assert "answered here" in aixaudit("resume", str(run_id), "--local", env=here).stderr
    else:
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
    run_id = run_midway(env, sessions, tmp_path)
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


def executed(sessions: sessionmaker[Session], run_id: int) -> executions.ExecutionReport:
    """The run's execution figures once an execution worker stored them."""

    def stored() -> executions.ExecutionReport | None:
        with sessions() as session:
            return executions.execution_report(session, run_id=run_id)

    return wait_for(stored, timeout_s=600)  # type: ignore[no-any-return]


@pytest.mark.sandbox
@pytest.mark.skipif(available() is not None, reason=f"no sandbox: {available()}")
@pytest.mark.timeout(1200)
def test_runs_asked_to_execute_are_executed_by_the_execution_workers(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    """`audit --distributed --execute` and a schedule added with --execute: once each run's
    completions are in, a worker on the execution queue only runs the repository's tests."""
    checkout = git_fixture(PYREPO, tmp_path / "pyrepo")
    execute = ["--execute", "--execute-max-points", "3", "--execute-wall-s", "120"]
    celery(queues=[CONTROL_QUEUE, POINTS_QUEUE])
    executor = celery(name="executor", queues=[EXECUTION_QUEUE])
    report = json.loads(
        aixaudit("audit", str(checkout.root), *SMALL, *execute, "--distributed", "--wait",
                 "--json", env=env).stdout
    )  # fmt: skip
    aixaudit("schedule", "add", str(checkout.root), "--at", "23:59", *SMALL, *execute, env=env)
    listed = json.loads(aixaudit("schedule", "list", "--json", env=env).stdout)
    [schedule] = [s for s in listed if s["origin"] == str(checkout.root.resolve())]  # this one
    aixaudit("schedule", "run", str(schedule["id"]), env=env)
    [nightly] = nightly_runs(sessions, schedule["id"], 1)

    for run_id in (report["run"]["id"], nightly):
        figures = executed(sessions, run_id)
        assert (figures.runner, figures.status, figures.reason) == ("pytest", "done", None)
        points = progress(sessions, run_id).points_total  # fewer than the cap
        assert sum(figures.by_status.values()) == figures.points_sampled == points > 0
        with sessions() as session:
            stored = session.scalar(
                select(func.count())
                .select_from(Execution)
                .join(Suggestion, Execution.suggestion_id == Suggestion.id)
                .where(Suggestion.run_id == run_id)
            )
        assert stored == points
    log = executor.log_path.read_text()
    assert log.count(f"{EXECUTE_SUGGESTIONS}[") >= 2  # received and succeeded, on its queue
    assert f"{EXECUTE_SUGGESTIONS}[" not in (tmp_path / "celery" / "w0.log").read_text()


# -- faults mid-run, counted: every run ends done with 0 points lost and 0 duplicated ----------


def cut_short(sessions: sessionmaker[Session], run_id: int) -> None:
    """As if the run had ended partial: its suggestions gone, its status final."""
    with sessions.begin() as session:
        session.execute(delete(Suggestion).where(Suggestion.run_id == run_id))
        queries.set_run_status(session, run_id=run_id, status=RunStatus.PARTIAL)


def settle(prefix: str) -> None:
    """Wait until the workers have nothing queued or in hand."""
    queue = redis.Redis.from_url(REDIS_URL)
    points, control_, unacked = (
        f"{prefix}{name}" for name in (POINTS_QUEUE, CONTROL_QUEUE, "unacked")
    )
    try:
        wait_for(lambda: not (queue.llen(points) or queue.llen(control_) or queue.hlen(unacked)))
    finally:
        queue.close()


def test_a_plan_task_delivered_twice_plans_one_run(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    worker = celery(concurrency=2)
    queue = {"broker_url": REDIS_URL, "celery_key_prefix": env["AIXAUDIT_CELERY_KEY_PREFIX"]}
    producer = make_producer(Settings(_env_file=None, **queue))  # sends as the CLI and the API do
    repo = make_repo(tmp_path / "repo", files=2)
    options = AuditOptions(profile="l2r", per_file=2, max_new_tokens=4)
    args = (str(repo), None, options.model_dump(), AcceptanceRule().to_dict())

    def deliver(task_id: str, times: int) -> int:
        """Deliver the plan task under `task_id` (a redelivery keeps the id) and return its run
        once the run is final and the worker has run the task `times` times."""
        producer.send_task(PLAN_AUDIT, args, task_id=task_id)
        succeeded = f"plan_audit[{task_id}] succeeded"
        wait_for(lambda: worker.log_path.read_text().count(succeeded) == times)
        with sessions() as session:
            [run_id] = session.scalars(select(Run.id).where(Run.plan_key == task_id)).all()
        wait_for(lambda: progress(sessions, run_id).finished)
        return run_id

    once = str(uuid.uuid4())
    run_id = deliver(once, 1)
    assert deliver(once, 2) == run_id  # delivered again after it succeeded: the same run
    assert_complete_once(sessions, run_id)

    # A delivery that crashed right after storing its plan: the next one completes that run.
    crashed = str(uuid.uuid4())
    checkout = sources.checkout(str(repo), ref=None, cache_dir=tmp_path / "cache")
    orphan = plan_run(
        sessions, checkout=checkout, options=options, rule=AcceptanceRule(), plan_key=crashed
    )
    assert deliver(crashed, 1) == orphan
    assert_complete_once(sessions, orphan)
    with sessions() as session:
        repository = session.get(Run, orphan).repository_id
        keys = session.scalars(select(Run.plan_key).where(Run.repository_id == repository)).all()
    assert sorted(keys) == sorted([once, crashed])  # two tasks, two runs of the repository


RESUME_THEN_CANCEL = """
import sys
from aixaudit.cli.shared import sessions_for
from aixaudit.config import get_settings
from aixaudit.store import control
from aixaudit.jobs import resume

sessions, run_id = sessions_for(get_settings()), int(sys.argv[1])
print(resume(sessions, run_id=run_id)[0].value)
with sessions.begin() as session:
    print(control.cancel_run(session, run_id=run_id).value)
"""


def test_cancel_wins_over_a_resume_back_to_back_and_at_once(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    prefix: str,
    tmp_path: Path,
) -> None:
    celery(concurrency=2)
    run_id = start_run(env, make_repo(tmp_path / "repo", files=3))
    wait_for(lambda: progress(sessions, run_id).finished)
    for _ in range(3):  # back to back, as the API would: the dispatch comes after the cancel
        cut_short(sessions, run_id)
        said = subprocess.run(
            [sys.executable, "-c", RESUME_THEN_CANCEL, str(run_id)],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert said.stdout.split() == ["running", "cancelled"]
        settle(prefix)
        assert progress(sessions, run_id).status == "cancelled"
        assert tally(sessions, run_id).duplicated == 0
    for _ in range(3):  # at once, in two processes
        cut_short(sessions, run_id)
        both = [spawn(command, str(run_id), env=env) for command in ("resume", "cancel")]
        said = [process.communicate(timeout=120)[0] for process in both][1]
        settle(prefix)
        if f"run {run_id} cancelled" in said:  # the cancel came in during the resume: it wins
            assert progress(sessions, run_id).status == "cancelled"
        else:  # it found the run finished: partial before the resume, or done after it
            assert "nothing to cancel" in said
            assert_complete_once(sessions, run_id)
        assert tally(sessions, run_id).duplicated == 0
    aixaudit("resume", str(run_id), "--wait", env=env)
    assert_complete_once(sessions, run_id)


def test_a_tritonserver_killed_mid_run_then_resume_in_process(
    env: dict[str, str],
    sessions: sessionmaker[Session],
    fixed_cost_repo: Path,
    cpu_model_dir: Path,
    tmp_path: Path,
) -> None:
    server = LocalTriton(log_dir=tmp_path / "triton")
    model = {MODEL_DIR_ENV: str(cpu_model_dir)}
    with server.start(fixed_cost_repo, env=model):
        local = local_env(env, server.grpc_url)  # no Celery anywhere: a local run
        repo = make_repo(tmp_path / "repo", files=FILES)
        audit_run = spawn("audit", str(repo), *SMALL, "--json", env=local)
        wait_for(lambda: inferences(server) >= 4)
        assert server.pid is not None
        os.killpg(server.pid, signal.SIGKILL)  # the server dies mid-run
        out, err = audit_run.communicate(timeout=180)
        run_id = json.loads(out)["run"]["id"]
        cut = tally(sessions, run_id)
        assert progress(sessions, run_id).status == "partial", err
        assert (cut.planned, cut.duplicated) == (2 * FILES, 0) and 0 < cut.answered < 2 * FILES

        restart_on_its_ports(server, fixed_cost_repo, model)
        resumed = aixaudit("resume", str(run_id), env=local)  # in this process: no worker
        assert f"{cut.lost} points without a result, answered here" in resumed.stderr
    assert_complete_once(sessions, run_id)


def test_a_run_in_process_stops_asking_once_cancelled(
    env: dict[str, str],
    sessions: sessionmaker[Session],
    fixed_cost_server: LocalTriton,
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", files=FILES)
    checkout = sources.checkout(str(repo), ref=None, cache_dir=tmp_path / "cache")
    options = AuditOptions(profile="l2r", per_file=2, max_new_tokens=4)
    run_id = plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
    settings = Settings(_env_file=None, triton_url=env["AIXAUDIT_TRITON_URL"], max_in_flight=2)
    asked = inferences(fixed_cost_server)
    with model_access(settings) as access, ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            audit.execute_run, sessions, run_id=run_id, completer=access.completer(settings),
            counter=access.counter, scoring_processes=0,
        )  # fmt: skip
        wait_for(lambda: progress(sessions, run_id).answered >= audit.RESULT_BATCH)
        with sessions.begin() as session:
            assert control.cancel_run(session, run_id=run_id) is RunStatus.CANCELLED
        assert running.result(timeout=120) is RunStatus.CANCELLED
    counted = tally(sessions, run_id)
    assert (counted.planned, counted.duplicated) == (2 * FILES, 0)
    assert counted.answered < 2 * FILES  # it stopped at the next batch stored
    assert inferences(fixed_cost_server) - asked < 2 * FILES
    assert progress(sessions, run_id).status == "cancelled"


def test_redis_restarted_mid_run_loses_and_duplicates_nothing(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    broker = PrivateRedis(tmp_path).start()
    try:
        on_private = env | {
            "AIXAUDIT_BROKER_URL": broker.url,
            "AIXAUDIT_RESULT_BACKEND": broker.url,
        }
        celery(env=on_private)
        run_id = run_midway(on_private, sessions, tmp_path)
        cut = tally(sessions, run_id)
        broker.restart()  # every queued chunk and the chord are gone
        assert cut.duplicated == 0 and cut.answered < 2 * FILES
        aixaudit("resume", str(run_id), "--wait", env=on_private)  # the workers reconnected
        assert_complete_once(sessions, run_id)
    finally:
        broker.kill()


def test_postgresql_connections_terminated_mid_run_lose_and_duplicate_nothing(
    env: dict[str, str],
    celery: Callable[..., LocalCelery],
    pg_database: str,
    tmp_path: Path,
) -> None:
    # Polls connect afresh each time: the test's own connections are terminated too.
    engine = create_engine(env["AIXAUDIT_DATABASE_URL"], poolclass=NullPool)
    sessions = session_factory(engine)
    celery(concurrency=2)
    run_id = run_midway(env, sessions, tmp_path)
    assert terminate_backends(pg_database) > 0  # only this session's database
    wait_for(lambda: progress(sessions, run_id).finished)
    assert_complete_once(sessions, run_id)
    engine.dispose()
