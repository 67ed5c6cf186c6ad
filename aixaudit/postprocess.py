"""Syntax-aware trimming of a raw completion, before it is scored.

A FIM model rarely stops exactly at the end of the masked span: it runs on into the next
statement, or repeats the code that follows. Benchmarks (SAFIM, CrossCodeEval) trim with the
syntax tree before scoring, and so does an IDE plugin before showing a suggestion; scoring the
raw text would measure the stopping criterion rather than the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import tree_sitter

from aixaudit.languages import Language, error_count, parse

_CLOSING_BRACKETS = ")]}"
_MIN_DUPLICATE_CHARS = 3


def trim_completion(
    raw: str,
    *,
    language: Language,
    prefix: str,
    suffix: str,
    node_type: str,
    stop_words: Sequence[str] = (),
    baseline_errors: int,
) -> str:
    """The part of `raw` that a user would get for the span, by three rules in order.

    1. Stop strings: cut at the earliest occurrence of any of `stop_words`.
    2. Syntax unit (SAFIM-style): parse prefix + completion + suffix and take the outermost
       node of type `node_type` (the masked original's type) that starts where the completion
       does (after its leading whitespace). If that node has no syntax error and ends inside
       the completion, cut there: the end of the first complete unit that fits the span.
       Otherwise try the completion with trailing lines dropped, one at a time, and then the
       first line cut after each closing bracket, right to left; keep the longest candidate
       whose insertion gives no more ERROR/MISSING nodes than `baseline_errors` (the original
       file's count). If none qualifies, keep the completion as it is.
    3. Suffix duplicate: if the completion ends with text that the suffix starts with
       (whitespace around both ignored), drop the longest such overlap that is a whole
       non-blank line of the suffix or at least 3 characters and does not start inside a word,
       provided the completion keeps some non-blank text and dropping does not add syntax
       errors (a `}` that closes the completion's own block stays).
    """
    insertion = _Insertion(language, prefix.encode(), suffix.encode())
    text = cut_at_stop_words(raw, stop_words)
    if not text.strip():
        return text
    text = _syntax_unit(text, insertion, node_type, baseline_errors)
    return _drop_suffix_duplicate(text, insertion, suffix)


def parses_after_insert(
    *, language: Language, prefix: str, completion: str, suffix: str, baseline_errors: int
) -> bool:
    """Whether inserting the completion adds no ERROR/MISSING node to the original file."""
    source = (prefix + completion + suffix).encode()
    return _parsed(language, source)[1] <= baseline_errors


def cut_at_stop_words(text: str, stop_words: Sequence[str]) -> str:
    """Text up to the earliest occurrence of any (non-empty) stop string."""
    cuts = [i for i in (text.find(word) for word in stop_words if word) if i >= 0]
    return text[: min(cuts)] if cuts else text


@dataclass(frozen=True)
class _Insertion:
    """The original file around the span, as bytes, ready to take candidate completions."""

    language: Language
    prefix: bytes
    suffix: bytes

    def parse(self, completion: str) -> tree_sitter.Tree:
        return _parsed(self.language, self.prefix + completion.encode() + self.suffix)[0]

    def errors(self, completion: str) -> int:
        return _parsed(self.language, self.prefix + completion.encode() + self.suffix)[1]


@lru_cache(maxsize=4)
def _parsed(language: Language, source: bytes) -> tuple[tree_sitter.Tree, int]:
    """A whole-file parse and its error count. Trimming one completion asks for the same
    insertion up to four times (syntax unit, first candidate, suffix check, parses_after_insert),
    and whole-file parses are most of an audit's CPU time."""
    tree = parse(language, source)
    return tree, error_count(tree)


def _syntax_unit(text: str, insertion: _Insertion, node_type: str, baseline_errors: int) -> str:
    encoded = text.encode()
    offset = len(insertion.prefix)
    start = offset + len(encoded) - len(encoded.lstrip())
    node = _outermost_at(insertion.parse(text).root_node, start, node_type)
    if node is not None and not node.has_error and node.end_byte <= offset + len(encoded):
        return encoded[: node.end_byte - offset].decode()
    for candidate in _candidates(text):
        if insertion.errors(candidate) <= baseline_errors:
            return candidate
    return text


def _outermost_at(root: tree_sitter.Node, start: int, node_type: str) -> tree_sitter.Node | None:
    """The highest node of the given type that starts at byte `start`."""
    node: tree_sitter.Node | None = root
    while node is not None:
        if node.start_byte == start and node.type == node_type:
            return node
        node = next((c for c in node.children if c.start_byte <= start < c.end_byte), None)
    return None


def _candidates(text: str) -> list[str]:
    """Non-blank shortenings of text, longest first: whole lines, then bracket cuts of line 1."""
    line_ends = [i for i, char in enumerate(text) if char == "\n"]
    lines = [text] + [text[:i] for i in reversed(line_ends)]
    first = text[: line_ends[0]] if line_ends else text
    brackets = [
        first[: i + 1] for i in reversed(range(len(first) - 1)) if first[i] in _CLOSING_BRACKETS
    ]
    return [c for c in lines + brackets if c.strip()]


def _drop_suffix_duplicate(text: str, insertion: _Insertion, suffix: str) -> str:
    body = text.rstrip()
    head = suffix.lstrip()
    errors_kept: int | None = None
    for size in range(min(len(body), len(head)), 0, -1):
        if not body.endswith(head[:size]) or not _counts_as_duplicate(head, size):
            continue
        shortened = body[:-size]
        if _is_word_char(shortened[-1:]) and _is_word_char(head[0]):
            continue  # the overlap starts inside a word: "to|tal" is no repetition of "tal"
        shortened = shortened.rstrip()
        if not shortened.strip():
            continue
        if errors_kept is None:
            errors_kept = insertion.errors(text)
        if insertion.errors(shortened) <= errors_kept:
            return shortened
    return text


def _counts_as_duplicate(head: str, size: int) -> bool:
    """Long enough to be a real repetition: 3+ characters, or a whole non-blank line."""
    overlap = head[:size]
    whole_line = size == len(head) or head[size] in "\r\n"
    return len(overlap.strip()) >= _MIN_DUPLICATE_CHARS or (whole_line and bool(overlap.strip()))


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"
