"""Completion points: whole syntax nodes (structured FIM) and their deterministic sampling.

aiXcoder trains on masked whole subtrees, so every span is a complete tree-sitter node (or a
run of sibling statements) and is judged as a unit. One query per language
(`span_queries/<language>.scm`, fixed capture names) finds the candidates in a single pass:

- function_body / block_body: the node in the function's (or if/else/for/while/try/catch/...)
  body field, as the grammar has it: Python's `block` (it starts at the first statement, after
  the colon), the whole `{...}` node, braces included, in brace languages.
- condition: the test of if/elif/while/do/for/ternary without the parentheses the grammar
  requires (C, C++, Java, JS, TS): what sits between them. Go, Rust and Python conditions
  are the expression node itself (parentheses a user wrote stay).
- call: a call expression with its callee; arguments: its argument list, parentheses included.
- statement: one statement, simple or compound.
- statements: runs of 2-4 adjacent statements, children of one block, built here; anything
  else between two statements (a comment, a preprocessor line) breaks the run. The run's
  node_type joins its statements' types with "+" (no single node has it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, partial
from operator import attrgetter
from typing import NamedTuple

import tree_sitter

from aixaudit.errors import ConfigError
from aixaudit.languages import Language, ParseLimits, captures, compile_query, parse
from aixaudit.resources import span_queries_dir

_QUERY_DIR = span_queries_dir()
# Languages whose grammar accepts another language's query text unchanged.
_SHARED_QUERY = {"typescript": "javascript", "tsx": "javascript"}
_RUN_LENGTHS = (2, 3, 4)
_WORD = re.compile(r"\w")
_MAX_UTF8_BYTES = 4  # per character
_ORDER = attrgetter("start_byte", "end_byte", "kind")


class SpanKind(StrEnum):
    """What a span masks; stored with every point and reported per kind."""

    FUNCTION_BODY = "function_body"
    BLOCK_BODY = "block_body"
    CONDITION = "condition"
    CALL = "call"
    ARGUMENTS = "arguments"
    STATEMENT = "statement"
    STATEMENTS = "statements"


# Query capture name -> kind; STATEMENTS has no capture (runs are built from @span.block).
_CAPTURE_KINDS = {f"span.{kind.value}": kind for kind in SpanKind if kind != SpanKind.STATEMENTS}
_BLOCK_CAPTURE = "span.block"


class Span(NamedTuple):
    """One completion point: the bytes a model must fill in, with where they sit.

    A named tuple of offsets, not a dataclass and no text: a large file yields tens of
    thousands of candidates, nested ones overlap (a copy of each one's text grows with the
    square of the nesting), and only the few that are picked ever need their text."""

    kind: SpanKind
    node_type: str
    start_byte: int
    end_byte: int
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive

    def text_in(self, source: bytes) -> str:
        """The span's text in the file it was found in, invalid bytes replaced."""
        return source[self.start_byte : self.end_byte].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class SamplingPolicy:
    """How many points to take from one file, and which sizes are worth asking for."""

    seed: int = 0
    per_file: int = 3
    min_chars: int = 4
    max_chars: int = 400
    max_lines: int = 12

    def __post_init__(self) -> None:
        if min(self.per_file, self.min_chars, self.max_lines) < 0:
            raise ConfigError("Sampling per_file, min_chars and max_lines cannot be negative.")
        if self.min_chars > self.max_chars:
            raise ConfigError(
                f"Sampling min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})."
            )


@cache
def span_query(language: Language) -> tree_sitter.Query:
    """The compiled span query of a language (compiled once per process)."""
    name = _SHARED_QUERY.get(language.name, language.name)
    return compile_query(language, (_QUERY_DIR / f"{name}.scm").read_text(encoding="utf-8"))


def find_spans(
    language: Language, source: bytes, *, limits: ParseLimits | None = None
) -> list[Span]:
    """Every candidate span of a file, ordered by (start_byte, end_byte, kind), each once.

    Parses once and runs the language's one query; no tree outlives the call. A node holding
    an ERROR or MISSING node is no candidate (its original is not a clean syntax unit), and
    it breaks statement runs. Memory is linear in the file: spans are offsets (`text_in`
    decodes one, invalid bytes replaced). With `limits`, a file over them raises
    languages.LimitExceeded.
    """
    found = captures(span_query(language), parse(language, source, limits=limits).root_node)
    spans = [
        _span(kind, node, node, node.type)
        for name, nodes in found.items()
        if (kind := _CAPTURE_KINDS.get(name)) is not None
        for node in nodes
        if not node.has_error
    ]
    statements = {(s.start_byte, s.end_byte) for s in spans if s.kind is SpanKind.STATEMENT}
    for block in found.get(_BLOCK_CAPTURE, ()):
        if block.named_child_count >= _RUN_LENGTHS[0]:
            spans.extend(
                _span(SpanKind.STATEMENTS, first, last, node_type)
                for first, last, node_type in _statement_runs(block, statements)
            )
    # One span per (start_byte, end_byte, kind), should two nodes or patterns share one.
    unique = dict(zip(map(_ORDER, spans), spans, strict=True))
    return [unique[key] for key in sorted(unique)]


