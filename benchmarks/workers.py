"""Points/s of a distributed audit with 1 and then 2 Celery worker processes, on one server.

The server is the bundled tritonserver with the fixed-cost model (aixaudit.model_repo.
render_fixed_cost): each batch of up to B requests takes D ms, so it serves up to B / D x I
completions/s. One worker process keeps at most `max_in_flight` requests outstanding, i.e. at
most max_in_flight / D points/s. A batch occupies an instance for D however few requests it
holds, and requests of several workers arrive spread out, so the default gives 8 instances:
with B x I far above what two workers keep in flight, the workers, not the server, are the
limit, and two workers should answer close to twice as fast (target ratio >= 1.8).
Each pass audits the same corpus afresh (same points, no reuse) on real Redis and PostgreSQL,
timed from the dispatch to the run's final status. The server's idle share is 1 - (time its
model spent executing batches) / (wall time x instances), from Triton's statistics.

    .venv/bin/python benchmarks/workers.py [--delay-ms 100] [--max-batch 32] [--instances 8]
        [--points 480] [--max-in-flight 8] [--chunk-size 16] [--repeat 1] [--corpus DIR]

Needs Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`);
a database and a Redis key prefix of its own are made and removed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import tritonclient.http as httpclient
from psycopg import sql

from aixaudit import incremental, sources
from aixaudit.audit import AuditOptions
from aixaudit.config import Settings
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
from aixaudit.model_repo import render_fixed_cost
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import control
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.weights import ensure_cpu_model

HERE = Path(__file__).resolve().parent
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Pass:
    workers: int
    points: int
    seconds: float
    busy_s: float  # the model's batch executions, summed over instances
    machine_cpu: float  # share of all cores busy (anything on the machine)

    @property
    def rate(self) -> float:
        return self.points / self.seconds


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"aixaudit_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            connection.execute(drop)


def busy_seconds(server: LocalTriton, model: str = "tensorrt_llm") -> float:
    """Seconds the model has spent executing batches since the server started."""
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model_name=model)["model_stats"][0]
    finally:
        client.close()
    parts = ("compute_input", "compute_infer", "compute_output")
    return (
        sum(int(batch[part]["ns"]) for batch in stats.get("batch_stats", []) for part in parts)
        / 1e9
    )


def import_workers() -> None:
    """This file is named like the package it measures: import that package, not this file."""
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def main() -> None:
    import_workers()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=100.0, help="D: cost of one batch")
    parser.add_argument("--max-batch", type=int, default=32, help="B: largest batch")
    parser.add_argument("--instances", type=int, default=8, help="I: model instances")
    parser.add_argument("--points", type=int, default=480, help="points per run at most")
    parser.add_argument("--per-file", type=int, default=16, help="points per file at most")
    parser.add_argument("--max-in-flight", type=int, default=8, help="requests per worker")
    parser.add_argument("--chunk-size", type=int, default=16, help="points per task")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of passes (medians shown)")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(sysconfig.get_paths()["stdlib"]) / "asyncio",
        help="a source tree",
    )
    args = parser.parse_args()
    ceiling = 1000 * args.max_batch / args.delay_ms * args.instances
    print(
        f"fixed cost: D={args.delay_ms:g} ms, B={args.max_batch}, I={args.instances} -> server "
        f"ceiling {ceiling:.0f} points/s; per worker {args.max_in_flight} in flight -> at most "
        f"{1000 * args.max_in_flight / args.delay_ms:.0f} points/s; {os.cpu_count()} cores"
    )
    model_dir = ensure_cpu_model(Settings())  # the ensemble's tokenizer
    prefix = f"aixaudit-bench-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory(prefix="aixaudit-bench-") as tmp, scratch_database() as url:
        work = Path(tmp)
        upgrade(url)
        repo = render_fixed_cost(
            work / "repo",
            delay_ms=args.delay_ms,
            max_batch_size=args.max_batch,
            instances=args.instances,
        )
        with LocalTriton(log_dir=work).start(repo, env={MODEL_DIR_ENV: str(model_dir)}) as server:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")},
                "AIXAUDIT_DATA_DIR": str(work / "data"),
                "AIXAUDIT_DATABASE_URL": url,
                "AIXAUDIT_BROKER_URL": REDIS_URL,
                "AIXAUDIT_RESULT_BACKEND": REDIS_URL,
                "AIXAUDIT_CELERY_KEY_PREFIX": prefix,
                "AIXAUDIT_TRITON_URL": f"grpc://{server.grpc_url}",
                "AIXAUDIT_MAX_IN_FLIGHT": str(args.max_in_flight),
                "AIXAUDIT_CHUNK_SIZE": str(args.chunk_size),
            }
            os.environ.update(env)  # before the Celery app is built from the settings
            try:
                passes = [
                    run_pass(workers, args, env, work, server)
                    for _ in range(args.repeat)
                    for workers in (1, 2)  # alternating, so that noise hits both alike
                ]
            finally:
                client = redis.Redis.from_url(REDIS_URL)
                keys = list(client.scan_iter(match=f"{prefix}*"))
                if keys:
                    client.delete(*keys)
    for one in passes:
        idle = 1 - one.busy_s / (one.seconds * args.instances)
        print(
            f"{one.workers} worker process(es): {one.points} points in {one.seconds:.1f} s = "
            f"{one.rate:.1f} points/s; server idle {idle:.0%} of the wall time; "
            f"machine CPU {one.machine_cpu:.0%} busy"
        )
    one, two = (
        statistics.median(p.rate for p in passes if p.workers == workers) for workers in (1, 2)
    )
    print(
        f"median points/s: 1 worker {one:.1f}, 2 workers {two:.1f}; "
        f"ratio {two / one:.2f} (target >= 1.8)"
    )


def run_pass(
    workers: int, args: argparse.Namespace, env: dict[str, str], work: Path, server: LocalTriton
) -> Pass:
    """Plan a fresh run of the corpus, start `workers` worker processes, time the run."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from local_celery import LocalCelery  # a test launcher; tests/ is no package

    from workers.tasks import dispatch_run

    factory = session_factory(make_engine(env["AIXAUDIT_DATABASE_URL"]))
    checkout = sources.checkout(str(args.corpus), ref=None, cache_dir=work / "repos")
    options = AuditOptions(per_file=args.per_file, max_points=args.points, max_new_tokens=16)
    run_id = incremental.plan_tracked_run(
        factory, checkout=checkout, options=options, rule=AcceptanceRule(), model=None
    )
    processes = [
        LocalCelery.worker(f"bench{workers}-{i}", env=env, log_dir=work / "logs").start()
        for i in range(workers)
    ]
    try:
        busy, (cpu_busy, cpu_total) = busy_seconds(server), cpu_jiffies()
        started = time.perf_counter()
        dispatch_run.apply_async((run_id,), ignore_result=True)
        while True:
            with factory() as session:
                progress = control.run_progress(session, run_id=run_id)
            if progress.finished:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        busy = busy_seconds(server) - busy
        cpu_busy_now, cpu_total_now = cpu_jiffies()
        machine_cpu = (cpu_busy_now - cpu_busy) / (cpu_total_now - cpu_total)
    finally:
        for process in processes:
            process.stop()
    if progress.status != "done":
        raise SystemExit(f"run {run_id} ended {progress.status}: {progress.error}")
    return Pass(workers, progress.points_total, seconds, busy, machine_cpu)


if __name__ == "__main__":
    main()
