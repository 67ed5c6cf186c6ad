"""One audit, composed from the concepts: plan the points, complete them, finish the run.

The three steps are separate so that the CLI runs them in one process and the Celery workers
run them as tasks: `plan_run` stores every point (and the text of every audited file) before
any request is sent, streaming the files so that its memory does not grow with their number,
`complete_points` answers any subset of a run's points and may run many times (resume,
retries, several workers), `finish_run` decides the run's final status.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session, sessionmaker

from . import sources
from .context import ContextStrategy, RepoIndex, render_context, retrieve, run_index
from .errors import AixauditError, SourceError
from .inference import Completion, CompletionRequest, TritonCompleter
from .languages import Language, LimitExceeded, ParseLimits, get_language
from .offload import Offload, available_cores
from .postprocess import trim_and_check
from .prompts import PROFILE_BUDGETS, Prompt, build_prompt, get_profile, new_tokens_for
from .scoring import (
    METRICS,
    AcceptanceRule,
    accepted_lines_chars,
    score,
    suggested_lines_chars,
)
from .spans import SamplingPolicy, Span, pick_spans, point_rank
from .store import control, queries, rollups
from .store.rows import FileRow, ResultRow
from .store.tables import RunStatus
from .tokens import TokenCounter

Progress = Callable[[int, int], None]  # (points answered so far, points to answer)

RESULT_BATCH = 16  # results per database write: few transactions, little lost on a crash
PLAN_BATCH_FILES = 500  # file rows per insert while planning
PLAN_BATCH_CHARS = 8_000_000  # file texts held while planning before they are written
OFFLOAD_MIN_POINTS = 64  # fewer points are scored faster than worker processes start


class AuditOptions(BaseModel):
    """What a run asks and how; stored with the run so it can be reproduced and compared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Every number is bounded (within 64 bits and far past any useful value), so a bad request
    # is refused where it is made, never by a worker later.
    profile: str = "l2r"
    seed: int = Field(0, ge=-(2**63), le=2**63 - 1)
    per_file: int = Field(3, ge=1, le=10_000)
    max_points: int = Field(40, ge=1, le=10_000_000)
    min_chars: int = Field(4, ge=0, le=1_000_000)
    max_chars: int = Field(400, ge=1, le=1_000_000)
    max_lines: int = Field(12, ge=1, le=100_000)
    # None: the profile's (prompts.PROFILE_BUDGETS). max_new_tokens caps each point's ask,
    # prompts.NEW_TOKENS_RULE with the headroom and margin below.
    max_new_tokens: int | None = Field(None, ge=1, le=1_000_000)
    prompt_budget: int | None = Field(None, ge=16, le=10_000_000)
    new_tokens_headroom: float = Field(1.5, ge=1.0, le=100.0)
    new_tokens_margin: int = Field(8, ge=0, le=1_000_000)
    max_file_bytes: int = Field(1_000_000, ge=1, le=1_000_000_000)
    # A file over either is skipped (parse_timeout, too_complex) rather than stalling the run.
    parse_timeout_s: float = Field(10.0, gt=0, le=86_400)
    max_nodes: int = Field(1_000_000, ge=1, le=1_000_000_000)

    def limits(self) -> ParseLimits:
        return ParseLimits(timeout_s=self.parse_timeout_s, max_nodes=self.max_nodes)

    # Repository context before each prompt (aixaudit.context), within its own token budget.
    context: ContextStrategy = ContextStrategy.NONE
    context_budget: int = Field(512, ge=0, le=1_000_000)
    # The file roles audited (sources.DEFAULT_ROLES: the code a team ships); sorted, each once.
    roles: tuple[sources.FileRole, ...] = Field(sources.DEFAULT_ROLES, min_length=1)

    @field_validator("roles")
    @classmethod
    def _each_role_once(cls, roles: tuple[sources.FileRole, ...]) -> tuple[sources.FileRole, ...]:
        return tuple(sorted(set(roles)))

    def with_budgets(self) -> AuditOptions:
        """These options with the profile's budgets where none were given: what a run stores."""
        budgets = PROFILE_BUDGETS[get_profile(self.profile).name]
        return self.model_copy(
            update={
                "max_new_tokens": self.max_new_tokens or budgets.new_tokens_cap,
                "prompt_budget": self.prompt_budget or budgets.prompt,
            }
        )

    def new_tokens_for(self, reference_tokens: int) -> int:
        cap = self.with_budgets().max_new_tokens or 1
        return new_tokens_for(
            reference_tokens, cap=cap, headroom=self.new_tokens_headroom,
            margin=self.new_tokens_margin,
        )  # fmt: skip

    def sampling(self) -> SamplingPolicy:
        return SamplingPolicy(
            seed=self.seed,
            per_file=self.per_file,
            min_chars=self.min_chars,
            max_chars=self.max_chars,
            max_lines=self.max_lines,
            need_suffix=get_profile(self.profile).fim,  # fill-in-the-middle sends both sides
        )


