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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from itertools import chain
from operator import attrgetter, methodcaller
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
_ID, _BYTE_RANGE, _START_BYTE, _END_BYTE = map(
    attrgetter, ("id", "byte_range", "start_byte", "end_byte")
)
_DIGEST = methodcaller("digest")
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


# Kind -> query capture name; STATEMENTS has none (runs are built from @span.block).
# Public, with Window, rank_key and rank_digests: benchmarks/extract.py's floor ranks with them.
CAPTURE_NAMES = {kind: f"span.{kind.value}" for kind in SpanKind if kind is not SpanKind.STATEMENTS}
_BLOCK_CAPTURE, _STATEMENT_CAPTURE = "span.block", CAPTURE_NAMES[SpanKind.STATEMENT]
_BODIES = frozenset((SpanKind.FUNCTION_BODY, SpanKind.BLOCK_BODY))
_NAMES = {kind: kind.value.encode() for kind in SpanKind}  # what ranks hash


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
    """Every candidate span of a file, ordered by (start_byte, end_byte, kind), each once:
    what `pick_spans` chooses from, listed whole (for tests and tools, not for planning).

    Parses once and runs the language's one query; no tree outlives the call. A node holding
    an ERROR or MISSING node is no candidate (its original is not a clean syntax unit), and
    it breaks statement runs. With `limits`, a file over them raises languages.LimitExceeded.
    """
    found = _Found(language, parse(language, source, limits=limits).root_node)
    spans = [
        _span(kind, first, last, node_type)
        for kind in SpanKind
        for first, last in zip(*found.candidates(kind)[1:], strict=True)
        if (node_type := _node_type(kind, first, last)) is not None
    ]
    # One span per (start_byte, end_byte, kind), should two nodes or patterns share one.
    unique = dict(zip(map(_ORDER, spans), spans, strict=True))
    return [unique[key] for key in sorted(unique)]


def pick_spans(
    language: Language,
    source: bytes,
    *,
    policy: SamplingPolicy,
    content_hash: str,
    limits: ParseLimits | None = None,
) -> list[Span]:
    """Up to `policy.per_file` points of a file, the same ones for the same seed and content.

    Spans outside the size limits, with no letter, digit or underscore, or with only
    whitespace on a side the policy needs, are never picked. Kinds take turns (in an order
    drawn from seed and hash) so one file's points cover several kinds; within a kind the
    lowest `point_rank` goes first, and a byte range already picked under another kind is
    skipped (it would be the same question twice).

    A file has 10 to 100 times more candidates than picks, so only the kinds the turns reach
    are ranked, on byte offsets alone; the other checks and the Span wait until a candidate
    is next in line.
    """
    # Kinds in the order of sha256(seed, hash, kind): digests sort as their hex did.
    turns = f"{policy.seed}\0{content_hash}\0".encode()
    order = sorted(SpanKind, key=lambda kind: hashlib.sha256(turns + _NAMES[kind]).digest())
    found = _Found(language, parse(language, source, limits=limits).root_node)
    window = Window.of(source, policy)
    queues = (_queue(kind, found, source, policy, content_hash, window) for kind in order)
    return sorted(_take_turns(queues, policy.per_file), key=_ORDER)


class _Candidates(NamedTuple):
    """A kind's candidates in capture order (runs: by block, then length), before the rules
    and sizes: each one's byte range and its first and last node (the same for one node)."""

    ranges: list[tuple[int, int]]
    firsts: list[tree_sitter.Node]
    lasts: list[tree_sitter.Node]


class _Found:
    """The span query's captures in one file, and the statement runs made from them."""

    def __init__(self, language: Language, root: tree_sitter.Node) -> None:
        self._nodes = captures(span_query(language), root)

    def candidates(self, kind: SpanKind) -> _Candidates:
        """A kind's candidates. Runs go through statements that are no point: `_node_type`
        rejects every run holding one, which leaves the runs such a statement breaks into."""
        if kind is not SpanKind.STATEMENTS:
            nodes = self._nodes.get(CAPTURE_NAMES[kind], [])
            return _Candidates(list(map(_BYTE_RANGE, nodes)), nodes, nodes)
        statements = set(map(_ID, self._nodes.get(_STATEMENT_CAPTURE, ())))
        return _statement_runs(self._nodes.get(_BLOCK_CAPTURE, []), statements)


def _node_type(kind: SpanKind, first: tree_sitter.Node, last: tree_sitter.Node) -> str | None:
    """The node type of a candidate made of clean syntax units the rules allow, else None
    (a run: each of its statements is checked, and its type joins theirs with "+")."""
    if kind is not SpanKind.STATEMENTS:
        return first.type if not first.has_error and _is_point(kind, first) else None
    nodes = [first]
    while nodes[-1].id != last.id:
        nodes.append(nodes[-1].next_named_sibling)  # type: ignore[arg-type]  # last follows
    if any(node.has_error or not _is_point(SpanKind.STATEMENT, node) for node in nodes):
        return None
    return "+".join(node.type for node in nodes)


