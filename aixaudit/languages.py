"""Languages we audit: extension -> grammar, comment syntax and aiXcoder's name for it.

This module is the only one that touches tree-sitter's API directly (it changed between
0.22 and 0.26), so parsing and querying go through `parse`, `compile_query` and `captures`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import PurePosixPath
from typing import Any

import tree_sitter
import tree_sitter_c
import tree_sitter_cpp
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_rust
import tree_sitter_typescript


@dataclass(frozen=True)
class Language:
    """A language aixaudit can parse and prompt for."""

    name: str  # our id, also the name of its query file: span_queries/<name>.scm
    display: str  # as aiXcoder's prompt header writes it: "the code file is written by {display}"
    extensions: tuple[str, ...]
    comment: str  # line-comment marker used for prompt headers and cross-file context
    grammar: Callable[[], Any]


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language("python", "Python", (".py", ".pyi"), "#", tree_sitter_python.language),
        Language("java", "Java", (".java",), "//", tree_sitter_java.language),
        Language(
            "javascript",
            "JavaScript",
            (".js", ".mjs", ".cjs", ".jsx"),
            "//",
            tree_sitter_javascript.language,
        ),
        Language(
            "typescript",
            "TypeScript",
            (".ts", ".mts", ".cts"),
            "//",
            tree_sitter_typescript.language_typescript,
        ),
        Language(
            "tsx", "TypeScript with JSX", (".tsx",), "//", tree_sitter_typescript.language_tsx
        ),
        Language("go", "Go", (".go",), "//", tree_sitter_go.language),
        Language("rust", "Rust", (".rs",), "//", tree_sitter_rust.language),
        Language("c", "C", (".c", ".h"), "//", tree_sitter_c.language),
        Language(
            "cpp",
            "C++",
            (".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++"),
            "//",
            tree_sitter_cpp.language,
        ),
    )
}

_BY_EXTENSION = {ext: lang for lang in LANGUAGES.values() for ext in lang.extensions}


def language_for_path(path: str) -> Language | None:
    """The language of a file by its extension (case-insensitive), or None if we don't audit it."""
    return _BY_EXTENSION.get(PurePosixPath(path).suffix.lower())


def get_language(name: str) -> Language:
    """Look a language up by its id; KeyError names the ones we know."""
    try:
        return LANGUAGES[name]
    except KeyError:
        raise KeyError(f"unknown language {name!r}; known: {', '.join(LANGUAGES)}") from None


@cache
def ts_language(name: str) -> tree_sitter.Language:
    return tree_sitter.Language(LANGUAGES[name].grammar())


@cache
def _parser(name: str) -> tree_sitter.Parser:
    return tree_sitter.Parser(ts_language(name))


class LimitReason(StrEnum):
    """Why a file was too costly to audit; stored as its skip reason."""

    PARSE_TIMEOUT = "parse_timeout"
    TOO_COMPLEX = "too_complex"


@dataclass(frozen=True)
class ParseLimits:
    """What one file may cost, so that a hostile or generated file cannot stall an unattended
    audit or swell its memory: parse time, and syntax nodes (the query's work and the number
    of candidate spans grow with them).

    The time limit applies to files of TIMED_PARSE_MIN_BYTES and more: a timed parse costs
    about 1 s per MB more (see `_parse_until`), and tree-sitter, which keeps at most a few
    parse versions, takes milliseconds over anything smaller."""

    timeout_s: float = 10.0
    max_nodes: int = 1_000_000  # about 1 per byte at the default file size cap; code has < 0.8


TIMED_PARSE_MIN_BYTES = 64 * 1024


class LimitExceeded(Exception):
    """A file over one of its ParseLimits: skipped with `reason`, never fatal to a run."""

    def __init__(self, reason: LimitReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse(
    language: Language,
    source: bytes,
    *,
    old_tree: tree_sitter.Tree | None = None,
    limits: ParseLimits | None = None,
) -> tree_sitter.Tree:
    """Parse source bytes with the language's grammar (parsers are cached per process); with
    `old_tree` (already edited to match `source`), an incremental re-parse. With `limits`,
    LimitExceeded when the parse takes longer or the tree has more nodes than they allow."""
    parser = _parser(language.name)
    if limits is not None and len(source) >= TIMED_PARSE_MIN_BYTES:
        deadline = time.monotonic() + limits.timeout_s
        timed = _parse_until(parser, source, old_tree, deadline)
        if timed is None:
            raise LimitExceeded(
                LimitReason.PARSE_TIMEOUT, f"parsing took over {limits.timeout_s:g} s"
            )
        tree = timed
    else:
        tree = parser.parse(source) if old_tree is None else parser.parse(source, old_tree)
    if limits is None:
        return tree
    nodes = tree.root_node.descendant_count
    if nodes > limits.max_nodes:
        raise LimitExceeded(
            LimitReason.TOO_COMPLEX, f"{nodes} syntax nodes, over {limits.max_nodes}"
        )
    return tree


def _parse_until(
    parser: tree_sitter.Parser, source: bytes, old_tree: tree_sitter.Tree | None, deadline: float
) -> tree_sitter.Tree | None:
    """The tree, or None when parsing was still going at `deadline` (monotonic seconds).

    tree-sitter 0.26 bounds a parse only through a progress callback, which its Python binding
    takes only when the source comes from a read callback; a halted parse raises ValueError and
    would resume on the parser's next call unless the parser is reset. The binding (0.26.1)
    never releases what the read callback returns, so it returns one byte at a time: CPython
    keeps single bytes (and b"") as shared objects, which nothing can leak. That costs about
    1 s per MB (4x a plain parse), inside the time limit."""

    def read(offset: int, _point: tree_sitter.Point) -> bytes:
        return source[offset : offset + 1]

    def halt(_offset: int, _has_error: bool) -> bool:
        return time.monotonic() > deadline

    try:
        if old_tree is None:  # the binding takes a Tree or no argument, not None
            return parser.parse(read, progress_callback=halt)
        return parser.parse(read, old_tree, progress_callback=halt)
    except ValueError:
        parser.reset()
        return None


def compile_query(language: Language, text: str) -> tree_sitter.Query:
    return tree_sitter.Query(ts_language(language.name), text)


def captures(query: tree_sitter.Query, node: tree_sitter.Node) -> dict[str, list[tree_sitter.Node]]:
    """Capture name -> nodes, for a query run over a subtree."""
    return tree_sitter.QueryCursor(query).captures(node)


def matches(
    query: tree_sitter.Query, node: tree_sitter.Node, *, max_start_depth: int | None = None
) -> list[dict[str, list[tree_sitter.Node]]]:
    """Capture name -> nodes, one dict per match of a query over a subtree (captures that
    belong together, such as an import and the names it takes, stay together). With
    `max_start_depth`, patterns start no deeper below `node`: deeper nodes are never visited."""
    cursor = tree_sitter.QueryCursor(query)
    if max_start_depth is not None:
        cursor.set_max_start_depth(max_start_depth)
    return [found for _, found in cursor.matches(node)]
