"""Languages we audit: extension -> grammar, comment syntax and aiXcoder's name for it.

This module is the only one that touches tree-sitter's API directly (it changed between
0.22 and 0.26), so parsing and querying go through `parse`, `compile_query` and `captures`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def parse(
    language: Language, source: bytes, *, old_tree: tree_sitter.Tree | None = None
) -> tree_sitter.Tree:
    """Parse source bytes with the language's grammar (parsers are cached per process); with
    `old_tree` (already edited to match `source`), an incremental re-parse."""
    parser = _parser(language.name)
    return parser.parse(source) if old_tree is None else parser.parse(source, old_tree)


def compile_query(language: Language, text: str) -> tree_sitter.Query:
    return tree_sitter.Query(ts_language(language.name), text)


def captures(query: tree_sitter.Query, node: tree_sitter.Node) -> dict[str, list[tree_sitter.Node]]:
    """Capture name -> nodes, for a query run over a subtree."""
    return tree_sitter.QueryCursor(query).captures(node)


def matches(
    query: tree_sitter.Query, node: tree_sitter.Node
) -> list[dict[str, list[tree_sitter.Node]]]:
    """Capture name -> nodes, one dict per match of a query over a subtree (captures that
    belong together, such as an import and the names it takes, stay together)."""
    return [found for _, found in tree_sitter.QueryCursor(query).matches(node)]


def error_count(tree: tree_sitter.Tree) -> int:
    """ERROR and MISSING nodes in a tree: 0 means it parsed cleanly."""
    count = 0
    cursor = tree.walk()
    visited_children = False
    while True:
        node = cursor.node
        if not visited_children:
            if node is not None and (node.is_error or node.is_missing):
                count += 1
            if node is not None and node.has_error and cursor.goto_first_child():
                continue
        if cursor.goto_next_sibling():
            visited_children = False
        elif cursor.goto_parent():
            visited_children = True
        else:
            return count