class Window(NamedTuple):
    """The byte ranges a pick can have, known before any text is sliced.

    A character takes 1 to 4 bytes (a replaced invalid byte: 1), so a span holds min_chars
    to 4 * max_chars bytes, exactly min_chars to max_chars in an ASCII file; and nothing but
    whitespace may lie before the file's first non-whitespace byte or from the end of its
    last on, so a side the policy needs must start after (end before) that."""

    min_bytes: int
    max_bytes: int
    after: int  # a pick starts after this byte
    before: int  # and ends before this one

    @classmethod
    def of(cls, source: bytes, policy: SamplingPolicy) -> Window:
        ascii_only = source.isascii()
        return cls(
            policy.min_chars,
            policy.max_chars * (1 if ascii_only else _MAX_UTF8_BYTES),
            len(source) - len(source.lstrip()) if policy.need_prefix else -1,
            len(source.rstrip()) if policy.need_suffix else len(source) + 1,
        )

    def holding(self, ranges: list[tuple[int, int]]) -> list[int]:
        """Positions of the (start_byte, end_byte) ranges a pick can have."""
        low, high, after, before = self
        return [
            i
            for i, (start, end) in enumerate(ranges)
            if low <= end - start <= high and after < start and end < before
        ]


def _queue(
    kind: SpanKind,
    found: _Found,
    source: bytes,
    policy: SamplingPolicy,
    content_hash: str,
    window: Window,
) -> Iterator[Span]:
    """A kind's eligible spans, lowest rank first; nothing is done before the first is asked.

    Only candidates in the window are ranked, on byte offsets alone (a sha256 each, in C
    loops); the rest of a candidate is checked, and its Span built, when it is next in line."""
    ranges, firsts, lasts = found.candidates(kind)
    kept = window.holding(ranges)
    if not kept:
        return
    key = rank_key(seed=policy.seed, content_hash=content_hash, kind=kind)
    ranks = rank_digests(key, map(ranges.__getitem__, kept))
    # Of equal ranks (one range captured twice), the later capture first, as in find_spans.
    later_first = range(len(kept) - 1, -1, -1)
    lowest = min(later_first, key=ranks.__getitem__)  # most queues are asked for one span
    for j in chain((lowest,), (j for j in _sorted(later_first, ranks) if j != lowest)):
        first, last = firsts[kept[j]], lasts[kept[j]]
        if (node_type := _node_type(kind, first, last)) is not None and _eligible(
            span := _span(kind, first, last, node_type), source, policy
        ):
            yield span


def _sorted(positions: range, ranks: list[bytes]) -> Iterator[int]:
    """Positions by rank, stable; sorted only when the first is asked."""
    yield from sorted(positions, key=ranks.__getitem__)


def _take_turns(queues: Iterable[Iterator[Span]], per_file: int) -> list[Span]:
    """Up to `per_file` spans, one per queue in turn, skipping a range already taken; a
    queue is started only when its turn comes."""
    picked: list[Span] = []
    taken: set[tuple[int, int]] = set()
    active = list(queues)
    while active and len(picked) < per_file:
        still: list[Iterator[Span]] = []
        for queue in active:
            if len(picked) == per_file:
                break
            span = next((s for s in queue if (s.start_byte, s.end_byte) not in taken), None)
            if span is not None:
                picked.append(span)
                taken.add((span.start_byte, span.end_byte))
                still.append(queue)
        active = still
    return picked


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


def _statement_runs(blocks: list[tree_sitter.Node], statements: set[int]) -> _Candidates:
    """Every run of 2-4 adjacent children of a block whose node ids are in `statements`, by
    block, then length, then start."""
    runs = _Candidates([], [], [])
    add_ranges, add_firsts, add_lasts = runs.ranges.extend, runs.firsts.extend, runs.lasts.extend
    for block in blocks:
        if block.named_child_count < _RUN_LENGTHS[0]:
            continue
        children = block.named_children
        if statements.issuperset(map(_ID, children)):  # most blocks: one run through them all
            groups = [children]
        else:
            groups, begin = [], 0
            for end, child in enumerate([*children, None]):  # None ends the last run
                if child is None or child.id not in statements:
                    groups.append(children[begin:end])
                    begin = end + 1
        for group in groups:
            starts, ends = list(map(_START_BYTE, group)), list(map(_END_BYTE, group))
            for length in _RUN_LENGTHS[: max(len(group) - 1, 0)]:
                count = len(group) - length + 1
                add_ranges(zip(starts[:count], ends[length - 1 :], strict=True))
                add_firsts(group[:count])
                add_lasts(group[length - 1 :])
    return runs


def point_rank(*, seed: int, content_hash: str, span: Span) -> str:
    """A stable, seed-dependent order key for a point (sha256 hex): the run cap keeps the lowest."""
    key = rank_key(seed=seed, content_hash=content_hash, kind=span.kind)
    return hashlib.sha256(key % (span.start_byte, span.end_byte)).hexdigest()


def rank_digests(key: bytes, ranges: Iterable[tuple[int, int]]) -> list[bytes]:
    """The sha256 rank (digest) of each (start_byte, end_byte) under a `rank_key`, in C loops."""
    return list(map(_DIGEST, map(hashlib.sha256, map(key.__mod__, ranges))))


def rank_key(*, seed: int, content_hash: str, kind: SpanKind) -> bytes:
    """What a point's rank hashes, as a format of its (start_byte, end_byte)."""
    prefix = f"{seed}\0{content_hash}\0".encode() + _NAMES[kind] + b"\0"
    return prefix.replace(b"%", b"%%") + b"%d\0%d"


def _eligible(span: Span, source: bytes, policy: SamplingPolicy) -> bool:
    """Within the line and character limits, with a word character (offsets: see `_queue`)."""
    if span.end_line - span.start_line >= policy.max_lines:
        return False
    text = span.text_in(source)
    return policy.min_chars <= len(text) <= policy.max_chars and _WORD.search(text) is not None
