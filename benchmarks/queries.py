"""The dashboard's endpoints on a store of a year of nightly runs: p50/p95 of each, as the store
grows (target p95 < 100 ms, flat).

Fills a PostgreSQL database of its own with runs of `--points` suggestions each (all metrics
scored, as an audit scores them) over `--repositories` repositories, one run per repository
per night, by COPY; finishes each run with `lifecycle.finish`, as an audit does (its rollup,
and its comparison with the repository's previous run, kept for the dashboard), and times
that; then starts the real `aixaudit api` on it and times, over HTTP, every endpoint the
dashboard calls: the runs list, a run's report with intervals, a suggestions page deep in a
run (by offset and by cursor), a repository's trend by run and by day, and the comparison of
two runs. The store is measured at each of `--sizes` (runs in total): 10 runs of 10,000
(100k), 20 (the first pairs to compare: a repository's second night) and 100 (1M).

    .venv/bin/python benchmarks/queries.py [--sizes 10,20,100] [--points 10000] [--requests 30]

Needs PostgreSQL at 127.0.0.1:5432 (trust auth); the database aixaudit_bench_queries is
created and dropped.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from aixaudit import lifecycle
from aixaudit.config import get_settings
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.spans import SpanKind
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import RunStatus

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "aixaudit_bench_queries"
AIXAUDIT = Path(sys.executable).with_name("aixaudit")
LANGUAGES = (("python", "py"), ("java", "java"), ("go", "go"))
KINDS = [kind.value for kind in SpanKind]
PER_FILE = 20
TARGET_MS = 100.0
EPOCH = datetime(2026, 1, 1, 2, tzinfo=UTC)


@contextmanager
def database(name: str = DATABASE) -> Iterator[str]:
    """A fresh database `name` of our own, dropped at the end; yields its URL."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def _copy(connection: psycopg.Connection, table: str, columns: str, lines: io.StringIO) -> None:
    with connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(lines.getvalue())


@dataclass
class Ids:
    """The next id of each table: rows are written with their ids, so scores need no lookup."""

    run: int = 1
    file: int = 1
    point: int = 1


