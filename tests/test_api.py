"""The HTTP API and the dashboard page, as users run them: a real uvicorn started by
`aixaudit api` on a database seeded with the store's own functions (points planned from the
polyglot fixture, hand-made results, so every number is computed by hand here), queried with
httpx on SQLite and on PostgreSQL; the page rendered by a real headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
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

import httpx
import pytest
import redis
from sqlalchemy import select

from aixaudit import audit, history, sources
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.store import queries
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import File, Point, Repository
from workers.celery import CONTROL_QUEUE

AIXAUDIT = Path(sys.executable).with_name("aixaudit")
POLYGLOT = Path(__file__).resolve().parent / "fixtures" / "polyglot"
OTHER_ORIGIN = "git@example.com:team/other.git"
REDIS_URL = "redis://127.0.0.1:6379/0"

# Hand-made results, one per point in id order:
# (accepted, exact_match, es_fuzz, lines suggested, lines accepted, chars suggested, chars accepted)
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


@dataclass(frozen=True)
class Seeded:
    runs: dict[str, int]  # first, second, third (polyglot, finished), pending (polyglot), other
    repositories: dict[str, int]  # polyglot, other
    points: dict[str, list[tuple[int, str, str]]]  # run name -> (point id, language, kind)


def seed(url: str) -> Seeded:
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)

    def plan(origin: str, points: int, created: datetime) -> int:
        checkout = sources.Checkout(root=POLYGLOT, origin=origin, commit="c0ffee", ref="main")
        options = audit.AuditOptions(max_points=points)
        run_id = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
        with sessions.begin() as session:
            queries.get_run(session, run_id=run_id).created_at = created
        return run_id

    def answer(run_id: int, results: list[Result | None], status: str) -> None:
        with sessions.begin() as session:
            point_ids = session.scalars(
                select(Point.id).where(Point.run_id == run_id).order_by(Point.id)
            ).all()
            rows = [
                row(run_id, point_id, number, result)
                for number, (point_id, result) in enumerate(zip(point_ids, results, strict=True))
            ]
            queries.add_results(session, results=rows, metrics=METRICS)
            queries.set_run_status(session, run_id=run_id, status=status)

    try:
        runs = {
            "first": plan(str(POLYGLOT), 4, datetime(2025, 1, 1, 2, tzinfo=UTC)),
            "second": plan(str(POLYGLOT), 4, datetime(2025, 1, 2, 2, tzinfo=UTC)),
            "third": plan(str(POLYGLOT), 3, datetime(2025, 1, 2, 3, tzinfo=UTC)),
            "pending": plan(str(POLYGLOT), 2, datetime(2025, 1, 4, 2, tzinfo=UTC)),
            "other": plan(OTHER_ORIGIN, 1, datetime(2025, 1, 3, 2, tzinfo=UTC)),
        }
        answer(runs["first"], list(FIRST), "done")
        answer(runs["second"], list(SECOND), "done")
        answer(runs["third"], THIRD, "partial")
        answer(runs["other"], list(OTHER), "done")
        for name in ("first", "second", "third"):
            history.compare_with_previous(sessions, run_id=runs[name], threshold=0.05)
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


def row(run_id: int, point_id: int, number: int, result: Result | None) -> dict[str, Any]:
    """A Suggestion row as the audit writes it; None: every request failed."""
    if result is None:
        return {
            "point_id": point_id, "run_id": run_id, "raw_text": None, "text": None,
            "prompt_tokens": 10, "latency_ms": None, "attempts": 3, "error": "timed out",
            "accepted": False, "lines_suggested": 0, "lines_accepted": 0,
            "chars_suggested": 0, "chars_accepted": 0, "scores": {},
        }  # fmt: skip
    accepted, em, es, lines, lines_ok, chars, chars_ok = result
    return {
        "point_id": point_id, "run_id": run_id, "raw_text": f"raw {number}",
        "text": f"suggestion {number}", "prompt_tokens": 10, "latency_ms": LATENCY_MS,
        "attempts": 1, "error": None, "accepted": accepted, "lines_suggested": lines,
        "lines_accepted": lines_ok, "chars_suggested": chars, "chars_accepted": chars_ok,
        "scores": {"exact_match": em, "es_fuzz": es},
    }  # fmt: skip


@dataclass(frozen=True)
class Server:
    url: str
    db_url: str
    seeded: Seeded
    key_prefix: str  # of this module's Redis keys

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, timeout=30)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=30)

    def ok(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def api_process(*, db_url: str, home: Path, broker_url: str, key_prefix: str) -> Iterator[str]:
    """`aixaudit api` on a free loopback port until the block ends; yields its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")} | {
        "AIXAUDIT_DATA_DIR": str(home / "data"),
        "AIXAUDIT_DATABASE_URL": db_url,
        "AIXAUDIT_BROKER_URL": broker_url,
        "AIXAUDIT_RESULT_BACKEND": REDIS_URL,
        "AIXAUDIT_CELERY_KEY_PREFIX": key_prefix,
        "AIXAUDIT_ALLOWED_ROOTS": "/srv",  # the local paths the tests post lie there
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
        while not _answers(f"{url}/api/metrics"):
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
    """The API on the seeded database, for the whole module."""
    seeded = seed(module_db_url)
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    home = tmp_path_factory.mktemp("api")
    with api_process(
        db_url=module_db_url, home=home, broker_url=REDIS_URL, key_prefix=prefix
    ) as url:
        yield Server(url=url, db_url=module_db_url, seeded=seeded, key_prefix=prefix)


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
    assert [seeded[run["id"]] for run in listed] == ["pending", "other", "third", "second", "first"]
    assert [
        (r["status"], r["name"], r["ref"], r["suggestions"], r["points_total"], r["errors"])
        for r in listed
    ] == [
        ("pending", "polyglot", "main", 0, 2, 0),
        ("done", "other", "main", 1, 1, 0),
        ("partial", "polyglot", "main", 2, 3, 1),
        ("done", "polyglot", "main", 4, 4, 0),
        ("done", "polyglot", "main", 4, 4, 0),
    ]
    assert [r["accepted"] for r in listed] == [0, 1, 0, 3, 2]
    assert [r["acceptance_rate"] for r in listed] == [None, 1.0, 0.0, 0.75, 0.5]
    # third's acceptance rate fell from 75% to 0%; second's rose; first had nothing before it.
    assert [r["regression"] for r in listed] == [None, None, True, False, None]

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
            "es_fuzz": pytest.approx(sum(r[2] for r in answered) / len(answered)),
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
        "metrics": {"es_fuzz": pytest.approx(0.8), "exact_match": 0.5},
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
        for name in ("es_fuzz", "exact_match")
    ]  # fmt: skip
    assert report["acceptance_rule"] == AcceptanceRule().to_dict()
    assert report["config"]["max_points"] == 4
    scanned = sources.scan(POLYGLOT)
    assert report["files"] == len(scanned)
    skipped = Counter(f.skip_reason.value for f in scanned if f.skip_reason is not None)
    assert report["skipped"] == dict(skipped) and report["skipped"]
    assert report["baseline_run_id"] == server.seeded.runs["first"]
    assert {d["metric"]: (d["baseline"], d["value"], d["regressed"]) for d in report["deltas"]} == {
        "acceptance_rate": (0.5, 0.75, False),
        "exact_match": (0.25, 0.5, False),
        "es_fuzz": (pytest.approx(0.65), pytest.approx(0.8), False),
    }

    third = server.ok(f"/api/runs/{server.seeded.runs['third']}")
    assert third["totals"] == expected_breakdown(server.seeded.points["third"], THIRD, "all")
    assert [d["metric"] for d in third["deltas"] if d["regressed"]] == [
        "acceptance_rate", "es_fuzz", "exact_match",
    ]  # fmt: skip


