"""The HTTP API and the dashboard page, as users run them: a real uvicorn started by
`aixaudit api` on a database seeded with the store's own functions (points planned from the
polyglot fixture, hand-made results, so every number is computed by hand here), queried with
httpx on SQLite and on PostgreSQL with read and write tokens; the page rendered by a real headless
Chromium, and driven by it (typing the token) over the DevTools protocol."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
import redis
from devtools import chromium as devtools_chromium
from paths import POLYGLOT
from sqlalchemy import select

from aixaudit import audit, incremental, jobs, sources
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.store import queries, rollups
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import File, Point, Repository

pytestmark = pytest.mark.services  # a real uvicorn server, Redis, Chromium

AIXAUDIT = Path(sys.executable).with_name("aixaudit")
OTHER_ORIGIN = "git@example.com:team/other.git"
REDIS_URL = "redis://127.0.0.1:6379/0"
UNREACHABLE = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
READ_TOKEN = "read-token-for-tests"
WRITE_TOKEN = "write-token-for-tests"
TOKENS = {"AIXAUDIT_API_TOKENS": f"read:{READ_TOKEN},write:{WRITE_TOKEN}"}
TOO_BIG = 2**64  # past any 64-bit integer column

# Hand-made results, one per point in id order:
# (accepted, exact_match, es_rapidfuzz, lines suggested, lines accepted, chars suggested,
#  chars accepted)
Result = tuple[bool, float, float, int, int, int, int]
FIRST: list[Result] = [
    (True, 1, 1.0, 2, 2, 40, 40),
    (True, 0, 0.9, 1, 1, 20, 20),
    (False, 0, 0.5, 3, 0, 30, 0),
    (False, 0, 0.2, 2, 0, 10, 0),
]
SECOND: list[Result] = [
    (True, 1, 1.0, 1, 1, 10, 10),
    (True, 1, 1.0, 1, 1, 10, 10),
    (True, 0, 0.8, 1, 1, 10, 10),
    (False, 0, 0.4, 1, 0, 10, 0),
]
THIRD: list[Result | None] = [(False, 0, 0.5, 2, 0, 20, 0), (False, 0, 0.3, 2, 0, 20, 0), None]
OTHER: list[Result] = [(True, 1, 1.0, 1, 1, 5, 5)]
LATENCY_MS = 100.0
COMPARED_ORIGIN = "/srv/compared"
COMPARED_POINTS = 40  # the polyglot fixture has 40 points at 8 per file
FAILED_IN_A, FAILED_IN_B = 3, 5  # each run of the comparison lost one point to errors


def compared(run: str, number: int) -> Result | None:
    """The comparison's results by point number, a pattern of period 4: A accepts every other
    point, B three in four; ES of A by number % 4 is 1.0, 0.3, 0.8, 0.3, of B 1.0, 0.8, 1.0, 0.2."""
    if number == (FAILED_IN_A if run == "a" else FAILED_IN_B):
        return None
    phase = number % 4
    if run == "a":
        return (phase % 2 == 0, float(phase == 0), (1.0, 0.3, 0.8, 0.3)[phase], 1, 1, 10, 10)
    return (phase != 3, float(phase % 2 == 0), (1.0, 0.8, 1.0, 0.2)[phase], 1, 1, 10, 10)


@dataclass(frozen=True)
class Seeded:
    # first, second, third (polyglot, finished), pending (polyglot), other, a and b (compared)
    runs: dict[str, int]
    repositories: dict[str, int]  # polyglot, other, compared
    points: dict[str, list[tuple[int, str, str]]]  # run name -> (point id, language, kind)


def seed(url: str) -> Seeded:
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)

    def plan(origin: str, points: int, created: datetime) -> int:
        checkout = sources.Checkout(root=POLYGLOT, origin=origin, commit="c0ffee", ref="main")
        options = audit.AuditOptions(max_points=points, per_file=8 if points > 4 else 3)
        run_id = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
        with sessions.begin() as session:
            run = queries.get_run(session, run_id=run_id)
            run.created_at = created
            run.fingerprint = "seeded"  # one model and options: runs compare with the previous
        return run_id

    def answer(run_id: int, results: list[Result | None], status: str, tag: str = "") -> None:
        with sessions.begin() as session:
            points = session.execute(
                select(Point.id, Point.original).where(Point.run_id == run_id).order_by(Point.id)
            ).all()
            rows = [
                row(run_id, point_id, number, result, original if tag else None, tag)
                for number, ((point_id, original), result) in enumerate(
                    zip(points, results, strict=True)
                )
            ]
            queries.add_results(session, results=rows, metrics=METRICS)
            queries.set_run_status(session, run_id=run_id, status=status)
            rollups.refresh(session, run_id=run_id)  # as audit.finish_run does

    try:
        runs = {
            "first": plan(str(POLYGLOT), 4, datetime(2025, 1, 1, 2, tzinfo=UTC)),
            "second": plan(str(POLYGLOT), 4, datetime(2025, 1, 2, 2, tzinfo=UTC)),
            "third": plan(str(POLYGLOT), 3, datetime(2025, 1, 2, 3, tzinfo=UTC)),
            "pending": plan(str(POLYGLOT), 2, datetime(2025, 1, 4, 2, tzinfo=UTC)),
            "other": plan(OTHER_ORIGIN, 1, datetime(2025, 1, 3, 2, tzinfo=UTC)),
            "a": plan(COMPARED_ORIGIN, COMPARED_POINTS, datetime(2024, 12, 1, 2, tzinfo=UTC)),
            "b": plan(COMPARED_ORIGIN, COMPARED_POINTS, datetime(2024, 12, 2, 2, tzinfo=UTC)),
        }
        for name in ("a", "b"):
            results = [compared(name, number) for number in range(COMPARED_POINTS)]
            answer(runs[name], results, "done", tag=f"model {name.upper()}")
        answer(runs["first"], list(FIRST), "done")
        answer(runs["second"], list(SECOND), "done")
        answer(runs["third"], THIRD, "partial")
        answer(runs["other"], list(OTHER), "done")
        for name in ("first", "second", "third", "a", "b"):
            incremental.compare_with_previous(sessions, run_id=runs[name], threshold=0.05)
        with sessions() as session:
            repositories = dict(session.execute(select(Repository.name, Repository.id)).all())
            points = {
                name: [
                    tuple(p)
                    for p in session.execute(
                        select(Point.id, File.language, Point.kind)
                        .join(File, Point.file_id == File.id)
                        .where(Point.run_id == run_id)
                        .order_by(Point.id)
                    )
                ]
                for name, run_id in runs.items()
            }
    finally:
        engine.dispose()
    return Seeded(runs=runs, repositories=repositories, points=points)  # type: ignore[arg-type]


def row(
    run_id: int,
    point_id: int,
    number: int,
    result: Result | None,
    original: str | None = None,
    tag: str = "",
) -> dict[str, Any]:
    """A Suggestion row as the audit writes it; None: every request failed. With the point's
    original, the text is the original where it matched exactly, else its first line and a
    line of the `tag`'s own (so a diff has something to show)."""
    if result is None:
        return {
            "point_id": point_id, "run_id": run_id, "raw_text": None, "text": None,
            "prompt_tokens": 10, "latency_ms": None, "attempts": 3, "error": "timed out",
            "accepted": False, "lines_suggested": 0, "lines_accepted": 0,
            "chars_suggested": 0, "chars_accepted": 0, "scores": {},
        }  # fmt: skip
    accepted, em, es, lines, lines_ok, chars, chars_ok = result
    text = f"suggestion {number}"
    if original is not None:
        text = original if em else f"{original.splitlines()[0]}\n    return None  # {tag}"
    return {
        "point_id": point_id, "run_id": run_id, "raw_text": f"raw {number}",
        "text": text, "prompt_tokens": 10, "latency_ms": LATENCY_MS,
        "attempts": 1, "error": None, "accepted": accepted, "lines_suggested": lines,
        "lines_accepted": lines_ok, "chars_suggested": chars, "chars_accepted": chars_ok,
        "scores": {"exact_match": em, "es_rapidfuzz": es},
    }  # fmt: skip