@dataclass(frozen=True)
class PlannedPoint:
    file_path: str
    content_hash: str
    span: Span
    rank: str
    original: str  # the span's text, sliced from the file once the span was picked

    @property
    def key(self) -> str:
        span = self.span
        return f"{self.file_path}:{span.start_byte}-{span.end_byte}:{span.kind.value}"


@dataclass(frozen=True)
class _PlannedFile:
    """One scanned file as planning leaves it: its File row, its text when it is audited, and
    the points sampled from it."""

    row: FileRow
    text: str | None
    points: list[PlannedPoint]


def plan_run(
    session_factory: sessionmaker[Session],
    *,
    checkout: sources.Checkout,
    options: AuditOptions,
    rule: AcceptanceRule,
    plan_key: str | None = None,
) -> int:
    """Scan the checkout, pick the points and store run, files, texts and points; returns the
    run id. Nothing is asked of the model yet.

    All of it lands in one transaction (a plan interrupted midway leaves nothing behind),
    recorded under `plan_key` when given (a key already taken raises IntegrityError), but the
    files stream through it: each is read, parsed and sampled on its own, rows and texts are
    written in batches, and only the run cap's best points are held. Memory therefore depends
    on the largest file and on max_points, not on the number of files."""
    get_profile(options.profile)  # an unknown profile fails before anything is stored
    options = options.with_budgets()
    files = sources.scan(checkout.root, max_bytes=options.max_file_bytes, roles=options.roles)
    with session_factory.begin() as session:
        repository = queries.get_or_create_repository(
            session, origin=checkout.origin, name=_repository_name(checkout.origin)
        )
        run = queries.create_run(
            session,
            repository_id=repository.id,
            ref=checkout.ref,
            commit=checkout.commit,
            profile=options.profile,
            config=options.model_dump(),
            acceptance_rule=rule.to_dict(),
            plan_key=plan_key,
        )
        writer = _FileWriter(session, run_id=run.id)
        candidates = _sampled_points(files, checkout.root, options, writer)
        # The run cap: the lowest ranks, as sorted(...)[:max_points], in a heap of that size.
        kept = heapq.nsmallest(options.max_points, candidates, key=attrgetter("rank"))
        writer.flush()
        # By file, so that requests of one file go out together (the server reuses its prefix).
        kept.sort(key=lambda p: (p.file_path, p.span.start_byte, p.span.kind.value))
        file_ids = queries.file_ids(
            session, run_id=run.id, paths=sorted({p.file_path for p in kept})
        )
        queries.add_points(
            session,
            run_id=run.id,
            points=[
                {
                    "file_id": file_ids[p.file_path],
                    "key": p.key,
                    "kind": p.span.kind.value,
                    "node_type": p.span.node_type,
                    "start_byte": p.span.start_byte,
                    "end_byte": p.span.end_byte,
                    "start_line": p.span.start_line,
                    "end_line": p.span.end_line,
                    "original": p.original,
                }
                for p in kept
            ],
        )
        run.points_total = len(kept)
        return run.id


class _FileWriter:
    """File rows and texts of the run being planned, written in batches."""

    def __init__(self, session: Session, *, run_id: int) -> None:
        self._session, self._run_id = session, run_id
        self._rows: list[FileRow] = []
        self._texts: dict[str, str] = {}  # sha256 -> text
        self._chars = 0

    def add(self, file: _PlannedFile) -> None:
        self._rows.append(file.row)
        sha256 = file.row["sha256"]
        if file.text is not None and sha256 is not None:  # a text is kept only with its hash
            self._texts[sha256] = file.text
            self._chars += len(file.text)
        if len(self._rows) >= PLAN_BATCH_FILES or self._chars >= PLAN_BATCH_CHARS:
            self.flush()

    def flush(self) -> None:
        queries.add_files(self._session, run_id=self._run_id, files=self._rows)
        queries.add_blobs(self._session, blobs=self._texts)
        self._rows, self._texts, self._chars = [], {}, 0