def _add_run(
    connection: psycopg.Connection, ids: Ids, *, repository: int, night: int, points: int
) -> int:
    """One finished run of `points` points, answered and scored, in one COPY per table."""
    draw = random.Random(ids.run)
    run_id = ids.run
    created = EPOCH + timedelta(days=night, minutes=repository)
    rule = json.dumps(AcceptanceRule().to_dict())
    connection.execute(
        "INSERT INTO runs (id, repository_id, ref, commit, status, profile, config,"
        " acceptance_rule, created_at, started_at, finished_at, points_total, fingerprint,"
        " model, distributed) VALUES (%s, %s, 'main', %s, 'running', 'aixcoder', %s, %s, %s,"
        " %s, NULL, %s, 'bench', 'aixcoder-7b', true)",
        (
            run_id, repository, f"{repository:040x}", json.dumps({"context": "none"}), rule,
            created, created, points,
        ),
    )  # fmt: skip
    files, point_rows, suggestion_rows, score_rows = (io.StringIO() for _ in range(4))
    versions = {name: metric.version for name, metric in METRICS.items()}
    for number in range(points // PER_FILE):
        language, extension = LANGUAGES[number % len(LANGUAGES)]
        path = f"src/module_{number:05d}.{extension}"
        files.write(f"{ids.file}\t{run_id}\t{path}\t{language}\t4096\t{number:064x}\n")
        for n in range(PER_FILE):
            kind = KINDS[(number + n) % len(KINDS)]
            start = 100 * n
            point_rows.write(
                f"{ids.point}\t{run_id}\t{ids.file}\t{path}:{start}:{start + 40}:{kind}\t{kind}"
                f"\tblock\t{start}\t{start + 40}\t{2 * n}\t{2 * n + 1}\treturn value + {n}\n"
            )
            es = draw.random()
            if draw.random() < 0.01:  # every request for the point failed
                suggestion_rows.write(
                    f"{ids.point}\t{ids.point}\t{run_id}\t\\N\t\\N\t900\t\\N\t\\N\t\\N\t64\tf\t3"
                    f'\t["timed out", "timed out"]\ttimed out\tf\t0\t0\t0\t0\t{created}\tf\n'
                )
            else:
                accepted = es >= 0.8
                suggestion_rows.write(
                    f"{ids.point}\t{ids.point}\t{run_id}\treturn value + {n}\treturn value"
                    f"\t900\t12\t{40 + 200 * es:.1f}\t{draw.random():.2f}\t64\tf\t1\t\\N\t\\N"
                    f"\t{'t' if accepted else 'f'}\t1\t{int(accepted)}\t12\t{12 * accepted}"
                    f"\t{created}\tf\n"
                )
                for name, version in versions.items():
                    value = float(es > 0.95) if name.startswith("exact") else es
                    score_rows.write(f"{ids.point}\t{name}\t{version}\t{value}\n")
            ids.point += 1
        ids.file += 1
    _copy(connection, "files", "id, run_id, path, language, size, sha256", files)
    _copy(
        connection,
        "points",
        "id, run_id, file_id, key, kind, node_type, start_byte, end_byte, start_line, end_line,"
        " original",
        point_rows,
    )
    _copy(
        connection,
        "suggestions",
        "id, point_id, run_id, raw_text, text, prompt_tokens, output_tokens, latency_ms,"
        " queued_ms, max_new_tokens, prompt_truncated, attempts, retries, error, accepted,"
        " lines_suggested, lines_accepted, chars_suggested, chars_accepted, created_at, reused",
        suggestion_rows,
    )
    _copy(connection, "scores", "suggestion_id, metric_name, metric_version, value", score_rows)
    ids.run += 1
    return run_id


def fill(url: str, ids: Ids, *, runs: int, repositories: int, points: int) -> list[int]:
    """Add runs until there are `runs`, one per repository per night; returns the new ones."""
    added = []
    with psycopg.connect(url) as connection:
        # The generated rows are consistent: skip the per-row foreign key triggers of the load.
        connection.execute("SET session_replication_role = replica")
        if ids.run == 1:
            for repository in range(1, repositories + 1):
                connection.execute(
                    "INSERT INTO repositories (id, origin, name, created_at) VALUES (%s, %s, %s,"
                    " %s)",
                    (repository, f"https://git.example/r{repository}.git", f"r{repository}", EPOCH),
                )
            connection.cursor().executemany(
                "INSERT INTO metrics (name, version, definition, higher_is_better) VALUES"
                " (%s, %s, %s, %s)",
                [(m.name, m.version, m.definition, m.higher_is_better) for m in METRICS.values()],
            )
        while ids.run <= runs:
            night, repository = divmod(ids.run - 1, repositories)
            added.append(
                _add_run(connection, ids, repository=repository + 1, night=night, points=points)
            )
        for table in ("repositories", "runs", "files", "points", "suggestions"):
            connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ANALYZE")
    return added


def finish(url: str, run_ids: list[int]) -> float:
    """Finish each run as an audit does (`lifecycle.finish`: status, rollup, comparison with
    the previous run); seconds per run."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    threshold = get_settings().regression_threshold
    started = time.perf_counter()
    try:
        for run_id in run_ids:
            status = lifecycle.finish(sessions, run_id=run_id, threshold=threshold)
            assert status is RunStatus.PARTIAL, status  # 1% of the points failed
    finally:
        engine.dispose()
    return (time.perf_counter() - started) / len(run_ids)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def api(url: str) -> Iterator[str]:
    """`aixaudit api` on the database; yields its base URL."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")} | {
            "AIXAUDIT_DATA_DIR": home,
            "AIXAUDIT_DATABASE_URL": url,
        }
        process = subprocess.Popen(
            [str(AIXAUDIT), "api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


def endpoints(runs: int, repositories: int, points: int) -> dict[str, list[str]]:
    """Each dashboard endpoint's requests, spread over the store's runs and repositories."""
    last_night = range(runs - repositories + 1, runs + 1)
    deep = points * 9 // 10
    repos = range(1, repositories + 1)
    # Compared: a repository's last two runs (same commit, same points).
    pairs = [(run - repositories, run) for run in last_night if run - repositories >= 1]
    return {
        "runs list": ["/api/runs?limit=200"],
        "run report": [f"/api/runs/{run}" for run in range(1, runs + 1)],
        "suggestions page": [f"/api/runs/{run}/suggestions?offset={deep}" for run in last_night],
        # The same pages by cursor: the point before each (a run's point ids are in file order).
        "... by cursor": [
            f"/api/runs/{run}/suggestions?after={(run - 1) * points + deep}" for run in last_night
        ],
        "trend by run": [f"/api/repositories/{r}/trend?by=run" for r in repos],
        "trend by day": [f"/api/repositories/{r}/trend?by=day" for r in repos],
        "compare": [f"/api/compare?a={a}&b={b}" for a, b in pairs] or [],
    }


def time_endpoints(base: str, paths: dict[str, list[str]], requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        for name, urls in paths.items():
            if not urls:
                continue
            client.get(urls[0]).raise_for_status()  # warm: connections, plans
            found = []
            for number in range(requests):
                started = time.perf_counter()
                client.get(urls[number % len(urls)]).raise_for_status()
                found.append(1000 * (time.perf_counter() - started))
            timings[name] = found
    return timings


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,20,100", help="runs in the store at each step")
    parser.add_argument("--points", type=int, default=10_000, help="suggestions per run")
    parser.add_argument("--repositories", type=int, default=10)
    parser.add_argument("--requests", type=int, default=30, help="per endpoint and size")
    parser.add_argument("--database", default=DATABASE, help="created and dropped")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    results: dict[int, dict[str, list[float]]] = {}
    with database(args.database) as url:
        upgrade(url)
        ids = Ids()
        for size in sizes:
            started = time.perf_counter()
            added = fill(url, ids, runs=size, repositories=args.repositories, points=args.points)
            loaded = time.perf_counter() - started
            per_run = finish(url, added)
            stored = size * args.points
            print(
                f"{stored:>9,} suggestions: loaded {len(added)} runs in {loaded:.1f} s; finish"
                f" (rollup, comparison) {per_run:.2f} s per {args.points:,}-point run; load"
                f" {os.getloadavg()[0]:.2f}"
            )
            with api(url) as base:
                paths = endpoints(size, args.repositories, args.points)
                results[size] = time_endpoints(base, paths, args.requests)
            print(f"  timed at load {os.getloadavg()[0]:.2f} (1 min)")
            for name, found in results[size].items():
                p50, p95 = percentile(found, 0.5), percentile(found, 0.95)
                verdict = "ok" if p95 < TARGET_MS else f"OVER {TARGET_MS:.0f} ms"
                print(f"  {name:<18} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {verdict}")
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