def _span(kind: SpanKind, first: tree_sitter.Node, last: tree_sitter.Node, node_type: str) -> Span:
    return Span(
        kind,
        node_type,
        first.start_byte,
        last.end_byte,
        first.start_point[0] + 1,
        last.end_point[0] + 1,
    )


def _statement_runs(
    block: tree_sitter.Node, statements: set[tuple[int, int]]
) -> Iterable[tuple[tree_sitter.Node, tree_sitter.Node, str]]:
    """(first, last, joined types) of every run of 2-4 adjacent statement children of `block`."""
    run: list[tree_sitter.Node] = []
    for child in [*block.named_children, None]:  # None ends the last run
        if child is not None and (child.start_byte, child.end_byte) in statements:
            run.append(child)
            continue
        types = [node.type for node in run]
        for length in _RUN_LENGTHS:
            for i in range(len(run) - length + 1):
                yield run[i], run[i + length - 1], "+".join(types[i : i + length])
        run = []


def point_rank(*, seed: int, content_hash: str, span: Span) -> str:
    """A stable, seed-dependent order key for a point (sha256 hex): the run cap keeps the lowest."""
    key = f"{seed}\0{content_hash}\0{span.kind.value}\0{span.start_byte}\0{span.end_byte}"
    return hashlib.sha256(key.encode()).hexdigest()


def _kind_rank(*, seed: int, content_hash: str, kind: SpanKind) -> str:
    return hashlib.sha256(f"{seed}\0{content_hash}\0{kind.value}".encode()).hexdigest()


def _eligible(span: Span, source: bytes, policy: SamplingPolicy) -> bool:
    """Within the limits (in characters) and with a word character. A character takes 1 to
    4 bytes (a replaced invalid byte: 1), so only a span of min_chars to 4 * max_chars bytes
    can qualify, and only such a span is decoded: the cost stays linear in the file."""
    size = span.end_byte - span.start_byte
    if span.end_line - span.start_line >= policy.max_lines or not (
        policy.min_chars <= size <= _MAX_UTF8_BYTES * policy.max_chars
    ):
        return False
    text = span.text_in(source)
    return policy.min_chars <= len(text) <= policy.max_chars and _WORD.search(text) is not None


def sample_spans(
    spans: Iterable[Span], *, source: bytes, policy: SamplingPolicy, content_hash: str
) -> list[Span]:
    """Pick up to `policy.per_file` spans of `source`, the same ones for the same seed and
    file content.

    Spans outside the size limits, or with no letter, digit or underscore, are never picked.
    Kinds take turns (in an order drawn from seed and hash) so one file's points cover several
    kinds; within a kind the lowest `point_rank` goes first, and a byte range already picked
    under another kind is skipped (it would be the same question twice).
    """
    by_kind: dict[SpanKind, list[Span]] = {}
    for span in spans:
        if _eligible(span, source, policy):
            by_kind.setdefault(span.kind, []).append(span)
    rank = partial(point_rank, seed=policy.seed, content_hash=content_hash)
    kind_rank = partial(_kind_rank, seed=policy.seed, content_hash=content_hash)
    # One queue per kind, best (lowest rank) last so pop() takes it.
    queues = [
        sorted(by_kind[kind], key=lambda s: rank(span=s), reverse=True)
        for kind in sorted(by_kind, key=lambda k: kind_rank(kind=k))
    ]
    picked: list[Span] = []
    taken: set[tuple[int, int]] = set()
    while queues and len(picked) < policy.per_file:
        for queue in queues:
            while queue and (queue[-1].start_byte, queue[-1].end_byte) in taken:
                queue.pop()
            if queue and len(picked) < policy.per_file:
                span = queue.pop()
                picked.append(span)
                taken.add((span.start_byte, span.end_byte))
        queues = [queue for queue in queues if queue]
    return sorted(picked, key=_ORDER)
