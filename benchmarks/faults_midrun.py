"""Faults mid-run against real processes, counted: for each fault, the points planned, answered,
lost (no good suggestion) and duplicated (more than one suggestion row), and the final status.

    tritonserver   SIGKILLed mid-run, restarted on its ports; the local run ends partial, then
                   `aixaudit resume` answers the rest in process (no worker, no broker)
    worker         a Celery worker SIGKILLed mid-chunk; `aixaudit resume --local` finishes
    redis          the broker restarted empty mid-run (queued chunks and the chord are gone);
                   `aixaudit resume` re-enqueues on the reconnected workers
    postgresql     the run database's connections terminated (pg_terminate_backend) 5 times
                   while chunks are answered; the tasks retry, no resume

Each run audits the same small repository on the fixed-cost model (deterministic answers, a
known cost per batch) with 2-point chunks. Expected: every run `done`, 0 lost, 0 duplicated.

    .venv/bin/python benchmarks/faults.py --sections midrun [--files 20]

Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`: a database of its own is made
and dropped) and redis-server on the PATH (a private one on a free loopback port).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import redis
import tritonclient.http as httpclient
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from aixaudit import local_triton as server_module
from aixaudit.config import Settings
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
from aixaudit.model_repo import render_fixed_cost
from aixaudit.store import control
from aixaudit.store.db import session_factory, upgrade
from aixaudit.weights import ensure_cpu_model

if TYPE_CHECKING:
    from local_celery import LocalCelery

HERE = Path(__file__).resolve().parent
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
AIXAUDIT = Path(sys.executable).with_name("aixaudit")
UNREACHABLE = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
SMALL = ["--profile", "l2r", "--per-file", "2", "--max-new-tokens", "4"]
MODULE = """\
def total_{i}(values):
    result = 0
    for value in values:
        if value > {i}:
            result += value
    return result


def label_{i}(name, count):
    return "{{}}: {{}}".format(name, count).upper()
"""


@dataclass(frozen=True)
class Outcome:
    fault: str
    tally: control.Tally
    status: str
    resumed: bool


@dataclass
class Lab:
    """What every scenario shares: a scratch directory, database, broker and model server."""

    work: Path
    env: dict[str, str]
    sessions: sessionmaker[Session]
    server: LocalTriton
    model_repo: Path
    model_env: dict[str, str]
    repo: Path

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [str(AIXAUDIT), *args], env=env or self.env, capture_output=True, text=True,
            timeout=300, check=True,
        )  # fmt: skip
        return done.stdout

    def distributed_run(self) -> int:
        return int(self.cli("audit", str(self.repo), *SMALL, "--distributed"))

    def worker(self, name: str, env: dict[str, str] | None = None) -> LocalCelery:
        from local_celery import LocalCelery  # tests/, put on the path by benchmarks/faults.py

        return LocalCelery.worker(name, env=env or self.env, log_dir=self.work / "logs").start()

    def progress(self, run_id: int) -> control.RunProgress:
        with self.sessions() as session:
            return control.run_progress(session, run_id=run_id)

    def outcome(self, fault: str, run_id: int, *, resumed: bool) -> Outcome:
        with self.sessions() as session:
            tally = control.tally(session, run_id=run_id)
        return Outcome(fault, tally, self.progress(run_id).status, resumed)


def wait_for(condition: Callable[[], Any], *, timeout_s: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the run")
        time.sleep(0.02)
    return value


def answered_some(lab: Lab, run_id: int) -> None:
    wait_for(lambda: lab.progress(run_id).answered >= 2)


def tritonserver_killed(lab: Lab) -> Outcome:
    with LocalTriton(log_dir=lab.work / "logs").start(lab.model_repo, env=lab.model_env) as own:
        local = lab.env | {
            "AIXAUDIT_TRITON_URL": f"grpc://{own.grpc_url}",
            "AIXAUDIT_BROKER_URL": UNREACHABLE,
            "AIXAUDIT_RESULT_BACKEND": UNREACHABLE,
            "AIXAUDIT_MAX_RETRIES": "1",
            "AIXAUDIT_RETRY_BACKOFF_S": "0.05",
        }
        audit = subprocess.Popen(
            [str(AIXAUDIT), "audit", str(lab.repo), *SMALL, "--json"],
            env=local, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: inferences(own) >= 4)
        ports, pid = own._ports, own.pid
        assert ports is not None and pid is not None
        os.killpg(pid, signal.SIGKILL)
        run_id = json.loads(audit.communicate(timeout=300)[0])["run"]["id"]
        cut = lab.progress(run_id).status
        own.stop()
        free_ports, server_module._free_ports = server_module._free_ports, lambda: ports
        # the same ports again: clients keep their address
        try:
            own.start(lab.model_repo, env=lab.model_env)
        finally:
            server_module._free_ports = free_ports
        lab.cli("resume", str(run_id), env=local)
    return lab.outcome(f"tritonserver SIGKILL (run {cut}, resumed here)", run_id, resumed=True)


def worker_killed(lab: Lab) -> Outcome:
    doomed = lab.worker("doomed")
    run_id = lab.distributed_run()
    answered_some(lab, run_id)
    doomed.kill()
    here = lab.env | {"AIXAUDIT_BROKER_URL": UNREACHABLE, "AIXAUDIT_RESULT_BACKEND": UNREACHABLE}
    lab.cli("resume", str(run_id), "--local", env=here)
    return lab.outcome("worker SIGKILL (resume --local)", run_id, resumed=True)


def redis_restarted(lab: Lab, broker: PrivateRedis) -> Outcome:
    with lab.worker("w1"), lab.worker("w2"):
        run_id = lab.distributed_run()
        answered_some(lab, run_id)
        broker.restart()
        lab.cli("resume", str(run_id), "--wait")
    return lab.outcome("redis restarted empty (resume)", run_id, resumed=True)


def postgresql_terminated(lab: Lab, database: str) -> Outcome:
    with lab.worker("w1"), lab.worker("w2"):
        run_id = lab.distributed_run()
        answered_some(lab, run_id)
        with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as admin:
            for _ in range(5):
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )
                time.sleep(0.3)
        wait_for(lambda: lab.progress(run_id).finished)
    return lab.outcome("postgresql backends terminated x5", run_id, resumed=False)


def inferences(server: LocalTriton) -> int:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model_name="ensemble")["model_stats"][0]
    finally:
        client.close()
    return int(stats["inference_stats"]["success"]["count"])


class PrivateRedis:
    """A redis-server of our own on a free loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), timeout_s=30)
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"aixaudit_faults_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            connection.execute(drop)