def test_suggestions_are_paged_in_file_order_with_scores(server: Server) -> None:
    run_id = server.seeded.runs["first"]
    first = server.ok(f"/api/runs/{run_id}/suggestions", limit=3)
    rest = server.ok(f"/api/runs/{run_id}/suggestions", limit=3, offset=3)
    assert (first["total"], first["offset"], first["limit"], len(first["items"])) == (4, 0, 3, 3)
    assert (rest["total"], rest["offset"], len(rest["items"])) == (4, 3, 1)
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
        assert item["scores"] == {"es_fuzz": pytest.approx(es), "exact_match": em}
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
        {"exact_match": 0.25, "es_fuzz": pytest.approx(0.65)},
        {"exact_match": 0.5, "es_fuzz": pytest.approx(0.8)},
        {"exact_match": 0.0, "es_fuzz": pytest.approx(0.4)},
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
        "es_fuzz": pytest.approx((1.0 + 1.0 + 0.8 + 0.4 + 0.5 + 0.3) / 6),
    }
    assert [
        (p["lines_suggested"], p["lines_accepted"], p["chars_suggested"], p["chars_accepted"])
        for p in points
    ] == [(8, 3, 100, 60), (8, 3, 80, 30)]


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


def test_bad_input_is_422_naming_the_field(server: Server) -> None:
    bad_queries: list[tuple[str, dict[str, Any], str]] = [
        ("/api/runs/abc", {}, "run_id"),
        ("/api/runs", {"limit": 0}, "limit"),
        ("/api/runs", {"limit": 501}, "limit"),
        ("/api/runs", {"repository": "x"}, "repository"),
        (f"/api/runs/{server.seeded.runs['first']}/suggestions", {"offset": -1}, "offset"),
        (f"/api/runs/{server.seeded.runs['first']}/suggestions", {"accepted": "maybe"}, "accepted"),
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
        raw = client.lrange(f"{server.key_prefix}{CONTROL_QUEUE}", 0, -1)
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
    assert (message["task"], message["id"]) == ("workers.tasks.plan_audit", task["task_id"])
    location, ref, options, rule = message["args"]
    assert (location, ref) == ("https://example.invalid/team/repo.git", "v1")
    # No Triton URL is configured: the embedded model's profile, as the CLI would choose.
    assert options == audit.AuditOptions(profile="l2r", max_points=7).model_dump(mode="json")
    assert rule == AcceptanceRule().to_dict()
    # No worker here: the task waits, and has no run yet.
    assert server.ok(f"/api/tasks/{task['task_id']}") == {
        "task_id": task["task_id"], "state": "PENDING", "run_id": None, "error": None,
    }  # fmt: skip

    rule = {"metric": "es_lev", "threshold": 0.5, "require_parse": False}
    chosen = {"location": "/srv/repo", "options": {"profile": "aixcoder"}, "acceptance": rule}
    assert server.post("/api/runs", chosen).status_code == 202
    _, _, options, rule = queued(server)[-1]["args"]
    assert options["profile"] == "aixcoder"
    assert rule == AcceptanceRule("es_lev", 0.5, require_parse=False).to_dict()


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
    assert (message["task"], message["args"]) == ("workers.tasks.dispatch_run", [run_id])
    assert server.ok(f"/api/runs/{run_id}")["run"]["status"] == "running"


def test_a_task_queue_that_cannot_be_reached_is_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'aixaudit.db'}"
    upgrade(url)
    unreachable = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    with api_process(db_url=url, home=tmp_path, broker_url=unreachable, key_prefix=prefix) as api:
        response = httpx.post(f"{api}/api/runs", json={"location": "/srv/repo"}, timeout=60)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("The task queue cannot be reached, try again later")


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
    } <= set(paths)  # fmt: skip
    assert server.get("/docs").status_code == 200
    page = server.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    for asset in ("app.js", "style.css"):
        assert server.get(f"/static/{asset}").status_code == 200


