"""Sizing a nightly audit from figures measured here: what N repositories x P points need.

A short run measures, on this machine: planning CPU per file (scan, parse, sample, store) and
the extraction rate; client CPU per point (prompt, request, trimming, scoring, storing)
against the fixed-cost model server, which answers so fast that the client is the limit;
the store's result-write rate (the audit's own writes: add_results in batches of
RESULT_BATCH, a suggestion and one score per metric each, --writers at once) on --db-url; and
Redis carrying task-sized messages (pipelined). Given a model's completions/s per GPU
(measured on its server; an argument), it prints what a night needs (GPU hours, worker cores,
database rows/s, Redis messages/s), what each resource sustains, and which saturates first.

    .venv/bin/python benchmarks/capacity.py --gpu-rate 20 [--repos 10000] [--points 200]
        [--files 1000] [--window-h 8] [--gpus 8] [--cores 32] [--db-url URL] [--redis-url URL]
        [--sample-files 200] [--sample-points 200] [--writers 4]
"""

from __future__ import annotations

import argparse
import math
import os
import sysconfig
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from memory import make_tree
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import sources
from aixaudit.audit import RESULT_BATCH, AuditOptions, execute_run, plan_run
from aixaudit.config import Settings
from aixaudit.ensemble import ENSEMBLE_NAME
from aixaudit.inference import Endpoint, TritonCompleter
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
from aixaudit.model_repo import render_fixed_cost
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.store import queries
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import Point
from aixaudit.tokens import ModelTokenizer
from aixaudit.weights import ensure_cpu_model

MESSAGES_PER_CHUNK = 2  # the chunk's task message and its result (the chord counts on the result)
REDIS_MESSAGE_BYTES = 1024  # a chunk task: its run id and point ids, with Celery's envelope


@dataclass(frozen=True)
class Measured:
    plan_cpu_per_file_s: float
    extraction_mb_s: float  # source bytes planned per CPU second
    client_cpu_per_point_s: float
    result_writes_per_s: float  # results (a suggestion and its scores) stored per second
    rows_per_result: int
    redis_messages_per_s: float


def measure(args: argparse.Namespace, work: Path) -> Measured:
    """Plan a sample tree, audit it against the fixed-cost server, time the store and Redis."""
    corpus = Path(sysconfig.get_paths()["stdlib"])
    tree = make_tree(work / "tree", args.sample_files, corpus=corpus, max_file_bytes=65536)
    size = sum(path.stat().st_size for path in tree.rglob("*.py"))
    upgrade(args.db_url)
    factory = session_factory(make_engine(args.db_url))
    checkout = sources.checkout(str(tree), ref=None, cache_dir=work / "repos")
    options = AuditOptions(max_points=args.sample_points, max_new_tokens=16)
    started = time.process_time()
    run_id = plan_run(factory, checkout=checkout, options=options, rule=AcceptanceRule())
    plan_cpu = time.process_time() - started

    model_dir = ensure_cpu_model(Settings())
    repo = render_fixed_cost(work / "repo", delay_ms=10, max_batch_size=16)
    with LocalTriton(log_dir=work).start(repo, env={MODEL_DIR_ENV: str(model_dir)}) as server:
        completer = TritonCompleter(
            Endpoint.parse(server.grpc_url), model=ENSEMBLE_NAME, max_in_flight=32
        )
        counter = ModelTokenizer(model_dir)
        started = time.process_time()
        execute_run(
            factory, run_id=run_id, completer=completer, counter=counter, scoring_processes=0
        )
        audit_cpu = time.process_time() - started
    writes = result_writes_per_s(factory, checkout, options, writers=args.writers)
    return Measured(
        plan_cpu_per_file_s=plan_cpu / args.sample_files,
        extraction_mb_s=size / 1e6 / plan_cpu,
        client_cpu_per_point_s=audit_cpu / args.sample_points,
        result_writes_per_s=writes,
        rows_per_result=1 + len(METRICS),
        redis_messages_per_s=redis_messages_per_s(args.redis_url),
    )


def result_writes_per_s(
    sessions: sessionmaker[Session],
    checkout: sources.Checkout,
    options: AuditOptions,
    *,
    writers: int,
) -> float:
    """Results stored per second by the audit's own write (queries.add_results), batches of
    RESULT_BATCH, one transaction each, from `writers` concurrent writers (as workers write),
    into a fresh run of every point the tree offers."""
    every = options.model_copy(update={"max_points": 1_000_000})
    run_id = plan_run(sessions, checkout=checkout, options=every, rule=AcceptanceRule())
    with sessions() as session:
        point_ids = list(session.scalars(select(Point.id).where(Point.run_id == run_id)))
    rows = [
        {
            "point_id": point_id,
            "run_id": run_id,
            "raw_text": "    return value + 1\n",
            "text": "    return value + 1\n",
            "prompt_tokens": 768,
            "latency_ms": 120.0,
            "attempts": 1,
            "accepted": True,
            "scores": {name: 0.5 for name in METRICS},
        }
        for point_id in point_ids
    ]
    batches = [rows[start : start + RESULT_BATCH] for start in range(0, len(rows), RESULT_BATCH)]

    def store(batch: list[dict[str, Any]]) -> None:
        with sessions.begin() as session:
            queries.add_results(session, results=batch, metrics=METRICS)

    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(store, batches))
    return len(rows) / (time.perf_counter() - started)