def midrun_faults(files: int = 20) -> list[Outcome]:
    """Run every fault scenario once, print one line per fault, and return the outcomes."""
    model_dir = ensure_cpu_model(Settings())  # the ensemble's tokenizer
    model_env = {MODEL_DIR_ENV: str(model_dir)}
    with tempfile.TemporaryDirectory(prefix="aixaudit-faults-") as tmp, scratch_database() as db:
        work = Path(tmp)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
        upgrade(url)
        model_repo = render_fixed_cost(work / "model_repo", delay_ms=40)
        repo = work / "repo"
        repo.mkdir()
        for i in range(files):
            (repo / f"mod{i:02d}.py").write_text(MODULE.format(i=i))
        broker = PrivateRedis(work).start()
        engine = create_engine(url, poolclass=NullPool)  # its connections get terminated too
        try:
            with LocalTriton(log_dir=work / "logs").start(model_repo, env=model_env) as server:
                env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")} | {
                    "AIXAUDIT_DATA_DIR": str(work / "data"),
                    "AIXAUDIT_DATABASE_URL": url,
                    "AIXAUDIT_BROKER_URL": broker.url,
                    "AIXAUDIT_RESULT_BACKEND": broker.url,
                    "AIXAUDIT_TRITON_URL": f"grpc://{server.grpc_url}",
                    "AIXAUDIT_CHUNK_SIZE": "2",
                    "AIXAUDIT_MAX_IN_FLIGHT": "2",
                }
                lab = Lab(work, env, session_factory(engine), server, model_repo, model_env, repo)
                outcomes = [
                    tritonserver_killed(lab),
                    worker_killed(lab),
                    redis_restarted(lab, broker),
                    postgresql_terminated(lab, db),
                ]
        finally:
            engine.dispose()
            broker.kill()
    print(f"{'fault':<48} {'planned':>7} {'answered':>8} {'lost':>4} {'dup':>4}  status")
    for one in outcomes:
        t = one.tally
        print(
            f"{one.fault:<48} {t.planned:>7} {t.answered:>8} {t.lost:>4} {t.duplicated:>4}  "
            f"{one.status}"
        )
    return outcomes
