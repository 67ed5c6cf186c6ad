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

Needs PostgreSQL at 127.0.0.1:5432 (trust auth: a database of its own is made and dropped) and
redis-server on the PATH (a private one on a free loopback port). The faults themselves are
tests/fault_injection.py's, which the worker tests inject too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import fault_injection as inject  # tests/, put on the path by benchmarks/faults.py
from local_celery import LocalCelery
from queries import database  # beside this file
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from aixaudit.config import Settings
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
from aixaudit.model_repo import render_fixed_cost
from aixaudit.store import control
from aixaudit.store.db import session_factory, upgrade
from aixaudit.weights import ensure_cpu_model

PATIENCE_S = 300.0  # for each wait: a busy machine answers slowly


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
    model_repo: Path
    model_env: dict[str, str]
    repo: Path

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [str(inject.AIXAUDIT), *args], env=env or self.env, capture_output=True, text=True,
            timeout=300, check=True,
        )  # fmt: skip
        return done.stdout

    def distributed_run(self) -> int:
        return int(self.cli("audit", str(self.repo), *inject.SMALL, "--distributed"))

    def worker(self, name: str) -> LocalCelery:
        return LocalCelery.worker(name, env=self.env, log_dir=self.work / "logs").start()

    def progress(self, run_id: int) -> control.RunProgress:
        with self.sessions() as session:
            return control.run_progress(session, run_id=run_id)

    def outcome(self, fault: str, run_id: int, *, resumed: bool) -> Outcome:
        with self.sessions() as session:
            tally = control.tally(session, run_id=run_id)
        return Outcome(fault, tally, self.progress(run_id).status, resumed)


def answered_some(lab: Lab, run_id: int) -> None:
    inject.wait_for(lambda: lab.progress(run_id).answered >= 2, timeout_s=PATIENCE_S)


def tritonserver_killed(lab: Lab) -> Outcome:
    with LocalTriton(log_dir=lab.work / "logs").start(lab.model_repo, env=lab.model_env) as own:
        local = inject.local_env(lab.env, own.grpc_url)
        audit = subprocess.Popen(
            [str(inject.AIXAUDIT), "audit", str(lab.repo), *inject.SMALL, "--json"],
            env=local, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        inject.wait_for(lambda: inject.inferences(own) >= 4, timeout_s=PATIENCE_S)
        assert own.pid is not None
        os.killpg(own.pid, signal.SIGKILL)
        run_id = json.loads(audit.communicate(timeout=300)[0])["run"]["id"]
        cut = lab.progress(run_id).status
        inject.restart_on_its_ports(own, lab.model_repo, lab.model_env)
        lab.cli("resume", str(run_id), env=local)
    return lab.outcome(f"tritonserver SIGKILL (run {cut}, resumed here)", run_id, resumed=True)


def worker_killed(lab: Lab) -> Outcome:
    doomed = lab.worker("doomed")
    run_id = lab.distributed_run()
    answered_some(lab, run_id)
    doomed.kill()
    here = lab.env | {
        "AIXAUDIT_BROKER_URL": inject.UNREACHABLE,
        "AIXAUDIT_RESULT_BACKEND": inject.UNREACHABLE,
    }
    lab.cli("resume", str(run_id), "--local", env=here)
    return lab.outcome("worker SIGKILL (resume --local)", run_id, resumed=True)


def redis_restarted(lab: Lab, broker: inject.PrivateRedis) -> Outcome:
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
        inject.terminate_backends(database)
        inject.wait_for(lambda: lab.progress(run_id).finished, timeout_s=PATIENCE_S)
    return lab.outcome("postgresql backends terminated x5", run_id, resumed=False)


def midrun_faults(files: int = 20) -> list[Outcome]:
    """Run every fault scenario once, print one line per fault, and return the outcomes."""
    model_dir = ensure_cpu_model(Settings())  # the ensemble's tokenizer
    model_env = {MODEL_DIR_ENV: str(model_dir)}
    name = f"aixaudit_faults_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="aixaudit-faults-") as tmp, database(name) as plain:
        work = Path(tmp)
        url = plain.replace("postgresql://", "postgresql+psycopg://", 1)
        upgrade(url)
        model_repo = render_fixed_cost(work / "model_repo", delay_ms=40)
        repo = inject.make_repo(work / "repo", files)
        broker = inject.PrivateRedis(work).start()
        engine = create_engine(url, poolclass=NullPool)  # its connections get terminated too
        try:
            with LocalTriton(log_dir=work / "logs").start(model_repo, env=model_env) as server:
                env = inject.run_env(
                    data_dir=work / "data",
                    database_url=url,
                    broker_url=broker.url,
                    triton_url=server.grpc_url,
                )
                lab = Lab(work, env, session_factory(engine), model_repo, model_env, repo)
                outcomes = [
                    tritonserver_killed(lab),
                    worker_killed(lab),
                    redis_restarted(lab, broker),
                    postgresql_terminated(lab, name),
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