def _sampled_points(
    files: Iterable[sources.SourceFile], root: Path, options: AuditOptions, writer: _FileWriter
) -> Iterator[PlannedPoint]:
    """Every file's sampled points, one file at a time; each file goes to `writer` first."""
    for file in files:
        planned = _plan_file(root, file, options)
        writer.add(planned)
        yield from planned.points


def _plan_file(root: Path, file: sources.SourceFile, options: AuditOptions) -> _PlannedFile:
    """Read, parse and sample one scanned file. A file that cannot be read as scanned, or that
    is over a parse limit, is skipped with the reason; it never stops the plan."""
    row: FileRow = {
        "path": file.path,
        "language": file.language,
        "size": file.size,
        "sha256": file.sha256,
        "skip_reason": file.skip_reason.value if file.skip_reason else None,
        "detail": file.detail,
        "role": file.role.value,
    }
    if file.skip_reason is not None or file.language is None or file.sha256 is None:
        return _PlannedFile(row, None, [])
    try:
        text = sources.read_text(root, file)
        source = text.encode()
        picked = pick_spans(
            get_language(file.language),
            source,
            policy=options.sampling(),
            content_hash=file.sha256,
            limits=options.limits(),
        )
    except LimitExceeded as limit:
        return _PlannedFile(_skipped(row, limit.reason, limit.detail), None, [])
    except SourceError as error:
        # Gone or changed since the scan: what would be audited is not what was scanned.
        return _PlannedFile(_skipped(row, sources.SkipReason.UNREADABLE, str(error)), None, [])
    points = [
        PlannedPoint(
            file.path,
            file.sha256,
            span,
            point_rank(seed=options.seed, content_hash=file.sha256, span=span),
            span.text_in(source),
        )
        for span in picked
    ]
    return _PlannedFile(row, text, points)


def _skipped(row: FileRow, reason: str, detail: str) -> FileRow:
    return row | {"sha256": None, "skip_reason": reason, "detail": detail}


def _repository_name(origin: str) -> str:
    name = PurePosixPath(origin.rstrip("/")).name
    return name.removesuffix(".git") or origin


@dataclass
class PointWork:
    """What one request needs, and what scoring its answer needs."""

    point_id: int
    run_id: int
    language: Language
    kind: str
    original: str
    prefix: str
    suffix: str
    prompt: Prompt
    max_new_tokens: int


async def complete_points(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    completer: TritonCompleter,
    counter: TokenCounter,
    point_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
    scoring_processes: int = 0,
) -> int:
    """Ask the model for every given point of the run that has no result yet (all such points
    when `point_ids` is None), score and store each answer; returns how many were answered.

    With `scoring_processes`, answers are post-processed and scored in that many worker
    processes while the requests go on (for runs of at least OFFLOAD_MIN_POINTS points; a
    Celery chunk leaves it at 0: its worker processes are the parallelism). Once the run is
    cancelled (seen at each batch of results stored), nothing more is asked.
    """
    with session_factory() as session:
        run = queries.get_run(session, run_id=run_id)
        options = AuditOptions.model_validate(run.config)
        rule = AcceptanceRule.from_dict(run.acceptance_rule)
        pending = queries.pending_points(session, run_id=run_id, point_ids=point_ids)
        blobs = queries.get_blobs(session, shas={p.sha256 for p in pending})
    profile = get_profile(options.profile)
    index = None
    if options.context is not ContextStrategy.NONE and pending:
        index = await asyncio.to_thread(run_index, session_factory, run_id=run_id)
    work: dict[str, PointWork] = {}  # prompts sent and not yet answered

    def requests() -> Iterator[CompletionRequest]:
        # Lazily: prompts are built while the first requests are already being answered.
        for item in prepare_points(pending, blobs, options, counter, index):
            key = str(item.point_id)
            work[key] = item
            yield CompletionRequest(key, item.prompt.text, item.max_new_tokens, profile.stop_words)

    done, buffer, cancelled = 0, [], False

    async def record(results: list[ResultRow]) -> None:
        nonlocal done, buffer, cancelled
        buffer += results
        done += len(results)
        if len(buffer) >= RESULT_BATCH:
            cancelled = await asyncio.to_thread(_store, session_factory, buffer)
            buffer = []
        if progress and results:
            progress(done, len(pending))

    if progress:
        progress(0, len(pending))
    processes = scoring_processes if len(pending) >= OFFLOAD_MIN_POINTS else 0
    with Offload[ResultRow](processes) as scoring:
        async for completion in completer.complete(requests()):
            item = work.pop(completion.key)
            scoring.submit(_result, item, completion, rule, profile.stop_words, counter)
            await record(await scoring.results(keep=scoring.backlog))
            if cancelled:
                break  # a cancel wins: what was answered is kept, nothing more is asked
        await record(await scoring.results(keep=0))
    await asyncio.to_thread(_store, session_factory, buffer)
    return done


