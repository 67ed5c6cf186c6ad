"""Result writes against the database's own speed: `queries.add_results` (upsert, once per
point) vs a raw SQLAlchemy Core bulk insert of the same rows (suggestions with RETURNING of
their ids, then their scores), one transaction per batch each, as the audit stores answers.
Prints the ratio of rows/s, ours / raw (target >= 0.5), on SQLite and PostgreSQL.

Each round writes a fresh run's points once with each writer, in alternating order; the
ratio is the median over the rounds.

    .venv/bin/python benchmarks/writes.py [--points 2048] [--batch 16] [--rounds 3]

Needs PostgreSQL at 127.0.0.1:5432 (trust auth); the database aixaudit_bench_writes is
created and dropped. The SQLite file lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from queries import database  # benchmarks/ is the script's path
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit.scoring import METRICS
from aixaudit.store import queries
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import Metric, Point, Score, Suggestion

DATABASE = "aixaudit_bench_writes"
Writer = Callable[[list[dict[str, Any]]], None]


def postgresql() -> contextlib.AbstractContextManager[str]:
    return database(DATABASE)  # the same scratch database as benchmarks/queries.py makes


def planned(sessions: sessionmaker[Session], *, points: int, origin: str) -> list[int]:
    """A run of `points` points in one file; returns their ids."""
    with sessions.begin() as session:
        repository = queries.get_or_create_repository(session, origin=origin, name="bench")
        run = queries.create_run(
            session, repository_id=repository.id, ref=None, commit=None, profile="aixcoder",
            config={}, acceptance_rule={},
        )  # fmt: skip
        files = queries.add_files(session, run_id=run.id, files=[{"path": "a.py", "size": 1}])
        rows = [
            {
                "file_id": files["a.py"],
                "key": f"p{n}",
                "kind": "call",
                "node_type": "call",
                "start_byte": n,
                "end_byte": n + 1,
                "start_line": n,
                "end_line": n,
                "original": "f(x)",
            }
            for n in range(points)
        ]
        queries.add_points(session, run_id=run.id, points=rows)
        stmt = select(Point.id).where(Point.run_id == run.id).order_by(Point.id)
        return list(session.scalars(stmt))


def results(run_point_ids: list[int], run_id: int) -> list[dict[str, Any]]:
    """Answered, scored results as the audit writes them (every metric)."""
    return [
        {
            "point_id": point_id,
            "run_id": run_id,
            "raw_text": "f(x)\n",
            "text": "f(x)",
            "prompt_tokens": 900,
            "output_tokens": 4,
            "latency_ms": 80.0,
            "queued_ms": 0.5,
            "max_new_tokens": 64,
            "prompt_truncated": False,
            "attempts": 1,
            "error": None,
            "accepted": True,
            "lines_suggested": 1,
            "lines_accepted": 1,
            "chars_suggested": 4,
            "chars_accepted": 4,
            "scores": dict.fromkeys(METRICS, 1.0),
        }
        for point_id in run_point_ids
    ]


def ours(sessions: sessionmaker[Session]) -> Writer:
    def write(batch: list[dict[str, Any]]) -> None:
        with sessions.begin() as session:
            queries.add_results(session, results=batch, metrics=METRICS)

    return write


def raw(engine: Engine) -> Writer:
    """The least any writer must do: insert the suggestions, learn their ids, insert scores."""

    def write(batch: list[dict[str, Any]]) -> None:
        rows = [{k: v for k, v in r.items() if k != "scores"} for r in batch]
        with engine.begin() as connection:  # a Connection: Core, whatever the statement names
            stmt = insert(Suggestion).returning(Suggestion.id, sort_by_parameter_order=True)
            ids = connection.execute(stmt, rows).scalars().all()
            scores = [
                {"suggestion_id": i, "metric_name": n, "metric_version": METRICS[n].version}
                | {"value": value}
                for i, result in zip(ids, batch, strict=True)
                for n, value in result["scores"].items()
            ]
            connection.execute(insert(Score), scores)

    return write


def timed(write: Writer, rows: list[dict[str, Any]], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        write(rows[start : start + batch])
    return time.perf_counter() - started


def measure(url: str, *, points: int, batch: int, rounds: int) -> list[float]:
    """The ratio ours / raw in rows/s, per round."""
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    writers = {"ours": ours(sessions), "raw": raw(engine)}
    with engine.begin() as connection:  # both writers find the metrics registered
        rows = [
            {"definition": m.definition, "higher_is_better": m.higher_is_better}
            | {"name": m.name, "version": m.version}
            for m in METRICS.values()
        ]
        connection.execute(insert(Metric), rows)
    ratios = []
    try:
        for number in range(rounds):
            seconds = {}
            order = ["ours", "raw"] if number % 2 else ["raw", "ours"]
            for name in order:
                point_ids = planned(sessions, points=points, origin=f"/{number}/{name}")
                with sessions() as session:
                    run_id = session.scalar(select(Point.run_id).where(Point.id == point_ids[0]))
                seconds[name] = timed(writers[name], results(point_ids, int(run_id or 0)), batch)
            ratios.append(seconds["raw"] / seconds["ours"])
            rate = points / seconds["ours"]
            print(f"    round {number + 1}: ours {rate:,.0f} rows/s, ratio {ratios[-1]:.2f}")
    finally:
        engine.dispose()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2048, help="results per writer and round")
    parser.add_argument("--batch", type=int, default=16, help="results per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    options = {"points": args.points, "batch": args.batch, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as directory, postgresql() as pg_url:
        for name, url in (("SQLite", f"sqlite:///{directory}/bench.db"), ("PostgreSQL", pg_url)):
            print(f"{name}, batches of {args.batch}, {len(METRICS)} scores per result:")
            ratio = statistics.median(measure(url, **options))
            verdict = "ok" if ratio >= 0.5 else "UNDER 0.5"
            print(f"  result writes / raw Core bulk insert: {ratio:.2f}x (median)  {verdict}")
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
