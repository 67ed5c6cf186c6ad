"""Completions/s against a ceiling known by construction: a fixed-cost model on the real server.

The bundled tritonserver serves the CPU repository with a `tensorrt_llm` that takes exactly D ms
per batch of up to B requests on each of I instances (aixaudit.model_repo.render_fixed_cost), so
no client can get more than B / D x I completions per second. One run measures, on the same
server, (a) a bare tritonclient asyncio load loop with no audit logic and (b) aixaudit's whole
pipeline on a real corpus (plan_run, then execute_run: prompts, requests, post-processing,
scoring, storing in SQLite), and prints each as a ratio to that ceiling (target >= 0.9), the
latency p50/p95, the batch sizes the server formed (its statistics API) and the client's CPU
per answer (target <= 5 ms).

The fixed-cost model answers with the prompt's last tokens, the adversarial answer for
post-processing (an echoed prompt rarely fits the span, so every candidate cut is tried). The
pipeline runs twice on the same points: each point asking its own number of new tokens (at
most 32), then every point asking 512 ("rambles", as a model that never stops would answer).

    .venv/bin/python benchmarks/serving.py [--delay-ms 200 50] [--max-batch 8] [--instances 1]
        [--points 1200] [--corpus DIR] [--max-in-flight N] [--model-dir DIR]
        [--scoring-processes N] [--prompt-budget 768]

Each D gives a ceiling; the default measures two: 40/s (a 7B model's batch of 8 completions of
32 tokens takes hundreds of milliseconds on a GPU) and 160/s (where, on this project's 2-core
machine, the client's CPU per point is the limit: client and server share the two cores).
Prompts are cut to 768 tokens, the size of the bare loop's: the server's preprocessing
tokenizes every prompt on the same two cores, so the profile's 8,064 would measure the server's
tokenizer, not the client.

Before the server starts, the client alone (no server, answers scripted in this process, scored
in the loop) measures its CPU per answer for three kinds of answer on copies of the same points:
real-like (the reference and the rest of its line and the next one, as a model that runs on
writes), echoed (the fixed-cost model's answer) and 512-token rambles; then its floor, the two
things no client of these rules can skip: a parse of each file and an encode of each prompt.

The corpus defaults to the Python standard library (median file ~43 KB, per point); planning
it (not timed) takes ~40 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import tritonclient.grpc.aio as grpcclient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tokenizers import Tokenizer

from aixaudit import sources
from aixaudit.audit import AuditOptions, complete_points, execute_run, plan_run, prepare_points
from aixaudit.config import Settings
from aixaudit.ensemble import ENSEMBLE_NAME
from aixaudit.inference import Completion, CompletionRequest, Endpoint, TritonCompleter
from aixaudit.languages import get_language, parse
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
from aixaudit.model_repo import render_fixed_cost
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import context as stored
from aixaudit.store import queries
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import File, Point, RunStatus, Suggestion
from aixaudit.tokens import ModelTokenizer, tokenizer_file
from aixaudit.weights import ensure_cpu_model

T = TypeVar("T")
BARE_PROMPT_CHARS = 2500  # about the size of the pipeline's prompts (768 tokens of code)
PROMPT_BUDGET = 768  # tokens of the pipeline's prompts
MAX_TOKENS = 32  # asked of every request of the bare loop; the most a point asks
RAMBLE_TOKENS = 512  # asked by every point in the rambles' load
# A way to answer the points of a run, given them and their files' texts (client alone).
Answers = Callable[
    [Sequence[queries.PendingPoint], dict[str, str]], Callable[[CompletionRequest], str]
]


@dataclass(frozen=True)
class Phase:
    """What the server and this process did while one load ran."""

    seconds: float
    batches: Counter[int]  # tensorrt_llm executions by batch size
    server_cpu_s: float  # tritonserver and its Python stubs
    client_cpu_s: float  # this process and its children


@dataclass(frozen=True)
class Measured:
    label: str
    completions: int
    errors: int
    latencies_ms: Sequence[float]
    phase: Phase

    def lines(self, ceiling: float) -> list[str]:
        phase = self.phase
        rate = self.completions / phase.seconds
        p95 = statistics.quantiles(self.latencies_ms, n=20)[18]
        formed = "  ".join(f"{size}x{count}" for size, count in sorted(phase.batches.items()))
        mean = sum(s * c for s, c in phase.batches.items()) / max(1, phase.batches.total())
        per_completion = 1000 / max(1, self.completions)
        client_ms = phase.client_cpu_s * per_completion
        return [
            f"{self.label}: {self.completions} completions ({self.errors} errors) in "
            f"{phase.seconds:.1f} s = {rate:.1f}/s, ratio to the ceiling {rate / ceiling:.3f}",
            f"  latency p50 {statistics.median(self.latencies_ms):.0f} ms, p95 {p95:.0f} ms",
            f"  batches formed (size x count): {formed}  (mean {mean:.2f})",
            f"  CPU per completion: server {phase.server_cpu_s * per_completion:.1f} ms, "
            f"client {client_ms:.1f} ms (target <= 5: {'met' if client_ms <= 5 else 'not met'}) "
            f"({os.cpu_count()} cores, {os.getloadavg()[0]:.1f} load average)",
        ]


def measure(
    server: LocalTriton, completer: TritonCompleter, action: Callable[[], T]
) -> tuple[T, Phase]:
    """Run `action`, timing it and counting the batches and CPU time it cost."""

    async def batch_sizes() -> Counter[int]:
        async with completer:
            return Counter(await completer.batch_sizes("tensorrt_llm"))

    def cpu() -> tuple[float, float]:
        """(server, client): the server is our child, and so are ended scoring processes."""
        assert server.pid is not None
        server_s = cpu_seconds(server.pid)
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)
        return server_s, cpu_seconds(os.getpid()) - server_s + ended.ru_utime + ended.ru_stime

    batches = asyncio.run(batch_sizes())
    server_cpu, client_cpu = cpu()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    server_after, client_after = cpu()
    return result, Phase(
        seconds,
        asyncio.run(batch_sizes()) - batches,
        server_after - server_cpu,
        client_after - client_cpu,
    )


async def bare_load(endpoint: Endpoint, prompts: Sequence[bytes], *, in_flight: int) -> list[float]:
    """A plain tritonclient asyncio loop: `in_flight` coroutines on one channel, latencies in ms."""
    client = grpcclient.InferenceServerClient(endpoint.address)
    pending = iter(prompts)
    latencies: list[float] = []

    async def worker() -> None:
        for prompt in pending:
            text = grpcclient.InferInput("text_input", [1, 1], "BYTES")
            text.set_data_from_numpy(np.array([[prompt]], dtype=np.object_))
            budget = grpcclient.InferInput("max_tokens", [1, 1], "INT32")
            budget.set_data_from_numpy(np.array([[MAX_TOKENS]], dtype=np.int32))
            started = time.perf_counter()
            await client.infer(ENSEMBLE_NAME, [text, budget])
            latencies.append((time.perf_counter() - started) * 1000)

    try:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    finally:
        await client.close()
    return latencies


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of a process and all its descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    family, grew = {root_pid}, True
    while grew:
        grown = family | {pid for pid, parent in parents.items() if parent in family}
        grew, family = grown != family, grown
    return sum(times.get(pid, 0.0) for pid in family)


def corpus_prompts(root: Path, count: int) -> list[bytes]:
    """`count` slices of the corpus' Python files, as long as the pipeline's prompts."""
    texts = [
        path.read_text(encoding="utf-8", errors="ignore")[:BARE_PROMPT_CHARS].encode()
        for path in sorted(root.rglob("*.py"))[:count]
    ]
    texts = [text for text in texts if text.strip()]
    return [texts[i % len(texts)] for i in range(count)]


class ScriptedCompleter:
    """Answers every request at once with `answer(request)`; the CPU it takes (a server's work,
    not the client's) is counted apart in `own_cpu_s`."""

    def __init__(self, answer: Callable[[CompletionRequest], str]) -> None:
        self.answer = answer
        self.own_cpu_s = 0.0

    async def complete(self, requests: Iterable[CompletionRequest]) -> AsyncIterator[Completion]:
        for request in requests:
            started = time.process_time()
            text = self.answer(request)
            self.own_cpu_s += time.process_time() - started
            yield Completion(request.key, text, None, 0.0, 1)


def client_only(
    factory: sessionmaker[Session], run_id: int, options: AuditOptions, model_dir: Path
) -> list[str]:
    """Client CPU per answer without a server (prompts, trimming, scoring, storing, all in this
    process) for real-like, echoed and rambling answers, each on a copy of the run's points."""
    rambles = options.model_copy(
        update={"max_new_tokens": RAMBLE_TOKENS, "new_tokens_margin": RAMBLE_TOKENS}
    )
    loads = (
        ("real-like: the reference and the line after it", options, run_on),
        (f"echoed: the prompt's last <= {MAX_TOKENS} tokens", options, echo(model_dir)),
        (f"rambles: the prompt's last {RAMBLE_TOKENS} tokens", rambles, echo(model_dir)),
    )
    counter = ModelTokenizer(model_dir)
    lines = ["client alone (no server; answers scripted, scored in the loop):"]
    for label, config, answers in loads:
        with factory.begin() as session:
            copy = stored.copy_run(session, run_id=run_id, config=config.model_dump())
        with factory() as session:
            points = queries.pending_points(session, run_id=copy, point_ids=None)
            blobs = queries.get_blobs(session, shas={point.sha256 for point in points})
        completer = ScriptedCompleter(answers(points, blobs))
        started = time.process_time()
        done = asyncio.run(
            complete_points(
                factory, run_id=copy, completer=cast(TritonCompleter, completer), counter=counter
            )
        )
        client_ms = (time.process_time() - started - completer.own_cpu_s) * 1000 / max(1, done)
        verdict = "met" if client_ms <= 5 else "not met"
        lines.append(
            f"  {label}: {client_ms:.1f} ms client CPU per answer (target <= 5: {verdict}), "
            f"{done} answers ({os.getloadavg()[0]:.1f} load average)"
        )
    lines.append(
        f"  floor: {floor_ms(points, blobs, options, counter):.1f} ms per answer: each file "
        f"parsed once and each prompt encoded once, nothing else "
        f"({os.getloadavg()[0]:.1f} load average)"
    )
    return lines


def floor_ms(
    points: Sequence[queries.PendingPoint],
    blobs: dict[str, str],
    options: AuditOptions,
    counter: ModelTokenizer,
) -> float:
    """The least client CPU an answer costs under the audit's rules: the syntax checks need the
    file's tree (its points share one parse), and a prompt filled to its token budget must be
    encoded as sent to know that it fits. No trimming, scoring or storing; the prompts are built
    before the clock starts."""
    prompts = [work.prompt.text for work in prepare_points(points, blobs, options, counter)]
    files = {
        point.sha256: (get_language(point.language), blobs[point.sha256].encode())
        for point in points
    }
    started = time.process_time()
    for language, source in files.values():
        parse(language, source)
    for prompt in prompts:
        counter.count(prompt)
    return (time.process_time() - started) * 1000 / max(1, len(points))


def run_on(
    points: Sequence[queries.PendingPoint], blobs: dict[str, str]
) -> Callable[[CompletionRequest], str]:
    """Each point's reference followed by the rest of its last line and the next line."""
    texts = {}
    for point in points:
        after = blobs[point.sha256].encode()[point.end_byte :].decode()
        texts[str(point.id)] = point.original + "\n".join(after.split("\n", 2)[:2])
    return lambda request: texts[request.key]


def echo(model_dir: Path) -> Answers:
    """The fixed-cost model's answer: the prompt's last `max_tokens` tokens."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file(model_dir)))

    def answers(
        points: Sequence[queries.PendingPoint], blobs: dict[str, str]
    ) -> Callable[[CompletionRequest], str]:
        def answer(request: CompletionRequest) -> str:
            ids = tokenizer.encode(request.prompt, add_special_tokens=False).ids
            return tokenizer.decode(ids[-request.max_tokens :], skip_special_tokens=True)

        return answer

    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delay-ms",
        type=float,
        nargs="+",
        default=[200.0, 50.0],
        help="D: cost of one batch; several values measure several ceilings in one run",
    )
    parser.add_argument("--max-batch", type=int, default=8, help="B: largest batch")
    parser.add_argument("--instances", type=int, default=1, help="I: model instances")
    parser.add_argument("--points", type=int, default=1200, help="points audited (and requests)")
    parser.add_argument("--max-in-flight", type=int, default=None, help="default 4 x B x I")
    parser.add_argument(
        "--corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]), help="a source tree"
    )
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="a converted model (for its tokenizer)"
    )
    parser.add_argument(
        "--scoring-processes", type=int, default=None, help="0: score in the loop; default 1/core"
    )
    parser.add_argument(
        "--prompt-budget", type=int, default=PROMPT_BUDGET, help="tokens of each prompt"
    )
    args = parser.parse_args()
    # One batch executing and three waiting: the batcher finds a full batch even when a loaded
    # client is slow to turn answers into new requests.
    in_flight = args.max_in_flight or 4 * args.max_batch * args.instances
    print(f"max in flight {in_flight}; corpus {args.corpus}; {args.points} points per load")
    model_dir = args.model_dir or ensure_cpu_model(Settings())  # only its tokenizer is used
    for delay_ms in args.delay_ms:
        ceiling = 1000 * args.max_batch / delay_ms * args.instances
        print(
            f"\nfixed cost: D={delay_ms:g} ms, B={args.max_batch}, I={args.instances} -> "
            f"ceiling {ceiling:.1f} completions/s"
        )
        first = delay_ms == args.delay_ms[0]
        for measured in measure_ceiling(args, delay_ms, in_flight, model_dir, first):
            print("\n".join(measured.lines(ceiling)))


def measure_ceiling(
    args: argparse.Namespace, delay_ms: float, in_flight: int, model_dir: Path, client_alone: bool
) -> list[Measured]:
    """The bare loop and the whole pipeline (echoes, then rambles) against one fixed-cost
    server; first, with `client_alone`, the client's CPU per answer without one."""
    with tempfile.TemporaryDirectory(prefix="aixaudit-bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'bench.db'}"
        upgrade(url)
        factory = session_factory(make_engine(url))
        started = time.perf_counter()
        options = AuditOptions(
            max_points=args.points, max_new_tokens=MAX_TOKENS, prompt_budget=args.prompt_budget
        )
        checkout = sources.checkout(str(args.corpus), ref=None, cache_dir=work / "repos")
        run_id = plan_run(factory, checkout=checkout, options=options, rule=AcceptanceRule())
        rambles = options.model_copy(
            update={"max_new_tokens": RAMBLE_TOKENS, "new_tokens_margin": RAMBLE_TOKENS}
        )
        with factory.begin() as session:
            rambles_id = stored.copy_run(session, run_id=run_id, config=rambles.model_dump())
        print(
            f"planned run {run_id} in {time.perf_counter() - started:.1f} s (not timed); "
            f"{file_sizes(factory, run_id)}"
        )
        if client_alone:
            print("\n".join(client_only(factory, run_id, options, model_dir)))

        repo = render_fixed_cost(
            work / "repo",
            delay_ms=delay_ms,
            max_batch_size=args.max_batch,
            instances=args.instances,
        )
        with LocalTriton(log_dir=work).start(repo, env={MODEL_DIR_ENV: str(model_dir)}) as server:
            endpoint = Endpoint.parse(server.grpc_url)
            completer = TritonCompleter(
                endpoint, model=ENSEMBLE_NAME, max_in_flight=in_flight, timeout_s=60
            )
            prompts = corpus_prompts(args.corpus, args.points)
            latencies, phase = measure(
                server,
                completer,
                lambda: asyncio.run(bare_load(endpoint, prompts, in_flight=in_flight)),
            )
            measured = [Measured("bare tritonclient loop", len(latencies), 0, latencies, phase)]
            counter = ModelTokenizer(model_dir)
            for label, audited in (
                (f"aixaudit pipeline, <= {MAX_TOKENS} tokens a point", run_id),
                (f"aixaudit pipeline, rambles of {RAMBLE_TOKENS} tokens", rambles_id),
            ):
                measured.append(
                    measure_pipeline(server, completer, factory, audited, counter, args, label)
                )
    return measured


def measure_pipeline(
    server: LocalTriton,
    completer: TritonCompleter,
    factory: sessionmaker[Session],
    run_id: int,
    counter: ModelTokenizer,
    args: argparse.Namespace,
    label: str,
) -> Measured:
    """execute_run on a planned run, with what its stored suggestions say."""

    def audit() -> RunStatus:
        return execute_run(
            factory,
            run_id=run_id,
            completer=completer,
            counter=counter,
            scoring_processes=args.scoring_processes,
        )

    status, phase = measure(server, completer, audit)
    with factory() as session:
        rows = session.execute(
            select(Suggestion.latency_ms, Suggestion.error).where(Suggestion.run_id == run_id)
        ).all()
    answered = [row.latency_ms for row in rows if row.error is None]
    label = f"{label} (run {status.value})"
    return Measured(label, len(answered), len(rows) - len(answered), answered, phase)


def file_sizes(factory: sessionmaker[Session], run_id: int) -> str:
    """The median size of the file a point is in: what post-processing re-parses."""
    with factory() as session:
        sizes = session.scalars(
            select(File.size).join(Point, Point.file_id == File.id).where(Point.run_id == run_id)
        ).all()
    return f"{len(sizes)} points, median file {statistics.median(sizes) / 1000:.1f} KB a point"


if __name__ == "__main__":
    main()