def prepare_points(
    pending: Sequence[queries.PendingPoint],
    blobs: dict[str, str],
    options: AuditOptions,
    counter: TokenCounter,
    index: RepoIndex | None = None,
) -> Iterator[PointWork]:
    """Each pending point's prompt and what scoring its answer needs, file by file (each
    file's text encoded once); with `index`, prompts carry retrieved cross-file context."""
    profile = get_profile(options.profile)
    options = options.with_budgets()  # runs stored before budgets followed the profile
    files: dict[str, bytes] = {}  # sha256 -> source, encoded once a file
    for point in pending:
        language = get_language(point.language)
        if point.sha256 not in files:
            files[point.sha256] = blobs[point.sha256].encode()
        source = files[point.sha256]
        prefix = source[: point.start_byte].decode()
        suffix = source[point.end_byte :].decode()
        context = ""
        if index is not None:
            fragments = retrieve(index, options.context, path=point.path, prefix=prefix)
            context = render_context(
                fragments, language=language, counter=counter, budget=options.context_budget
            )
        prompt = build_prompt(
            profile,
            language=language,
            path=point.path,
            prefix=prefix,
            suffix=suffix,
            counter=counter,
            budget=options.prompt_budget or 0,
            context=context,
        )
        asked = options.new_tokens_for(counter.count(point.original))
        yield PointWork(
            point.id, point.run_id, language, point.kind, point.original, prefix, suffix, prompt,
            asked,
        )  # fmt: skip


def _result(
    work: PointWork,
    completion: Completion,
    rule: AcceptanceRule,
    stop_words: Sequence[str],
    counter: TokenCounter | None = None,
) -> ResultRow:
    """A Suggestion row (with its scores) for one answer, or the error when there is none."""
    row: ResultRow = {
        "point_id": work.point_id,
        "run_id": work.run_id,
        "raw_text": completion.text,
        "text": None,
        "scores": {},
        "prompt_tokens": work.prompt.tokens,
        "latency_ms": completion.latency_ms,
        "attempts": completion.attempts,
        "retries": list(completion.retries) or None,
        "error": completion.error,
    }
    row = _with_answer_facts(row, work, completion, counter)
    if completion.text is None:
        return row
    text, parses = trim_and_check(
        completion.text,
        language=work.language,
        kind=work.kind,
        prefix=work.prefix,
        original=work.original,
        suffix=work.suffix,
        stop_words=stop_words,
    )
    scores = score(text, work.original, language=work.language, parses=parses)
    accepted = rule.accepts(scores)
    lines_suggested, chars_suggested = suggested_lines_chars(text)
    lines_accepted, chars_accepted = accepted_lines_chars(text, work.original, accepted)
    return row | {
        "text": text,
        "accepted": accepted,
        "lines_suggested": lines_suggested,
        "lines_accepted": lines_accepted,
        "chars_suggested": chars_suggested,
        "chars_accepted": chars_accepted,
        "scores": scores,
    }