@dataclass(frozen=True)
class Server:
    url: str
    db_url: str
    seeded: Seeded
    key_prefix: str  # of this module's Redis keys

    def get(self, path: str, *, token: str | None = READ_TOKEN, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=bearer(token), timeout=30)

    def post(
        self, path: str, body: Any = None, *, token: str | None = WRITE_TOKEN
    ) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=bearer(token), timeout=30)

    def ok(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def api_process(
    *,
    db_url: str,
    home: Path,
    key_prefix: str,
    broker_url: str = REDIS_URL,
    result_backend: str = REDIS_URL,
    settings: dict[str, str] | None = None,
) -> Iterator[str]:
    """`aixaudit api` on a free loopback port until the block ends; yields its base URL.
    `settings`: more AIXAUDIT_* variables (e.g. TOKENS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")} | {
        "AIXAUDIT_DATA_DIR": str(home / "data"),
        "AIXAUDIT_DATABASE_URL": db_url,
        "AIXAUDIT_BROKER_URL": broker_url,
        "AIXAUDIT_RESULT_BACKEND": result_backend,
        "AIXAUDIT_CELERY_KEY_PREFIX": key_prefix,
        "AIXAUDIT_ALLOWED_ROOTS": "/srv",  # the local paths the tests post lie there
        **(settings or {}),
    }
    port = free_port()
    log_path = home / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(AIXAUDIT), "api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/openapi.json"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"aixaudit api did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{key_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API on the seeded database with a read and a write token, for the whole module."""
    seeded = seed(module_db_url)
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    home = tmp_path_factory.mktemp("api")
    with api_process(db_url=module_db_url, home=home, key_prefix=prefix, settings=TOKENS) as url:
        yield Server(url=url, db_url=module_db_url, seeded=seeded, key_prefix=prefix)


@pytest.fixture(scope="module")
def open_reads(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API on the same database with the same tokens, its reads open to all."""
    settings = TOKENS | {"AIXAUDIT_API_OPEN_READS": "true"}
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    home = tmp_path_factory.mktemp("api-open-reads")
    with api_process(db_url=server.db_url, home=home, key_prefix=prefix, settings=settings) as url:
        yield Server(url=url, db_url=server.db_url, seeded=server.seeded, key_prefix=prefix)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# -- the API ----------------------------------------------------------------------------------


def test_runs_are_listed_latest_first_with_their_numbers(server: Server) -> None:
    runs = server.seeded.runs
    seeded = {run_id: name for name, run_id in runs.items()}
    listed = [run for run in server.ok("/api/runs") if run["id"] in seeded]
    assert [seeded[run["id"]] for run in listed] == [
        "pending", "other", "third", "second", "first", "b", "a",
    ]  # fmt: skip
    assert [
        (r["status"], r["name"], r["ref"], r["suggestions"], r["points_total"], r["errors"])
        for r in listed
    ] == [
        ("pending", "polyglot", "main", 0, 2, 0),
        ("done", "other", "main", 1, 1, 0),
        ("partial", "polyglot", "main", 2, 3, 1),
        ("done", "polyglot", "main", 4, 4, 0),
        ("done", "polyglot", "main", 4, 4, 0),
        ("done", "compared", "main", 39, 40, 1),
        ("done", "compared", "main", 39, 40, 1),
    ]
    assert [r["accepted"] for r in listed][:5] == [0, 1, 0, 3, 2]
    assert [r["acceptance_rate"] for r in listed][:5] == [None, 1.0, 0.0, 0.75, 0.5]
    # third's acceptance rate fell from 100% to 0% on both pairs (from two files); second's
    # rose; first had nothing before it; b beat a.
    assert [r["regression"] for r in listed] == [None, None, True, False, None, False, None]
    # Wilson 95% intervals, n = suggestions: 3 of 4 is (0.301, 0.954), 0 of 2 is (0, 0.658).
    intervals = [r["acceptance_interval"] for r in listed]
    assert intervals[0] is None
    assert intervals[3] == {"low": pytest.approx(0.30064, abs=1e-5),
                            "high": pytest.approx(0.95441, abs=1e-5), "n": 4}  # fmt: skip
    assert intervals[2] == {"low": 0.0, "high": pytest.approx(0.65762, abs=1e-5), "n": 2}

    other = server.seeded.repositories["other"]
    assert [r["id"] for r in server.ok("/api/runs", repository=other)] == [runs["other"]]
    assert len(server.ok("/api/runs", limit=2)) == 2


def expected_breakdown(
    points: list[tuple[int, str, str]], results: list[Result | None], key: str
) -> dict[str, Any]:
    """A breakdown row computed here from the hand-made results (None: a failed request)."""
    answered = [r for r in results if r is not None]
    accepted = sum(r[0] for r in answered)
    return {
        "key": key,
        "intervals": ANY,  # see test_headline_numbers_carry_intervals
        "points": len(points),
        "suggestions": len(answered),
        "errors": len(results) - len(answered),
        "accepted": accepted,
        "acceptance_rate": accepted / len(answered) if answered else None,
        "lines_suggested": sum(r[3] for r in answered),
        "lines_accepted": sum(r[4] for r in answered),
        "chars_suggested": sum(r[5] for r in answered),
        "chars_accepted": sum(r[6] for r in answered),
        "mean_latency_ms": LATENCY_MS if answered else None,
        "metrics": {
            "es_rapidfuzz": pytest.approx(sum(r[2] for r in answered) / len(answered)),
            "exact_match": pytest.approx(sum(r[1] for r in answered) / len(answered)),
        }
        if answered
        else {},
    }


def test_a_run_report_has_totals_breakdowns_definitions_and_deltas(server: Server) -> None:
    report = server.ok(f"/api/runs/{server.seeded.runs['second']}")
    assert report["totals"] == {
        "key": "all", "points": 4, "suggestions": 4, "errors": 0, "accepted": 3,
        "acceptance_rate": 0.75, "lines_suggested": 4, "lines_accepted": 3,
        "chars_suggested": 40, "chars_accepted": 30, "mean_latency_ms": LATENCY_MS,
        "metrics": {"es_rapidfuzz": pytest.approx(0.8), "exact_match": 0.5}, "intervals": ANY,
    }  # fmt: skip
    points = server.seeded.points["second"]
    for field, index in (("by_language", 1), ("by_kind", 2)):
        groups = sorted({point[index] for point in points})
        assert report[field] == [
            expected_breakdown(
                [p for p in points if p[index] == group],
                [r for p, r in zip(points, SECOND, strict=True) if p[index] == group],
                str(group),
            )
            for group in groups
        ]
    assert report["metrics"] == [
        {"name": name, "version": METRICS[name].version, "definition": METRICS[name].definition,
         "higher_is_better": METRICS[name].higher_is_better}
        for name in ("es_rapidfuzz", "exact_match")
    ]  # fmt: skip
    assert report["acceptance_rule"] == AcceptanceRule().to_dict()
    assert report["config"]["max_points"] == 4
    scanned = list(sources.scan(POLYGLOT))
    assert report["files"] == len(scanned)
    skipped = Counter(f.skip_reason.value for f in scanned if f.skip_reason is not None)
    assert report["skipped"] == dict(skipped) and report["skipped"]
    assert report["baseline_run_id"] == server.seeded.runs["first"]
    assert {d["metric"]: (d["baseline"], d["value"], d["regressed"]) for d in report["deltas"]} == {
        "acceptance_rate": (0.5, 0.75, False),
        "exact_match": (0.25, 0.5, False),
        "es_rapidfuzz": (pytest.approx(0.65), pytest.approx(0.8), False),
    }

    third = server.ok(f"/api/runs/{server.seeded.runs['third']}")
    assert third["totals"] == expected_breakdown(server.seeded.points["third"], THIRD, "all")
    # Both pairs dropped in acceptance (1 to 0) and ES; exact match fell on one pair only (1 to
    # 0, and 0 to 0), so its interval reaches 0: not a significant drop.
    deltas = {d["metric"]: d for d in third["deltas"]}
    assert [name for name, d in deltas.items() if d["regressed"]] == [
        "acceptance_rate", "es_rapidfuzz",
    ]  # fmt: skip
    assert (deltas["exact_match"]["delta_low"], deltas["exact_match"]["delta_high"]) == (-1, 0)
    assert {d["pairs"] for d in third["deltas"]} == {2}


def test_suggestions_are_paged_in_file_order_with_scores(server: Server) -> None:
    run_id = server.seeded.runs["first"]
    first = server.ok(f"/api/runs/{run_id}/suggestions", limit=3)
    rest = server.ok(f"/api/runs/{run_id}/suggestions", limit=3, offset=3)
    assert (first["total"], first["offset"], first["limit"], len(first["items"])) == (4, 0, 3, 3)
    assert (rest["total"], rest["offset"], len(rest["items"])) == (4, 3, 1)
    assert server.ok(f"/api/runs/{run_id}/suggestions", limit=3, after=first["next_after"]) == rest
    assert rest["next_after"] is None
    items = first["items"] + rest["items"]
    assert [(i["path"], i["start_line"]) for i in items] == sorted(
        (i["path"], i["start_line"]) for i in items
    )
    point_ids = [point[0] for point in server.seeded.points["first"]]
    assert sorted(i["point_id"] for i in items) == point_ids
    for item in items:
        number = point_ids.index(item["point_id"])
        accepted, em, es, lines, _, _, chars_ok = FIRST[number]
        assert item["suggestion"] == f"suggestion {number}"
        assert item["raw_text"] == f"raw {number}"
        assert (item["accepted"], item["error"], item["reused"]) == (accepted, None, False)
        assert item["scores"] == {"es_rapidfuzz": pytest.approx(es), "exact_match": em}
        assert (item["lines_suggested"], item["chars_accepted"]) == (lines, chars_ok)
        assert item["original"] and item["end_line"] >= item["start_line"] >= 1

    accepted = server.ok(f"/api/runs/{run_id}/suggestions", accepted="true")
    assert accepted["total"] == 2 and all(i["accepted"] for i in accepted["items"])
    python = server.ok(f"/api/runs/{run_id}/suggestions", language="python")
    languages = [point[1] for point in server.seeded.points["first"]]
    assert python["total"] == languages.count("python")

    pending = server.ok(f"/api/runs/{server.seeded.runs['pending']}/suggestions")
    assert pending["total"] == 2
    assert [(i["suggestion"], i["accepted"], i["scores"]) for i in pending["items"]] == [
        (None, None, {}),
        (None, None, {}),
    ]


def test_the_trend_per_run_follows_finished_runs(server: Server) -> None:
    repository = server.seeded.repositories["polyglot"]
    runs = server.seeded.runs
    trend = server.ok(f"/api/repositories/{repository}/trend")
    assert trend["by"] == "run"
    assert trend["repository"] == {"id": repository, "origin": str(POLYGLOT), "name": "polyglot"}
    points = trend["points"]  # the pending run is not finished: not in the trend
    assert [p["run_ids"] for p in points] == [[runs["first"]], [runs["second"]], [runs["third"]]]
    assert [p["period"][:13] for p in points] == ["2025-01-01T02", "2025-01-02T02", "2025-01-02T03"]
    assert [(p["suggestions"], p["accepted"], p["acceptance_rate"]) for p in points] == [
        (4, 2, 0.5), (4, 3, 0.75), (2, 0, 0.0),
    ]  # fmt: skip
    assert [p["metrics"] for p in points] == [
        {"exact_match": 0.25, "es_rapidfuzz": pytest.approx(0.65)},
        {"exact_match": 0.5, "es_rapidfuzz": pytest.approx(0.8)},
        {"exact_match": 0.0, "es_rapidfuzz": pytest.approx(0.4)},
    ]
    assert [
        (p["lines_suggested"], p["lines_accepted"], p["chars_suggested"], p["chars_accepted"])
        for p in points
    ] == [(8, 3, 100, 60), (4, 3, 40, 30), (4, 0, 40, 0)]
    latest = server.ok(f"/api/repositories/{repository}/trend", limit=1)["points"]
    assert [p["run_ids"] for p in latest] == [[runs["third"]]]


def test_the_trend_per_day_adds_up_the_day_s_suggestions(server: Server) -> None:
    repository = server.seeded.repositories["polyglot"]
    runs = server.seeded.runs
    points = server.ok(f"/api/repositories/{repository}/trend", by="day")["points"]
    assert [(p["period"], p["run_ids"]) for p in points] == [
        ("2025-01-01", [runs["first"]]),
        ("2025-01-02", [runs["second"], runs["third"]]),
    ]
    # 2 January: second (4 suggestions, 3 accepted) and third (2 suggestions, none accepted).
    assert [(p["suggestions"], p["accepted"], p["acceptance_rate"]) for p in points] == [
        (4, 2, 0.5), (6, 3, 0.5),
    ]  # fmt: skip
    assert points[1]["metrics"] == {
        "exact_match": pytest.approx(2 / 6),  # 1+1+0+0 and 0+0
        "es_rapidfuzz": pytest.approx((1.0 + 1.0 + 0.8 + 0.4 + 0.5 + 0.3) / 6),
    }
    assert [
        (p["lines_suggested"], p["lines_accepted"], p["chars_suggested"], p["chars_accepted"])
        for p in points
    ] == [(8, 3, 100, 60), (8, 3, 80, 30)]


def test_headline_numbers_carry_intervals(server: Server) -> None:
    """Rates get a Wilson interval, means a bootstrap interval over files, each with its n; the
    trend marks the runs flagged as regressions."""
    report = server.ok(f"/api/runs/{server.seeded.runs['second']}")
    intervals = report["totals"]["intervals"]
    assert set(intervals) == {"acceptance_rate", "exact_match", "es_rapidfuzz"}
    assert intervals["acceptance_rate"] == report["run"]["acceptance_interval"]
    for name, mean in report["totals"]["metrics"].items():
        assert intervals[name]["n"] == 4
        assert 0 <= intervals[name]["low"] <= mean <= intervals[name]["high"] <= 1
    # A group of one file has a rate interval but no bootstrap interval of its means.
    for row in report["by_language"] + report["by_kind"]:
        assert row["intervals"]["acceptance_rate"]["n"] == row["suggestions"]

    repository = server.seeded.repositories["polyglot"]
    points = server.ok(f"/api/repositories/{repository}/trend")["points"]
    assert [p["regressed_run_ids"] for p in points] == [[], [], [server.seeded.runs["third"]]]
    assert [p["intervals"]["acceptance_rate"]["n"] for p in points] == [4, 4, 2]
    assert points[1]["intervals"]["acceptance_rate"] == report["run"]["acceptance_interval"]
    # The third run's two ES values are 0.5 and 0.3, in two files: the mean of a resample of
    # files is one of 0.5, 0.4 and 0.3.
    assert points[2]["intervals"]["es_rapidfuzz"] == {
        "low": pytest.approx(0.3), "high": pytest.approx(0.5), "n": 2,
    }  # fmt: skip
    days = server.ok(f"/api/repositories/{repository}/trend", by="day")["points"]
    assert [d["intervals"]["acceptance_rate"]["n"] for d in days] == [4, 6]


def mcnemar(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value, from the binomial distribution written out."""
    n = only_a + only_b
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n)


def test_compare_pairs_the_runs_points(server: Server) -> None:
    runs = server.seeded.runs
    found = server.ok("/api/compare", a=runs["a"], b=runs["b"])
    assert (found["a"]["id"], found["b"]["id"]) == (runs["a"], runs["b"])
    assert found["a"]["commit"] == found["b"]["commit"] == "c0ffee"
    # 40 points each; A lost point 3 and B point 5: 38 pairs, 2 left out on each side.
    assert (found["pairs"], found["left_out_a"], found["left_out_b"]) == (38, 2, 2)
    paired = [n for n in range(COMPARED_POINTS) if n not in (FAILED_IN_A, FAILED_IN_B)]
    a = [compared("a", n) for n in paired]
    b = [compared("b", n) for n in paired]
    overall = found["groups"][0]
    assert (overall["grouping"], overall["key"], overall["pairs"]) == ("all", "all", 38)
    only_a = sum(x[0] and not y[0] for x, y in zip(a, b, strict=True))  # type: ignore[index]
    only_b = sum(y[0] and not x[0] for x, y in zip(a, b, strict=True))  # type: ignore[index]
    assert (overall["accepted_a_only"], overall["accepted_b_only"]) == (only_a, only_b) == (0, 9)
    assert overall["mcnemar_p"] == pytest.approx(mcnemar(0, 9)) == pytest.approx(2 / 2**9)
    assert [m["metric"] for m in overall["metrics"]] == [
        "acceptance_rate", "es_rapidfuzz", "exact_match",
    ]  # fmt: skip
    for metric, column in zip(overall["metrics"], (0, 2, 1), strict=True):
        mean_a = sum(float(x[column]) for x in a) / 38  # type: ignore[index]
        mean_b = sum(float(y[column]) for y in b) / 38  # type: ignore[index]
        assert (metric["n"], metric["a"], metric["b"]) == (
            38, pytest.approx(mean_a), pytest.approx(mean_b),
        )  # fmt: skip
        assert metric["difference"] == pytest.approx(mean_b - mean_a)
        interval = metric["interval"]
        assert interval["n"] == 38 and interval["low"] <= mean_b - mean_a <= interval["high"]
        assert interval["low"] > 0  # B is better on every number, beyond doubt
    points = {point_id: point for point_id, *point in server.seeded.points["a"]}
    for grouping, index in (("language", 0), ("kind", 1)):
        groups = [g for g in found["groups"] if g["grouping"] == grouping]
        expected = Counter(point[index] for n, point in enumerate(points.values()) if n in paired)
        assert {g["key"]: g["pairs"] for g in groups} == dict(expected)
    # The largest ES gap, 0.3 against 0.8, is at the 9 pairs numbered 1 mod 4 (B lost point 5),
    # then 0.2 (0.8 against an exact 1.0) at those numbered 2 mod 4.
    top = found["disagreements"]
    assert found["disagreement_metric"] == "es_rapidfuzz"
    assert [(d["score_a"], d["score_b"]) for d in top] == [(0.3, 0.8)] * 9 + [(0.8, 1.0)]
    assert top[-1]["text_b"] == top[-1]["reference"]
    for d in top[:9]:
        assert d["text_a"].endswith("# model A") and d["text_b"].endswith("# model B")
        assert d["text_a"].splitlines()[0] == d["reference"].splitlines()[0]
    assert len(server.ok("/api/compare", a=runs["a"], b=runs["b"], top=2)["disagreements"]) == 2


def test_compare_refuses_in_one_sentence(server: Server) -> None:
    runs = server.seeded.runs
    few = server.get("/api/compare", a=runs["first"], b=runs["second"])
    assert (few.status_code, few.json()) == (409, {"detail": (
        f"Runs {runs['first']} and {runs['second']} share 4 answered points, fewer than the 30 "
        "a comparison needs."
    )})  # fmt: skip
    elsewhere = new_pending_run(server.db_url)  # a run with no commit
    moved = server.get("/api/compare", a=runs["first"], b=elsewhere)
    assert (moved.status_code, moved.json()) == (409, {"detail": (
        f"Runs {runs['first']} and {elsewhere} audited different commits (c0ffee and -), so "
        "they share no points to pair."
    )})  # fmt: skip
    unknown = server.get("/api/compare", a=runs["a"], b=9999)
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"detail": "There is no run with id 9999."},
    )
    for params, field in (
        ({"a": runs["a"]}, "b"),
        ({"a": 0, "b": runs["b"]}, "a"),
        ({"a": runs["a"], "b": TOO_BIG}, "b"),
        ({"a": "x", "b": runs["b"]}, "a"),
        ({"a": runs["a"], "b": runs["b"], "top": 101}, "top"),
        ({"a": runs["a"], "b": runs["b"], "format": "xml"}, "format"),
    ):
        response = server.get("/api/compare", **params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["loc"][-1] == field
    assert server.get("/api/compare", token=None, a=runs["a"], b=runs["b"]).status_code == 401


def csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_tables_export_as_csv(server: Server) -> None:
    runs = server.seeded.runs
    report = server.ok(f"/api/runs/{runs['second']}")
    rows = csv_rows(server.get(f"/api/runs/{runs['second']}", format="csv"))
    tables = [("all", [report["totals"]]), ("language", report["by_language"]),
              ("kind", report["by_kind"]), ("role", report["by_role"])]  # fmt: skip
    assert [(r["grouping"], r["key"]) for r in rows] == [
        (grouping, row["key"]) for grouping, table in tables for row in table
    ]
    assert rows[0]["accepted"] == "3" and rows[0]["acceptance_rate"] == "0.75"
    low = report["totals"]["intervals"]["es_rapidfuzz"]["low"]
    assert float(rows[0]["intervals.es_rapidfuzz.low"]) == pytest.approx(low)
    assert rows[0]["metrics.exact_match"] == "0.5"

    params = {"language": "python", "limit": 2}
    page = server.ok(f"/api/runs/{runs['a']}/suggestions", **params)
    rows = csv_rows(server.get(f"/api/runs/{runs['a']}/suggestions", format="csv", **params))
    assert [int(r["point_id"]) for r in rows] == [i["point_id"] for i in page["items"]]
    assert [r["suggestion"] for r in rows] == [i["suggestion"] for i in page["items"]]
    assert [float(r["scores.es_rapidfuzz"]) for r in rows] == [
        i["scores"]["es_rapidfuzz"] for i in page["items"]
    ]

    found = server.ok("/api/compare", a=runs["a"], b=runs["b"])
    rows = csv_rows(server.get("/api/compare", a=runs["a"], b=runs["b"], format="csv"))
    expected = [
        (g["grouping"], g["key"], m["metric"]) for g in found["groups"] for m in g["metrics"]
    ]
    assert [(r["grouping"], r["key"], r["metric"]) for r in rows] == expected
    first = found["groups"][0]["metrics"][0]
    assert float(rows[0]["difference"]) == pytest.approx(first["difference"])
    assert float(rows[0]["interval.high"]) == pytest.approx(first["interval"]["high"])
    assert rows[0]["mcnemar_p"] and rows[0]["pairs"] == "38"


def test_repositories_and_metrics(server: Server) -> None:
    repositories = {r["name"]: r for r in server.ok("/api/repositories")}
    assert repositories["polyglot"]["runs"] == 4
    assert repositories["polyglot"]["last_run_at"].startswith("2025-01-04T02:00")
    assert (repositories["other"]["origin"], repositories["other"]["runs"]) == (OTHER_ORIGIN, 1)
    assert server.ok("/api/metrics") == [
        {"name": m.name, "version": m.version, "definition": m.definition,
         "higher_is_better": m.higher_is_better}
        for m in sorted(METRICS.values(), key=lambda m: m.name)
    ]  # fmt: skip


def test_unknown_ids_are_404_with_a_clear_message(server: Server) -> None:
    for path in ("/api/runs/9999", "/api/runs/9999/suggestions"):
        response = server.get(path)
        assert (response.status_code, response.json()) == (
            404, {"detail": "There is no run with id 9999."},
        )  # fmt: skip
    for path in ("/api/runs/9999/cancel", "/api/runs/9999/resume"):
        assert server.post(path).json() == {"detail": "There is no run with id 9999."}
    for response in (
        server.get("/api/repositories/9999/trend"),
        server.get("/api/runs", repository=9999),
    ):
        assert (response.status_code, response.json()) == (
            404, {"detail": "There is no repository with id 9999."},
        )  # fmt: skip
    # Celery reads any task id as PENDING; the API knows the ones it enqueued.
    task_id = str(uuid.uuid4())
    response = server.get(f"/api/tasks/{task_id}")
    assert (response.status_code, response.json()) == (
        404, {"detail": f"There is no task with id {task_id}."},
    )  # fmt: skip
    # The largest id an INTEGER column holds (in PostgreSQL too) is unknown, not a bad value.
    assert server.get(f"/api/runs/{2**31 - 1}").status_code == 404


def test_numbers_past_the_columns_and_malformed_ids_are_422(server: Server) -> None:
    run_id = server.seeded.runs["first"]
    reads: list[tuple[str, dict[str, Any], str]] = [
        (f"/api/runs/{TOO_BIG}", {}, "run_id"),
        (f"/api/runs/{TOO_BIG}/suggestions", {}, "run_id"),
        (f"/api/runs/{run_id}/suggestions", {"offset": TOO_BIG}, "offset"),
        ("/api/runs", {"repository": TOO_BIG}, "repository"),
        (f"/api/repositories/{TOO_BIG}/trend", {}, "repository_id"),
        (f"/api/runs/{2**31}", {}, "run_id"),
        (f"/api/runs/{run_id}/suggestions", {"offset": 2**31}, "offset"),
        ("/api/runs/0", {}, "run_id"),
        ("/api/tasks/not-a-task-id", {}, "task_id"),
    ]
    for path, params, field in reads:
        response = server.get(path, **params)
        assert response.status_code == 422, (path, params, response.text)
        assert response.json()["detail"][0]["loc"][-1] == field
    for action in ("cancel", "resume"):
        response = server.post(f"/api/runs/{TOO_BIG}/{action}")
        assert response.status_code == 422, response.text


def test_bad_input_is_422_naming_the_field(server: Server) -> None:
    bad_queries: list[tuple[str, dict[str, Any], str]] = [
        ("/api/runs/abc", {}, "run_id"),
        ("/api/runs", {"limit": 0}, "limit"),
        ("/api/runs", {"limit": 501}, "limit"),
        ("/api/runs", {"repository": "x"}, "repository"),
        (f"/api/runs/{server.seeded.runs['first']}/suggestions", {"offset": -1}, "offset"),
        (f"/api/runs/{server.seeded.runs['first']}/suggestions", {"accepted": "maybe"}, "accepted"),
        (
            f"/api/runs/{server.seeded.runs['first']}/suggestions",
            {"language": "py\x00"},
            "language",
        ),
        (f"/api/runs/{server.seeded.runs['first']}/suggestions", {"kind": "loop"}, "kind"),
        ("/api/repositories/1/trend", {"by": "week"}, "by"),
    ]
    for path, params, field in bad_queries:
        response = server.get(path, **params)
        assert response.status_code == 422, (path, params)
        assert response.json()["detail"][0]["loc"][-1] == field
    bad_bodies: list[tuple[Any, str]] = [
        ({}, "location"),
        ({"location": "relative/path"}, "location must be a git URL or an absolute path"),
        ({"location": "/etc"}, "/etc is outside the directories this service may audit"),
        ({"location": "/srv/../etc"}, "is outside the directories this service may audit"),
        ({"location": "file:///etc"}, "is outside the directories this service may audit"),
        ({"location": "--upload-pack=touch /tmp/x #.git", "ref": "."}, "location must be"),
        ({"location": "/srv/repo", "options": {"profile": "nope"}}, "Unknown model profile"),
        ({"location": "/srv/repo", "options": {"max_points": 0}}, "greater than or equal to 1"),
        ({"location": "/srv/repo", "options": {"max_points": 2**64}}, "less than or equal to"),
        ({"location": "/srv/repo", "options": {"seed": 2**70}}, "less than or equal to"),
        ({"location": "/srv/repo", "options": {"colour": "red"}}, "Extra inputs"),
        ({"location": "/srv/repo", "acceptance": {"metric": "bleu"}}, "bleu"),
        ({"location": "/srv/repo", "acceptance": {"threshold": "high"}}, "valid number"),
    ]
    for body, message in bad_bodies:
        response = server.post("/api/runs", body)
        assert response.status_code == 422, body
        assert message in json.dumps(response.json()), response.json()


def queued(server: Server) -> list[dict[str, Any]]:
    """The messages waiting in this module's control queue (no worker consumes them)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        raw = client.lrange(f"{server.key_prefix}{jobs.CONTROL_QUEUE}", 0, -1)
    finally:
        client.close()
    messages = []
    for item in reversed(raw):  # kombu pushes at the head: oldest last
        message = json.loads(item)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        messages.append({"task": message["headers"]["task"], "id": message["headers"]["id"],
                         "args": args, "kwargs": kwargs})  # fmt: skip
    return messages


def test_post_runs_enqueues_the_planning_task(server: Server) -> None:
    before = len(queued(server))
    body = {
        "location": "https://example.invalid/team/repo.git",
        "ref": "v1",
        "options": {"max_points": 7},
    }
    response = server.post("/api/runs", body)
    assert response.status_code == 202, response.text
    task = response.json()
    assert response.headers["location"] == task["task_url"]
    assert task["task_url"] == f"{server.url}/api/tasks/{task['task_id']}"
    [message] = queued(server)[before:]
    assert (message["task"], message["id"]) == (jobs.PLAN_AUDIT, task["task_id"])
    location, ref, options, rule = message["args"]
    assert (location, ref) == ("https://example.invalid/team/repo.git", "v1")
    # No Triton URL is configured: the embedded model's profile, as the CLI would choose.
    assert options == audit.AuditOptions(profile="l2r", max_points=7).model_dump(mode="json")
    assert rule == AcceptanceRule().to_dict()
    # No worker here: the task waits, and has no run yet.
    assert server.ok(f"/api/tasks/{task['task_id']}") == {
        "task_id": task["task_id"], "state": "PENDING", "run_id": None, "error": None,
    }  # fmt: skip

    rule = {"metric": "es_levenshtein", "threshold": 0.5, "require_parse": False}
    chosen = {"location": "/srv/repo", "options": {"profile": "aixcoder"}, "acceptance": rule}
    assert server.post("/api/runs", chosen).status_code == 202
    _, _, options, rule = queued(server)[-1]["args"]
    assert options["profile"] == "aixcoder"
    assert rule == AcceptanceRule("es_levenshtein", 0.5, require_parse=False).to_dict()


def test_cancel_and_resume_are_safe_to_repeat(server: Server) -> None:
    done = server.seeded.runs["second"]
    for action in ("cancel", "resume"):  # a finished run with every result is left alone
        response = server.post(f"/api/runs/{done}/{action}")
        assert response.json() == {"run_id": done, "status": "done", "enqueued": 0}

    run_id = new_pending_run(server.db_url)
    for _ in range(2):
        response = server.post(f"/api/runs/{run_id}/cancel")
        assert response.json() == {"run_id": run_id, "status": "cancelled", "enqueued": 0}
    before = len(queued(server))
    response = server.post(f"/api/runs/{run_id}/resume")
    assert response.json() == {"run_id": run_id, "status": "running", "enqueued": 2}
    [message] = queued(server)[before:]
    assert (message["task"], message["args"]) == (jobs.DISPATCH_RUN, [run_id])
    assert server.ok(f"/api/runs/{run_id}")["run"]["status"] == "running"


@pytest.mark.parametrize("results", [REDIS_URL, UNREACHABLE], ids=["broker-down", "redis-down"])
def test_a_task_queue_that_cannot_be_reached_is_503_at_once(tmp_path: Path, results: str) -> None:
    url = f"sqlite:///{tmp_path / 'aixaudit.db'}"
    upgrade(url)
    run_id = new_pending_run(url)
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    with api_process(
        db_url=url,
        home=tmp_path,
        key_prefix=prefix,
        broker_url=UNREACHABLE,
        result_backend=results,
        settings=TOKENS,
    ) as api:
        # A generous bound, not a measurement: Celery's own retries used to take 19 s.
        client = httpx.Client(base_url=api, headers=bearer(WRITE_TOKEN), timeout=10)
        with client:
            responses = [
                client.post("/api/runs", json={"location": "/srv/repo"}),
                client.post(f"/api/runs/{run_id}/resume"),
            ]
            if results == UNREACHABLE:
                responses.append(client.get(f"/api/tasks/{uuid.uuid4()}"))
    for response in responses:
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]
        assert detail.startswith("The task queue cannot be reached, try again later"), detail


# -- who may do what ---------------------------------------------------------------------------


def challenge(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.headers.get("www-authenticate", "")


def test_reads_take_a_read_token_and_writes_a_write_token(server: Server) -> None:
    run_id = server.seeded.runs["second"]
    reads = ["/api/runs", f"/api/runs/{run_id}", f"/api/runs/{run_id}/suggestions",
             "/api/repositories", "/api/metrics", f"/api/tasks/{uuid.uuid4()}",
             f"/api/compare?a={run_id}&b={run_id}"]  # fmt: skip
    for path in reads:
        missing = server.get(path, token=None)
        assert challenge(missing) == (401, 'Bearer realm="aixaudit"'), path
        assert "read scope" in missing.json()["detail"]
        wrong = server.get(path, token="not-" + READ_TOKEN)
        assert challenge(wrong) == (401, 'Bearer realm="aixaudit", error="invalid_token"'), path
    for token in (READ_TOKEN, WRITE_TOKEN):  # a write token reads too
        assert server.get("/api/runs", token=token).status_code == 200

    before = len(queued(server))
    writes = [
        ("/api/runs", {"location": "/srv/repo"}),
        (f"/api/runs/{run_id}/cancel", None),
        (f"/api/runs/{run_id}/resume", None),
    ]
    for path, body in writes:
        assert challenge(server.post(path, body, token=None)) == (401, 'Bearer realm="aixaudit"')
        short = server.post(path, body, token=READ_TOKEN)
        assert challenge(short) == (
            403, 'Bearer realm="aixaudit", error="insufficient_scope"',
        ), path  # fmt: skip
        assert short.json() == {"detail": "The token has the read scope; this needs write."}
        assert challenge(server.post(path, body, token="not-" + WRITE_TOKEN))[0] == 401
    assert len(queued(server)) == before
    assert server.ok(f"/api/runs/{run_id}")["run"]["status"] == "done"


def test_a_cross_site_form_post_cannot_resume(server: Server) -> None:
    """A page elsewhere can make the browser post a form (with the browser's cookies), never
    send an Authorization header: the run stays cancelled and nothing is enqueued."""
    run_id = new_pending_run(server.db_url)
    assert server.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelled"
    before = len(queued(server))
    response = httpx.post(
        f"{server.url}/api/runs/{run_id}/resume",
        content=f"Authorization=Bearer+{WRITE_TOKEN}&token={WRITE_TOKEN}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://elsewhere.example",
            "Referer": "https://elsewhere.example/page.html",
            "Cookie": f"Authorization=Bearer {WRITE_TOKEN}; token={WRITE_TOKEN}",
        },
        timeout=30,
    )
    assert response.status_code == 401
    assert len(queued(server)) == before
    assert server.ok(f"/api/runs/{run_id}")["run"]["status"] == "cancelled"


def test_open_reads_need_no_token_and_writes_still_do(open_reads: Server) -> None:
    assert open_reads.get("/api/runs", token=None).status_code == 200
    assert open_reads.get("/api/metrics", token=None).status_code == 200
    run_id = open_reads.seeded.runs["second"]
    assert open_reads.post(f"/api/runs/{run_id}/resume", token=None).status_code == 401
    assert open_reads.post(f"/api/runs/{run_id}/resume", token=READ_TOKEN).status_code == 403


def test_without_tokens_reads_are_open_on_loopback_and_writes_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'aixaudit.db'}"
    upgrade(url)
    run_id = new_pending_run(url)
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    with api_process(db_url=url, home=tmp_path, key_prefix=prefix) as api:
        assert httpx.get(f"{api}/api/runs/{run_id}", timeout=30).status_code == 200
        for path in ("/api/runs", f"/api/runs/{run_id}/cancel", f"/api/runs/{run_id}/resume"):
            response = httpx.post(f"{api}{path}", json={"location": "/srv/repo"}, timeout=30)
            assert response.status_code == 401, path
            assert "AIXAUDIT_API_TOKENS" in response.json()["detail"]
            assert (
                httpx.post(f"{api}{path}", headers=bearer("guess"), timeout=30).status_code == 401
            )
        assert (
            httpx.get(f"{api}/api/runs/{run_id}", timeout=30).json()["run"]["status"] == "pending"
        )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "api.example"])
def test_api_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path, host: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")}
    env["AIXAUDIT_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [str(AIXAUDIT), "api", "--host", host, "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: Refusing to serve the API on {host} without a token: set AIXAUDIT_API_TOKENS "
        "(e.g. write:TOKEN) or listen on 127.0.0.1."
    )
    assert not (tmp_path / "aixaudit.db").exists()  # refused before touching anything


def new_pending_run(url: str) -> int:
    """A run of its own (2 points, no result) in a repository of its own."""
    engine = make_engine(url)
    try:
        checkout = sources.Checkout(
            root=POLYGLOT, origin=f"/srv/control-{uuid.uuid4().hex[:8]}", commit=None, ref=None
        )
        return audit.plan_run(
            session_factory(engine),
            checkout=checkout,
            options=audit.AuditOptions(max_points=2),
            rule=AcceptanceRule(),
        )
    finally:
        engine.dispose()


def test_openapi_and_the_page_are_served(server: Server) -> None:
    paths = server.ok("/openapi.json")["paths"]
    assert {
        "/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/suggestions",
        "/api/runs/{run_id}/cancel", "/api/runs/{run_id}/resume", "/api/tasks/{task_id}",
        "/api/repositories", "/api/repositories/{repository_id}/trend", "/api/metrics",
        "/api/compare",
    } <= set(paths)  # fmt: skip
    assert server.get("/docs", token=None).status_code == 200
    schema = server.ok("/openapi.json")
    assert schema["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from AIXAUDIT_API_TOKENS: `read` scope for GET, `write` for POST.",
    }
    operations = [op for path, ops in schema["paths"].items() for op in ops.values()]
    assert operations and all(op["security"] == [{"token": []}] for op in operations)
    page = server.get("/", token=None)
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    for asset in ("app.js", "style.css"):
        assert server.get(f"/static/{asset}", token=None).status_code == 200


# -- the page, in a real browser ------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(chromium_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """Runs headless Chromium on a URL: returns the DOM after the page's scripts ran."""
    binary = chromium_binary

    def run(url: str, *extra: str) -> str:
        profile = tmp_path_factory.mktemp("chromium-profile")
        done = subprocess.run(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                *extra, url,
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return run


class Tables(HTMLParser):
    """The text of every cell, by row, of the rendered DOM, keyed by the rows' data-* attribute."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        self.rows: dict[str, list[str]] = {}
        self.tags: list[str] = []  # open elements
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        key = dict(attrs).get(self.attribute)
        if tag == "tr" and key is not None:
            self._row = self.rows.setdefault(key, [])
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        while self.tags and self.tags.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._row is not None and "td" in self.tags:
            self._row[-1] += data.strip()


def cells(dom: str, attribute: str) -> dict[str, list[str]]:
    parser = Tables(attribute)
    parser.feed(dom)
    return parser.rows


def test_the_page_lists_the_runs(open_reads: Server, chromium: Callable[..., str]) -> None:
    server = open_reads
    dom = chromium(f"{server.url}/", "--dump-dom")
    rows = cells(dom, "data-run-id")
    runs = server.seeded.runs
    # run, status, repository, ref, points, acceptance, regression, started
    assert rows[str(runs["second"])][:7] == [f"#{runs['second']}", "done", "polyglot", "main",
                                              "4/4", "75%", "no"]  # fmt: skip
    assert rows[str(runs["third"])][1:7] == ["partial", "polyglot", "main", "2/3", "0%", "yes"]
    assert rows[str(runs["pending"])][1:7] == ["pending", "polyglot", "main", "0/2", "–", "–"]
    assert rows[str(runs["other"])][1:7] == ["done", "other", "main", "1/1", "100%", "–"]
    assert rows[str(runs["first"])][7] == "2025-01-01 02:00"


def test_a_run_shows_its_report_and_trend(open_reads: Server, chromium: Callable[..., str]) -> None:
    server = open_reads
    runs = server.seeded.runs
    dom = chromium(f"{server.url}/#/runs/{runs['second']}", "--dump-dom")
    assert f"Run #{runs['second']}: polyglot" in dom
    report = server.ok(f"/api/runs/{runs['second']}")
    es = report["totals"]["intervals"]["es_rapidfuzz"]
    es_range = f"{round(es['low'] * 100)}–{round(es['high'] * 100)} (n=4)"
    # key, points, suggestions, errors, accepted, rate, its interval, EM, ES, id F1, parses, ES
    # interval, lines, chars (Wilson's interval of 3 of 4 is 30% to 95%)
    assert cells(dom, "data-key")["all"] == [
        "all", "4", "4", "0", "3", "75%", "30–95 (n=4)", "0.50", "0.80", "–", "–", es_range,
        "3/4", "30/40",
    ]  # fmt: skip
    languages = sorted({point[1] for point in server.seeded.points["second"]})
    assert all(language in cells(dom, "data-key") for language in languages)
    # The trend: three finished runs, each with an acceptance rate and an ES point.
    assert dom.count('<circle class="series-acceptance"') == 3
    assert dom.count('<circle class="series-es"') == 3
    assert f"run #{runs['second']}: acceptance rate 75%" in dom


def test_the_page_renders_as_a_picture(
    open_reads: Server, chromium: Callable[..., str], tmp_path: Path
) -> None:
    picture = tmp_path / "dashboard.png"
    chromium(
        f"{open_reads.url}/#/runs/{open_reads.seeded.runs['second']}",
        f"--screenshot={picture}",
        "--window-size=1280,900",
    )
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 900)


def test_the_page_asks_for_the_token_and_keeps_it_in_the_tab(
    server: Server, chromium_binary: str, tmp_path: Path
) -> None:
    """Reads take a token here: the page asks for one, sends it in the Authorization header
    only (never in a URL), keeps it in sessionStorage, and asks again when it is refused."""
    form_shown = "!document.getElementById('token-form').hidden"
    stored = "sessionStorage.getItem('aixaudit.token')"
    with devtools_chromium(chromium_binary, tmp_path / "profile") as browser:
        page = browser.open(f"{server.url}/#/runs/{server.seeded.runs['second']}")
        page.wait_for(form_shown)
        assert "read scope" in page.evaluate("document.getElementById('token-message').textContent")
        assert page.evaluate("document.activeElement.id") == "token"
        waiting = page.evaluate("document.getElementById('runs-message').textContent")
        assert waiting == "The runs show once a token is given."
        page.type(READ_TOKEN)
        page.wait_for(
            f"document.querySelector('#runs tr[data-run-id=\"{server.seeded.runs['second']}\"]')"
        )
        page.wait_for("document.querySelector('[data-breakdown=\"totals\"]')")
        assert page.evaluate(form_shown) is False
        assert page.evaluate(stored) == READ_TOKEN
        assert page.evaluate("localStorage.length") == 0

        api = [r for r in page.requests() if "/api/" in r["url"]]
        answered = [r for r in api if r["headers"].get("Authorization") == f"Bearer {READ_TOKEN}"]
        paths = {httpx.URL(r["url"]).path for r in answered}
        assert {"/api/runs", f"/api/runs/{server.seeded.runs['second']}"} <= paths
        assert all(READ_TOKEN not in r["url"] for r in page.requests())
        assert READ_TOKEN not in page.evaluate("location.href")

        page.evaluate("sessionStorage.setItem('aixaudit.token', 'a-stale-token')")
        page.reload()
        page.wait_for(form_shown)
        assert page.evaluate(stored) is None
        message = page.evaluate("document.getElementById('token-message').textContent")
        assert message == "The token was refused: The token is not valid."
        # Another tab has a session of its own: it asks again.
        other = browser.open(f"{server.url}/")
        other.wait_for(form_shown)
        assert other.evaluate(stored) is None