def redis_messages_per_s(url: str, count: int = 20_000, batch: int = 100) -> float:
    """Task-sized messages pushed and popped per second through one pipelined connection on a
    private key: what Redis carries, not one round trip's latency."""
    client = redis.Redis.from_url(url)
    key = f"aixaudit-capacity-{uuid.uuid4().hex}"
    message = b"x" * REDIS_MESSAGE_BYTES
    try:
        started = time.perf_counter()
        for _ in range(count // batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(batch):
                pipe.lpush(key, message)
            for _ in range(batch):
                pipe.rpop(key)
            pipe.execute()
        return 2 * count / (time.perf_counter() - started)  # each message is sent and received
    finally:
        client.delete(key)
        client.close()


def size(args: argparse.Namespace, m: Measured) -> None:
    """What a night of N repositories x P points needs, and what each resource sustains."""
    points = args.repos * args.points
    window_s = args.window_h * 3600
    needed_rate = points / window_s  # completions/s to finish within the window
    chunk = Settings().chunk_size
    plan_cpu_s = args.repos * args.files * m.plan_cpu_per_file_s
    demand = {
        "GPUs": needed_rate / args.gpu_rate,
        "worker cores": needed_rate * m.client_cpu_per_point_s + plan_cpu_s / window_s,
        "database rows/s": needed_rate * m.rows_per_result,
        "Redis messages/s": needed_rate / chunk * MESSAGES_PER_CHUNK,
    }
    # Points/s each resource sustains with what is given (planning's cores taken first).
    spare_cores = max(0.0, args.cores - plan_cpu_s / window_s)
    sustained = {
        "GPUs": args.gpus * args.gpu_rate,
        "worker cores": spare_cores / m.client_cpu_per_point_s,
        "database rows/s": m.result_writes_per_s,
        "Redis messages/s": m.redis_messages_per_s / MESSAGES_PER_CHUNK * chunk,
    }
    print(
        f"measured: planning {m.plan_cpu_per_file_s * 1000:.1f} ms CPU a file "
        f"({m.extraction_mb_s:.2f} MB of source per CPU second); client "
        f"{m.client_cpu_per_point_s * 1000:.1f} ms CPU a point; the store "
        f"{m.result_writes_per_s:.0f} results/s from {args.writers} writers "
        f"({m.rows_per_result} rows each); Redis {m.redis_messages_per_s:.0f} messages/s "
        "(one pipelined connection)"
    )
    print(
        f"\nnight: {args.repos} repositories x {args.points} points = {points:,} points, "
        f"{args.files} files a repository, in {args.window_h:g} h: {needed_rate:.1f} points/s"
    )
    print(
        f"GPU hours: {points / args.gpu_rate / 3600:.1f} at {args.gpu_rate:g} completions/s a GPU"
    )
    print(f"GPUs for the window: {math.ceil(demand['GPUs'])}")
    print(f"worker cores for the window: {math.ceil(demand['worker cores'])}")
    print(
        f"database: {demand['database rows/s']:.0f} rows/s "
        f"({needed_rate:.1f} results/s; it stores {m.result_writes_per_s:.0f} results/s)"
    )
    print(f"Redis: {demand['Redis messages/s']:.1f} messages/s (chunks of {chunk} points)")
    print(
        f"\nwith {args.gpus} GPUs and {args.cores} worker cores, points/s each resource sustains:"
    )
    for name, rate in sorted(sustained.items(), key=lambda item: item[1]):
        print(f"  {name:18} {rate:10.1f}")
    first = min(sustained, key=lambda name: sustained[name])
    hours = points / sustained[first] / 3600
    print(f"saturates first: {first}; the night then takes {hours:.1f} h")
    print(f"({os.cpu_count()} cores here, load average {os.getloadavg()[0]:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gpu-rate", type=float, required=True, help="completions/s a GPU")
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=200, help="points a repository")
    parser.add_argument("--files", type=int, default=1000, help="files a repository")
    parser.add_argument("--window-h", type=float, default=8.0, help="the night's length")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--cores", type=int, default=32, help="worker cores")
    parser.add_argument("--sample-files", type=int, default=200)
    parser.add_argument("--sample-points", type=int, default=200)
    parser.add_argument("--writers", type=int, default=4, help="concurrent result writers")
    parser.add_argument("--db-url", default=None, help="default: a SQLite file in a temp dir")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aixaudit-capacity-") as tmp:
        work = Path(tmp)
        args.db_url = args.db_url or f"sqlite:///{work / 'capacity.db'}"
        size(args, measure(args, work))


if __name__ == "__main__":
    main()
