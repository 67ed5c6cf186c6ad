"""What one file takes from its repository and offers to it: its imports as written, and the
signatures (with doc comments or docstrings) of its definitions.

Read with one tree-sitter query per language (`queries/<language>.scm`; TypeScript's adds to
JavaScript's), with fixed capture names: @import.module, @import.name, @import.wildcard,
@import.submodule, @definition, @definition.name, @definition.body. An outline depends on
nothing but the file's language and content, so it is kept per content hash and an unchanged
file is not parsed again by the next run.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter

from aixaudit.languages import Language, compile_query, matches

OUTLINE_VERSION = 2  # bump when what an outline holds changes: stored outlines are then re-read
MAX_SNIPPET_LINES = 12  # a definition's doc comment and signature, at most

_QUERY_DIR = Path(__file__).parent / "queries"
# Query files read one after the other: JavaScript's imports and definitions hold in TypeScript
# and TSX, whose own file adds only theirs (interfaces, type aliases).
_QUERY_FILES = {"typescript": ("javascript", "typescript"), "tsx": ("javascript", "typescript")}
_QUOTES = "\"'<>` \t"
# How deep a language's patterns may start: Python offers the names at its top level and in
# its classes' bodies, and imports deeper than a function's own block are local to a branch of
# it. Not visiting the rest of the tree is most of what reading an outline costs.
_MAX_START_DEPTH = {"python": 4}


@dataclass(frozen=True)
class Import:
    """One import as written: `module` with quotes stripped (`os.path`, `./util`, `stdio.h`,
    `a.b.C`, `crate::a::{b, c}`), and the names taken from it (empty: the whole module; `*`:
    Java's wildcard)."""

    module: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Definition:
    name: str
    owner: str  # the enclosing definition's name ("" at the top level)
    line: int  # 1-based line where the definition (its doc comment excluded) starts
    snippet: str  # doc comment, signature and docstring as written, indentation kept


@dataclass(frozen=True)
class Outline:
    imports: tuple[Import, ...]
    definitions: tuple[Definition, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outline:
        return cls(
            tuple(Import(i["module"], tuple(i["names"])) for i in data["imports"]),
            tuple(Definition(**d) for d in data["definitions"]),
        )


def outline_key(language: str, sha256: str) -> str:
    """Where a file's outline is stored: its content, its language and the outline version."""
    return hashlib.sha256(f"{OUTLINE_VERSION}\0{language}\0{sha256}".encode()).hexdigest()


@cache
def outline_query(language: Language) -> tree_sitter.Query:
    names = _QUERY_FILES.get(language.name, (language.name,))
    text = "\n".join((_QUERY_DIR / f"{name}.scm").read_text(encoding="utf-8") for name in names)
    return compile_query(language, text)


def read_outline(language: Language, source: bytes, root: tree_sitter.Node) -> Outline:
    """The outline of a parsed file (`root` is its tree's root node)."""
    imports: dict[int, tuple[str, list[str]]] = {}  # module node start -> (module, names)
    found: list[tuple[tree_sitter.Node, tree_sitter.Node, tree_sitter.Node | None]] = []
    depth = _MAX_START_DEPTH.get(language.name)
    for match in matches(outline_query(language), root, max_start_depth=depth):
        if "import.submodule" in match:  # Rust's `mod name;`: a module file beside this one
            module = match["import.submodule"][0]
            imports.setdefault(module.start_byte, (f"self::{_text(source, module)}", []))
        elif "import.module" in match:
            module = match["import.module"][0]
            _, names = imports.setdefault(module.start_byte, (_text(source, module), []))
            names += [_text(source, n) for n in match.get("import.name", ())]
            names += ["*"] * bool(match.get("import.wildcard"))
        elif "definition" in match:
            body = match.get("definition.body")
            found.append(
                (match["definition"][0], match["definition.name"][0], body[0] if body else None)
            )
    names_by_node = {d.id: _text(source, n) for d, n, _ in found}
    definitions = [
        Definition(
            _text(source, name),
            _owner(definition, names_by_node),
            definition.start_point[0] + 1,
            _snippet(source, definition, body),
        )
        for definition, name, body in found
    ]
    definitions.sort(key=lambda d: d.line)
    return Outline(
        tuple(Import(module, tuple(dict.fromkeys(names))) for module, names in imports.values()),
        tuple(definitions),
    )


def _text(source: bytes, node: tree_sitter.Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace").strip(_QUOTES)


def _owner(node: tree_sitter.Node, names_by_node: dict[int, str]) -> str:
    """The name of the nearest definition around `node` ("" at the top level). By node id: a
    class body holding one method spans the same bytes as the method."""
    parent = node.parent
    while parent is not None:
        name = names_by_node.get(parent.id)
        if name is not None:
            return name
        parent = parent.parent
    return ""


def _snippet(source: bytes, node: tree_sitter.Node, body: tree_sitter.Node | None) -> str:
    """Doc comments just above the definition, its text up to the body, and a docstring (a
    string as the body's first statement, as Python writes them)."""
    start = _doc_start(node)
    line_start = source.rfind(b"\n", 0, start) + 1
    if not source[line_start:start].strip():
        start = line_start  # the indentation, so that methods read as nested
    end = body.start_byte if body is not None else node.end_byte
    parts = [source[start:end].decode("utf-8", "replace").rstrip()]
    first = body.named_children[0] if body is not None and body.named_child_count else None
    if first is not None and first.type == "expression_statement" and _is_string(first):
        docstring = b" " * first.start_point[1] + source[first.start_byte : first.end_byte]
        parts.append(docstring.decode("utf-8", "replace"))
    lines = "\n".join(parts).splitlines()
    return "\n".join(line for line in lines[:MAX_SNIPPET_LINES] if line.strip())


def _is_string(statement: tree_sitter.Node) -> bool:
    return statement.named_child_count == 1 and statement.named_children[0].type == "string"


def _doc_start(node: tree_sitter.Node) -> int:
    """The start of the comments directly above `node` (no blank line between), or its own."""
    start, line = node.start_byte, node.start_point[0]
    comment = node.prev_sibling
    while comment is not None and "comment" in comment.type and comment.end_point[0] >= line - 1:
        start, line = comment.start_byte, comment.start_point[0]
        comment = comment.prev_sibling
    return start