def _with_answer_facts(
    row: ResultRow, work: PointWork, completion: Completion, counter: TokenCounter | None
) -> ResultRow:
    """`row` with how the point was asked and answered. The ensemble returns text only, so output
    tokens are the raw answer counted with the run's tokenizer (exact or not: served_by says)."""
    output = None
    if counter is not None and completion.text is not None:
        output = counter.count(completion.text)
    return row | {
        "output_tokens": output,
        "max_new_tokens": work.max_new_tokens,
        "queued_ms": completion.queued_ms,
        "prompt_truncated": work.prompt.truncated,
    }


async def record_served_by(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    completer: TritonCompleter,
    counter: TokenCounter,
) -> dict[str, Any]:
    """Store what answers the run: the server's model identity and URL, and our tokenizer."""
    served_by = await completer.identity() | {
        "tokenizer": counter.name,
        "tokenizer_sha256": counter.sha256,
        "tokens_exact": counter.exact,
    }
    versions = ",".join(served_by["versions"])
    model = served_by["model"] + (f":{versions}" if versions else "")
    with session_factory.begin() as session:
        run = queries.get_run(session, run_id=run_id)
        run.served_by, run.model = served_by, run.model or model
    return served_by


def _store(session_factory: sessionmaker[Session], results: list[ResultRow]) -> bool:
    """Store the results; returns whether their run has been cancelled meanwhile."""
    if not results:
        return False
    with session_factory.begin() as session:
        queries.add_results(session, results=results, metrics=METRICS)
        return control.is_cancelled(session, run_id=results[0]["run_id"])


def start_run(session_factory: sessionmaker[Session], *, run_id: int) -> bool:
    """Mark a pending or running run running; False (and nothing written) when it is cancelled
    or finished: a cancel is never overwritten."""
    with session_factory.begin() as session:
        return queries.move_run(
            session, run_id=run_id, to=RunStatus.RUNNING, only_from=control.ACTIVE
        )


def finish_run(
    session_factory: sessionmaker[Session], *, run_id: int, error: str | None = None
) -> RunStatus:
    """Final status from what is stored: `done` when every point has a suggestion, `partial`
    when some have errors or none, `failed` when none has a suggestion (or `error` says why
    there is nothing to answer). Only a pending or running run is finished; any other keeps its
    status (a cancel wins), which is returned."""
    with session_factory.begin() as session:
        run = queries.get_run(session, run_id=run_id)
        answered, failed = queries.count_results(session, run_id=run_id)
        if error is None and answered == run.points_total and failed == 0:
            status = RunStatus.DONE
        elif answered - failed > 0:
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.FAILED if run.points_total or error else RunStatus.DONE
        if error is None and failed:
            error = f"{failed} of {run.points_total} points have no suggestion (request errors)"
        if queries.move_run(
            session, run_id=run_id, to=status, only_from=control.ACTIVE, error=error
        ):
            rollups.refresh(session, run_id=run_id)
            return status
        return RunStatus(queries.get_run(session, run_id=run_id).status)


class Finish(Protocol):
    """How a run is finished: `finish_run`, or the lifecycle's (which compares it after)."""

    def __call__(
        self, session_factory: sessionmaker[Session], *, run_id: int, error: str | None = None
    ) -> RunStatus: ...


def execute_run(
    session_factory: sessionmaker[Session],
    *,
    run_id: int,
    completer: TritonCompleter,
    counter: TokenCounter,
    progress: Progress | None = None,
    scoring_processes: int | None = None,
    finish: Finish = finish_run,
) -> RunStatus:
    """Answer every pending point of a run in this process and `finish` it. A server that
    cannot serve us fails the run with the reason, which is raised again for the caller to
    show. Answers are scored in `scoring_processes` worker processes (None: one per core). A
    run cancelled or finished meanwhile is left as it is, its status returned."""
    if not start_run(session_factory, run_id=run_id):
        with session_factory() as session:
            return RunStatus(queries.get_run(session, run_id=run_id).status)
    processes = available_cores() if scoring_processes is None else scoring_processes

    async def answer() -> None:
        async with completer:
            await completer.check()
            await record_served_by(
                session_factory, run_id=run_id, completer=completer, counter=counter
            )
            await complete_points(
                session_factory, run_id=run_id, completer=completer, counter=counter,
                progress=progress, scoring_processes=processes,
            )  # fmt: skip

    try:
        asyncio.run(answer())
    except AixauditError as error:
        finish(session_factory, run_id=run_id, error=str(error))
        raise
    return finish(session_factory, run_id=run_id)
