from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from conftest import FIXED_COST_DELAY_MS
from sqlalchemy import select
from tritonclient.utils import InferenceServerException

from aixaudit import audit, cli, sources
from aixaudit.ensemble import ENSEMBLE_NAME
from aixaudit.errors import ConfigError, ServerError
from aixaudit.inference import (
    Completion,
    CompletionRequest,
    Endpoint,
    TritonCompleter,
    is_transient,
)
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import reports
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import Run, RunStatus, Suggestion
from aixaudit.tokens import ModelTokenizer

FAIL_FIRST_ENV = "AIXAUDIT_FIXED_COST_FAIL_FIRST"
UNAVAILABLE_ON_PURPOSE = (
    f"[StatusCode.UNAVAILABLE] in ensemble 'ensemble', failing on purpose ({FAIL_FIRST_ENV})"
)
POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"

# --- endpoints and errors (no server) ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "default", "address", "protocol"),
    [
        ("grpc://triton.internal:8001", "grpc", "triton.internal:8001", "grpc"),
        ("http://127.0.0.1:8000", "grpc", "127.0.0.1:8000", "http"),
        ("127.0.0.1:8001", "grpc", "127.0.0.1:8001", "grpc"),
        ("localhost:8000", "http", "localhost:8000", "http"),
    ],
)
def test_endpoint_parse(url: str, default: str, address: str, protocol: str) -> None:
    endpoint = Endpoint.parse(url, default_protocol=default)
    assert (endpoint.address, endpoint.protocol) == (address, protocol)
    assert str(endpoint) == f"{protocol}://{address}"


@pytest.mark.parametrize("url", ["ftp://host:21", "grpc://host", "http://:8000", "host"])
def test_endpoint_parse_rejects_what_is_not_a_triton_address(url: str) -> None:
    with pytest.raises(ConfigError, match="must look like grpc://host:port"):
        Endpoint.parse(url)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (InferenceServerException("down", status="StatusCode.UNAVAILABLE"), True),
        (InferenceServerException("slow", status="StatusCode.DEADLINE_EXCEEDED"), True),
        (InferenceServerException("full", status="StatusCode.RESOURCE_EXHAUSTED"), True),
        (InferenceServerException("bug", status="StatusCode.INTERNAL"), False),
        (InferenceServerException("bad", status="StatusCode.INVALID_ARGUMENT"), False),
        (InferenceServerException("who", status="StatusCode.NOT_FOUND"), False),
        (InferenceServerException("stopping", status="503"), True),
        (InferenceServerException("gateway", status="502"), True),
        (InferenceServerException("bad", status="400"), False),
        (InferenceServerException("who", status="404"), False),
        (aiohttp.ClientConnectionError("reset"), True),
        (ConnectionRefusedError("refused"), True),
        (TimeoutError(), True),
        (ValueError("a bug"), False),
    ],
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def _fake_server(completer: TritonCompleter, failures: list[BaseException]) -> list[str]:
    """Make `completer` answer each prompt with itself after raising `failures` in turn."""
    calls: list[str] = []

    async def infer(request: CompletionRequest, timeout_s: float) -> str:
        calls.append(request.key)
        if failures:
            raise failures.pop(0)
        return request.prompt

    completer._infer = infer  # type: ignore[method-assign]
    return calls


def _complete(
    completer: TritonCompleter, requests: Iterable[CompletionRequest]
) -> list[Completion]:
    async def run() -> list[Completion]:
        return [completion async for completion in completer.complete(requests)]

    return asyncio.run(run())


def test_a_transient_error_is_retried_and_a_permanent_one_is_not() -> None:
    endpoint = Endpoint.parse("grpc://127.0.0.1:1")
    completer = TritonCompleter(endpoint, model="m", max_in_flight=1, backoff_s=0.0)
    unavailable = InferenceServerException("busy", status="StatusCode.UNAVAILABLE")
    calls = _fake_server(completer, [unavailable, unavailable])
    [completion] = _complete(completer, [CompletionRequest("a", "x = 1", 4)])
    assert (completion.text, completion.error, completion.attempts) == ("x = 1", None, 3)
    assert completion.retries == ("[StatusCode.UNAVAILABLE] busy",) * 2
    assert calls == ["a", "a", "a"]

    # Latency is the answering attempt's, send to answer; the two failed tries and their
    # backoff count as time queued in the client, not as the request's latency.
    assert completion.queued_ms > 0 and completion.latency_ms >= 0

    invalid = InferenceServerException("bad max_tokens", status="StatusCode.INVALID_ARGUMENT")
    calls = _fake_server(completer, [invalid])
    [completion] = _complete(completer, [CompletionRequest("b", "y = 2", 4)])
    assert (completion.text, completion.attempts) == (None, 1)
    assert completion.error == "[StatusCode.INVALID_ARGUMENT] bad max_tokens"