# -- the page, in a real browser ------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """Runs headless Chromium on a URL: returns the DOM after the page's scripts ran."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("AIXAUDIT_SKIP_BROWSER") == "1":
            pytest.skip("AIXAUDIT_SKIP_BROWSER=1")
        pytest.fail(
            "chromium is not installed: run `apt-get update && apt-get install -y chromium` "
            "(or set AIXAUDIT_SKIP_BROWSER=1 to skip the browser tests)"
        )

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


def test_the_page_lists_the_runs(server: Server, chromium: Callable[..., str]) -> None:
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


def test_a_run_shows_its_report_and_trend(server: Server, chromium: Callable[..., str]) -> None:
    runs = server.seeded.runs
    dom = chromium(f"{server.url}/#/runs/{runs['second']}", "--dump-dom")
    assert f"Run #{runs['second']}: polyglot" in dom
    # key, points, suggestions, errors, accepted, rate, EM, ES, id F1, parses, lines, chars
    assert cells(dom, "data-key")["all"] == [
        "all", "4", "4", "0", "3", "75%", "0.50", "0.80", "–", "–", "3/4", "30/40",
    ]  # fmt: skip
    languages = sorted({point[1] for point in server.seeded.points["second"]})
    assert all(language in cells(dom, "data-key") for language in languages)
    # The trend: three finished runs, each with an acceptance rate and an ES point.
    assert dom.count('<circle class="series-acceptance"') == 3
    assert dom.count('<circle class="series-es"') == 3
    assert f"run #{runs['second']}: acceptance rate 75%" in dom


def test_the_page_renders_as_a_picture(
    server: Server, chromium: Callable[..., str], tmp_path: Path
) -> None:
    picture = tmp_path / "dashboard.png"
    chromium(
        f"{server.url}/#/runs/{server.seeded.runs['second']}",
        f"--screenshot={picture}",
        "--window-size=1280,900",
    )
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 900)
