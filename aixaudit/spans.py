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

What is no point (the same rules in every language):
- a condition that is only a literal, parenthesised or not (`while True`, `if (0)`, `for true`):
  nothing to predict; `for (;;)` and Rust's `loop` have no condition node at all.
- a docstring: an expression statement that is only a string literal (Python docstrings, JS
  "use strict"), and a body holding only comments and docstrings. They are prose, which the
  code metrics (identifier match, parse check) cannot judge, and SAFIM's and aiXcoder's span
  types are all code; excluded rather than a kind of their own, so that a kind's share of
  points says the same across languages and runs. A docstring breaks a statement run as a
  comment does.
- a span with nothing but whitespace on a side of the file the prompt needs
  (SamplingPolicy.need_prefix / need_suffix): a module docstring at byte 0 leaves an l2r
  model an empty prompt.
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
# Node types of the eight grammars (their names do not clash across grammars).
_STRINGS = frozenset(
    [
        "string",
        "concatenated_string",
        "string_literal",
        "raw_string_literal",
        "interpreted_string_literal",
    ]
)
_LITERALS = _STRINGS | {
    *("true", "false", "boolean_literal", "none", "null", "null_literal", "nil", "undefined"),
    *("integer", "float", "number", "number_literal", "int_literal", "integer_literal"),
    *("float_literal", "imaginary_literal", "char_literal", "character_literal", "rune_literal"),
    *("decimal_integer_literal", "hex_integer_literal", "octal_integer_literal"),
    *("binary_integer_literal", "decimal_floating_point_literal", "hex_floating_point_literal"),
}
_NO_CONDITION = _LITERALS | {"empty_statement"}  # JavaScript's `for (;;)` has a `;` there
_COMMENTS = frozenset(("comment", "line_comment", "block_comment"))


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
_BODIES = frozenset((SpanKind.FUNCTION_BODY, SpanKind.BLOCK_BODY))


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
    # A side of the file the prompt sends must hold more than whitespace (l2r: the prefix;
    # fill-in-the-middle: both).
    need_prefix: bool = True
    need_suffix: bool = False

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
        if not node.has_error and _is_point(kind, node)
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


def _is_point(kind: SpanKind, node: tree_sitter.Node) -> bool:
    """Whether a node captured as `kind` may be a point (the rules: see the module docstring)."""
    if kind is SpanKind.CONDITION:
        return _unparenthesised(node).type not in _NO_CONDITION
    if kind is SpanKind.STATEMENT:
        return not _is_docstring(node)
    if kind in _BODIES:
        return not all(
            child.type in _COMMENTS or _is_docstring(child) for child in node.named_children
        )
    return True


def _unparenthesised(node: tree_sitter.Node) -> tree_sitter.Node:
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def _is_docstring(node: tree_sitter.Node) -> bool:
    """An expression statement that is only a string literal (evaluated, then dropped)."""
    return (
        node.type == "expression_statement"
        and node.named_child_count == 1
        and node.named_children[0].type in _STRINGS
    )


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


def _eligible(span: Span, source: bytes, policy: SamplingPolicy, code: tuple[int, int]) -> bool:
    """Within the limits (in characters), with a word character, and with code on the sides
    the prompt needs (`code`: where the file's first non-whitespace byte starts and its last
    ends). A character takes 1 to 4 bytes (a replaced invalid byte: 1), so only a span of
    min_chars to 4 * max_chars bytes can qualify, and only such a span is decoded: the cost
    stays linear in the file."""
    size = span.end_byte - span.start_byte
    if (
        span.end_line - span.start_line >= policy.max_lines
        or not policy.min_chars <= size <= _MAX_UTF8_BYTES * policy.max_chars
        or (policy.need_prefix and span.start_byte <= code[0])
        or (policy.need_suffix and span.end_byte >= code[1])
    ):
        return False
    text = span.text_in(source)
    return policy.min_chars <= len(text) <= policy.max_chars and _WORD.search(text) is not None


def sample_spans(
    spans: Iterable[Span], *, source: bytes, policy: SamplingPolicy, content_hash: str
) -> list[Span]:
    """Pick up to `policy.per_file` spans of `source`, the same ones for the same seed and
    file content.

    Spans outside the size limits, with no letter, digit or underscore, or with only
    whitespace on a side the policy needs, are never picked.
    Kinds take turns (in an order drawn from seed and hash) so one file's points cover several
    kinds; within a kind the lowest `point_rank` goes first, and a byte range already picked
    under another kind is skipped (it would be the same question twice).
    """
    by_kind: dict[SpanKind, list[Span]] = {}
    code = (len(source) - len(source.lstrip()), len(source.rstrip()))
    for span in spans:
        if _eligible(span, source, policy, code):
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