def test_retries_stop_at_the_cap_and_the_request_comes_back_as_an_error() -> None:
    endpoint = Endpoint.parse("grpc://127.0.0.1:1")
    completer = TritonCompleter(endpoint, model="m", max_retries=2, backoff_s=0.0)
    calls = _fake_server(completer, [ConnectionResetError("reset by peer")] * 5)
    [completion] = _complete(completer, [CompletionRequest("a", "x = 1", 4)])
    assert (completion.key, completion.text, completion.attempts) == ("a", None, 3)
    assert completion.error == "reset by peer"
    assert completion.retries == ("reset by peer",) * 2  # the last attempt's is the error
    assert len(calls) == 3


def test_after_a_timeout_later_attempts_wait_the_servers_measured_queueing_too() -> None:
    """Triton computes a timed-out request anyway: the retry waits longer (timeout plus the
    server's measured queue time), and the timeout is kept as the retry's cause."""
    completer = TritonCompleter(
        Endpoint.parse("grpc://127.0.0.1:1"), model="m", timeout_s=1.5, backoff_s=0.0
    )
    deadline = InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")
    unavailable = InferenceServerException("busy", status="StatusCode.UNAVAILABLE")
    failures: list[BaseException] = [unavailable, deadline, TimeoutError()]
    timeouts: list[float] = []
    measured = iter([7.0, 5.0])  # what the server's statistics say, in turn

    async def infer(request: CompletionRequest, timeout_s: float) -> str:
        timeouts.append(timeout_s)
        if failures:
            raise failures.pop(0)
        return request.prompt

    async def measured_queue_s() -> float:
        return next(measured)

    completer._infer = infer  # type: ignore[method-assign]
    completer.measured_queue_s = measured_queue_s  # type: ignore[method-assign]
    [completion] = _complete(completer, [CompletionRequest("a", "x = 1", 4)])
    # Unavailable: no reason to wait longer; a timeout: 7 s more; a lower measure: no less.
    assert timeouts == [1.5, 1.5, 8.5, 8.5]
    assert completion.retries == (
        "[StatusCode.UNAVAILABLE] busy",
        "[StatusCode.DEADLINE_EXCEEDED] Deadline Exceeded",
        "TimeoutError",
    )
    assert (completion.text, completion.attempts) == ("x = 1", 4)


def test_an_error_in_the_callers_requests_reaches_the_caller() -> None:
    completer = TritonCompleter(Endpoint.parse("grpc://127.0.0.1:1"), model="m", max_in_flight=4)
    _fake_server(completer, [])

    def requests() -> Iterator[CompletionRequest]:
        yield CompletionRequest("a", "x = 1", 4)
        raise RuntimeError("the prompt builder failed")

    with pytest.raises(RuntimeError, match="the prompt builder failed"):
        _complete(completer, requests())


# --- against the fixed-cost server ---------------------------------------------------------


def _completer(server: LocalTriton, protocol: str = "grpc", **options: Any) -> TritonCompleter:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    options.setdefault("model", ENSEMBLE_NAME)
    return TritonCompleter(Endpoint.parse(url, default_protocol=protocol), **options)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_check_passes_and_completions_come_back_on_both_protocols(
    fixed_cost_server: LocalTriton, protocol: str
) -> None:
    completer = _completer(fixed_cost_server, protocol, max_in_flight=4)
    prompts = {f"p{i}": f"value_{i} = compute({i})\n" for i in range(6)}

    async def run() -> dict[str, str | None]:
        async with completer:
            await completer.check()
            requests = [CompletionRequest(key, text, 64) for key, text in prompts.items()]
            return {c.key: c.text async for c in completer.complete(requests)}

    # The fixed-cost model answers with the prompt's last tokens: all of it, for 64.
    assert asyncio.run(run()) == prompts


@pytest.mark.triton
def test_identity_names_the_served_model_its_version_and_the_url(
    fixed_cost_server: LocalTriton,
) -> None:
    completer = _completer(fixed_cost_server, weights_sha256="ab" * 32)

    async def run() -> dict[str, Any]:
        async with completer:
            return await completer.identity()

    identity = asyncio.run(run())
    assert identity["model"] == ENSEMBLE_NAME and identity["versions"] == ["1"]
    assert identity["server_url"] == f"grpc://{fixed_cost_server.grpc_url}"
    assert identity["weights_sha256"] == "ab" * 32  # the ensemble's config names none


@pytest.mark.triton
def test_never_more_than_max_in_flight_requests_reach_the_server(
    fixed_cost_server: LocalTriton,
) -> None:
    """The server batches whatever is queued (up to 8): with 3 in flight, no batch has more."""
    completer = _completer(fixed_cost_server, max_in_flight=3)
    requests = [CompletionRequest(f"k{i}", f"item_{i} = load({i})\n", 8) for i in range(24)]

    async def run() -> tuple[Counter[int], int]:
        async with completer:
            before = Counter(await completer.batch_sizes("tensorrt_llm"))
            answered = [c async for c in completer.complete(requests) if c.error is None]
            return Counter(await completer.batch_sizes("tensorrt_llm")) - before, len(answered)

    batches, answered = asyncio.run(run())
    assert answered == 24
    assert sum(size * count for size, count in batches.items()) == 24
    assert max(batches) <= 3


@pytest.mark.triton
def test_the_queue_time_is_the_servers_measure_over_the_ensembles_steps(
    fixed_cost_repo: Path, cpu_model_dir: Path, tmp_path: Path
) -> None:
    """On a fresh server, 24 requests at once on one instance taking batches of 8 at 50 ms:
    the second and third batches wait at least 50 and 100 ms in tensorrt_llm's queue, so the
    mean wait is at least a third of 50 ms; before any request, nothing has waited."""
    server = LocalTriton(log_dir=tmp_path / "logs")
    with server.start(fixed_cost_repo, env={MODEL_DIR_ENV: str(cpu_model_dir)}):
        completer = _completer(server, "http", max_in_flight=24)
        requests = [CompletionRequest(f"q{i}", f"queued_{i} = wait({i})\n", 8) for i in range(24)]

        async def run() -> tuple[float, float]:
            async with completer:
                before = await completer.measured_queue_s()
                answered = [c async for c in completer.complete(requests) if c.error is None]
                assert len(answered) == 24
                return before, await completer.measured_queue_s()

        before, after = asyncio.run(run())
    assert before == 0
    assert after >= FIXED_COST_DELAY_MS / 1000 / 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_error(completer: TritonCompleter) -> str:
    async def run() -> None:
        async with completer:
            await completer.check()

    with pytest.raises(ServerError) as raised:
        asyncio.run(run())
    message = str(raised.value)
    assert "\n" not in message and message.endswith(".")  # one sentence
    return message


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_check_names_an_unreachable_server(protocol: str) -> None:
    url = f"{protocol}://127.0.0.1:{_free_port()}"
    message = _check_error(TritonCompleter(Endpoint.parse(url), model="ensemble", timeout_s=5))
    assert message.startswith(f"Triton at {url} (model 'ensemble') cannot be reached: ")


@pytest.mark.triton
def test_check_names_an_unknown_model_and_what_is_served(fixed_cost_server: LocalTriton) -> None:
    message = _check_error(_completer(fixed_cost_server, model="aixcoder"))
    assert message.endswith(
        "(model 'aixcoder') is not ready: the server has no such model "
        "(it serves: ensemble, postprocessing, preprocessing, tensorrt_llm)."
    )


@pytest.mark.triton
def test_check_rejects_a_model_without_the_ensembles_inputs(
    fixed_cost_server: LocalTriton,
) -> None:
    message = _check_error(_completer(fixed_cost_server, "http", model="tensorrt_llm"))
    assert message.endswith(
        "(model 'tensorrt_llm') does not take the inputs aixaudit sends: "
        "missing text_input, max_tokens, stop_words."
    )


# --- against a server that fails on purpose ------------------------------------------------


@pytest.fixture(scope="module")
def failing_server(
    fixed_cost_repo: Path, cpu_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    """The fixed-cost repository, failing each prompt's first 2 requests with UNAVAILABLE."""
    env = {MODEL_DIR_ENV: str(cpu_model_dir), FAIL_FIRST_ENV: "2"}
    server = LocalTriton(log_dir=tmp_path_factory.mktemp("failing-logs"))
    with server.start(fixed_cost_repo, env=env):
        yield server


@pytest.mark.triton
def test_unavailable_is_retried_until_the_server_answers(failing_server: LocalTriton) -> None:
    completer = _completer(failing_server, max_in_flight=4, max_retries=3, backoff_s=0.01)
    requests = [CompletionRequest(f"r{i}", f"retry_{i} = {i}\n", 64) for i in range(6)]

    async def run() -> list[Completion]:
        async with completer:
            return [c async for c in completer.complete(requests)]

    completions = asyncio.run(run())
    assert sorted((c.key, c.text, c.error, c.attempts) for c in completions) == [
        (f"r{i}", f"retry_{i} = {i}\n", None, 3) for i in range(6)
    ]
    assert {c.retries for c in completions} == {(UNAVAILABLE_ON_PURPOSE,) * 2}


@pytest.mark.triton
def test_failed_points_are_stored_as_errors_and_the_run_ends_partial(
    failing_server: LocalTriton, cpu_model_dir: Path, tmp_path: Path
) -> None:
    """Two points are tried twice first (their failures used up); then one pass without
    retries answers those two, and the others fail: each is stored with its error."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    sessions = session_factory(make_engine(url))
    checkout = sources.checkout(str(POLYGLOT), ref=None, cache_dir=tmp_path / "repos")
    options = audit.AuditOptions(max_points=5, max_new_tokens=8)
    run_id = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
    counter = ModelTokenizer(cpu_model_dir)
    with sessions() as session:
        points = sorted(p.id for p in audit.queries.pending_points(session, run_id=run_id))
    assert len(points) == 5

    async def tried_twice() -> None:
        async with _completer(failing_server, max_retries=1, backoff_s=0.01) as completer:
            await audit.complete_points(
                sessions, run_id=run_id, completer=completer, counter=counter,
                point_ids=points[:2],
            )  # fmt: skip

    asyncio.run(tried_twice())
    status = audit.execute_run(
        sessions,
        run_id=run_id,
        completer=_completer(failing_server, max_in_flight=2, max_retries=0),
        counter=counter,
    )
    assert status is RunStatus.PARTIAL
    with sessions() as session:
        rows = session.execute(
            select(Suggestion.point_id, Suggestion.error, Suggestion.attempts, Suggestion.text)
            .where(Suggestion.run_id == run_id)
            .order_by(Suggestion.point_id)
        ).all()
        run = session.get(Run, run_id)
        assert run is not None
        assert run.error == "3 of 5 points have no suggestion (request errors)"
    assert [row.point_id for row in rows] == points  # every point has its row: none dropped
    for row in rows:
        if row.point_id in points[:2]:
            assert (row.error, row.attempts) == (None, 1)
            assert row.text is not None
        else:
            assert row.error is not None and "failing on purpose" in row.error
            assert (row.attempts, row.text) == (1, None)


@pytest.mark.triton
def test_retries_and_their_causes_are_stored_and_reported(
    failing_server: LocalTriton, cpu_model_dir: Path, tmp_path: Path, data_dir: Path
) -> None:
    """Every point is failed twice, then answered: each stores both causes, and the report
    (API data and CLI) counts them."""
    repo = tmp_path / "repo"
    repo.mkdir()
    marker = tmp_path.name  # prompts this module's server has not seen (it counts per prompt)
    (repo / "calc.py").write_text(
        f"# {marker}\n\ndef add(a, b):\n    total = a + b\n    return total\n\n\n"
        "def scale(values, factor):\n    return [v * factor for v in values]\n"
    )
    url = f"sqlite:///{data_dir / 'aixaudit.db'}"
    upgrade(url)
    sessions = session_factory(make_engine(url))
    checkout = sources.checkout(str(repo), ref=None, cache_dir=tmp_path / "repos")
    options = audit.AuditOptions(max_points=3, max_new_tokens=8)
    run_id = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
    status = audit.execute_run(
        sessions,
        run_id=run_id,
        completer=_completer(failing_server, max_in_flight=3, max_retries=2, backoff_s=0.01),
        counter=ModelTokenizer(cpu_model_dir),
    )
    assert status is RunStatus.DONE
    with sessions() as session:
        rows = session.execute(
            select(Suggestion.attempts, Suggestion.retries).where(Suggestion.run_id == run_id)
        ).all()
        report = reports.run_report(session, run_id=run_id)
    assert len(rows) == report.totals.points > 0
    assert {(attempts, tuple(retries)) for attempts, retries in rows} == {
        (3, (UNAVAILABLE_ON_PURPOSE,) * 2)
    }
    assert report.retries == {UNAVAILABLE_ON_PURPOSE: 2 * len(rows)}
    shown = CliRunner().invoke(cli.main, ["report", str(run_id)])
    assert shown.exit_code == 0, shown.output
    assert f"requests sent again: {2 * len(rows)} ({2 * len(rows)} x {UNAVAILABLE_ON_PURPOSE})" in (
        shown.output
    )
