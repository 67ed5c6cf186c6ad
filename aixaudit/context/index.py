"""A run's repository index: every audited file's outline, imports resolved to files, copies
of each file found, and windows of lines ranked by BM25 for retrieval.

Built once per run, with one parse per file whose outline is not stored yet (an unchanged file's
outline comes from an earlier run). Retrieval ranks with `bm25s` over identifiers, as
CrossCodeEval's BM25 retriever does over its 10-line chunks.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import bm25s
import numpy as np
from numpy.typing import NDArray

from aixaudit.languages import get_language, parse

from .imports import RepositoryPaths, distance, resolve_imports
from .outline import Definition, Import, Outline, outline_key, read_outline

CHUNK_LINES = 10  # CrossCodeEval's retrieval window (here side by side, not overlapping)
COPY_SHARE = 0.5  # sharing half of either file's distinctive lines makes two files copies
DISTINCT_CHARS = 12  # shorter lines (braces, `else:`, `return x`) say nothing about copying
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RE_EXPORTING = ("python",)  # languages whose imports name what they take from a module


def identifiers(text: str) -> list[str]:
    return _IDENTIFIER.findall(text)


@dataclass(frozen=True)
class IndexedFile:
    path: str
    language: str
    sha256: str
    text: str


@dataclass(frozen=True)
class Chunk:
    path: str
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, exclusive
    text: str


class RepoIndex:
    """Outlines, resolved imports, copies and BM25-ranked windows of lines of one checkout.

    Windows are CHUNK_LINES lines side by side, numbered file after file. The BM25 model over
    them is built when first asked for: a run that only shows imports never pays for it."""

    def __init__(self, files: Sequence[IndexedFile], outlines: Mapping[str, Outline]) -> None:
        self.files = {file.path: file for file in sorted(files, key=lambda f: f.path)}
        self.outlines = dict(outlines)  # path -> outline
        self.paths = RepositoryPaths(self.files)
        self._resolved: dict[str, list[tuple[str, Import]]] = {}
        self._direct_imports: dict[str, list[tuple[str, Import]]] = {}
        self._copies: dict[str, frozenset[str]] = {}
        self._first_chunk: list[int] = []  # of each file, in path order
        self._distinct: dict[str, frozenset[str]] = {}
        count = 0
        for path, file in self.files.items():
            lines = file.text.split("\n")
            self._first_chunk.append(count)
            count += -(-len(lines) // CHUNK_LINES)
            stripped = map(str.strip, lines)
            self._distinct[path] = frozenset(s for s in stripped if len(s) >= DISTINCT_CHARS)
        self._order = list(self.files)
        self.chunk_count = count

    def resolved_imports(self, path: str) -> list[tuple[str, Import]]:
        """(file, import) for what `path` imports from the repository, nearest first. In
        Python, a name the named module only imports itself (a package's `__init__` doing
        `from .cart import Cart`) resolves to the file that defines it."""
        if path not in self._resolved:
            found = self._direct(path)
            if self.files[path].language in _RE_EXPORTING:
                found = self._through_re_exports(path, found)
            self._resolved[path] = found
        return self._resolved[path]

    def _direct(self, path: str) -> list[tuple[str, Import]]:
        if path not in self._direct_imports:
            file, imports = self.files[path], self.outlines[path].imports
            self._direct_imports[path] = resolve_imports(file.language, path, imports, self.paths)
        return self._direct_imports[path]

    def _through_re_exports(
        self, path: str, found: list[tuple[str, Import]]
    ) -> list[tuple[str, Import]]:
        """`found` with each imported name moved to the file defining it, where the named
        module re-exports it; a module keeps the names it defines or that lead nowhere."""
        names: dict[str, list[str]] = {}  # file -> names taken from it, in import order
        modules: dict[str, str] = {}  # file -> the module as written in the first import
        whole: set[str] = set()  # files imported as a whole: all their definitions are shown
        for target, item in found:
            if not item.names:
                whole.add(target)
                names.setdefault(target, [])
                modules.setdefault(target, item.module)
            for name in item.names:
                file = self._origin(target, name, frozenset({path})) or target
                names.setdefault(file, []).append(name)
                modules.setdefault(file, item.module)
        ordered = sorted(names, key=lambda file: distance(path, file))  # stable: import order
        return [
            (
                file,
                Import(modules[file], () if file in whole else tuple(dict.fromkeys(names[file]))),
            )
            for file in ordered
        ]

    def _origin(self, module: str, name: str, seen: frozenset[str]) -> str | None:
        """The file defining `name` that `module` imports it from, followed from import to
        import; None when `module` defines it itself, or no file along the way does."""
        if name == "*" or self._defines(module, name):
            return None
        for source, item in self._direct(module):
            if name in item.names and source not in seen:
                if self._defines(source, name):
                    return source
                further = self._origin(source, name, seen | {module})
                if further is not None:
                    return further
        return None

    def _defines(self, path: str, name: str) -> bool:
        return any(d.name == name for d in self.outlines[path].definitions)

    def definitions(self, path: str) -> tuple[Definition, ...]:
        return self.outlines[path].definitions

    def copies_of(self, path: str) -> frozenset[str]:
        """Other files that are exact or near copies of `path`, or of a part of it (generated
        copies, vendored duplicates): they share half of either one's distinctive lines, or
        the same text. Nothing is ever retrieved from them for `path`."""
        if path not in self._copies:
            mine, sha = self._distinct[path], self.files[path].sha256

            def is_copy(other: str) -> bool:
                theirs = self._distinct[other]
                smaller = min(len(mine), len(theirs))
                return self.files[other].sha256 == sha or (
                    smaller > 0 and len(mine & theirs) >= COPY_SHARE * smaller
                )

            self._copies[path] = frozenset(o for o in self.files if o != path and is_copy(o))
        return self._copies[path]

    def chunk_range(self, path: str) -> range:
        """The numbers of the windows of `path`."""
        i = bisect.bisect_left(self._order, path)
        end = self._first_chunk[i + 1] if i + 1 < len(self._order) else self.chunk_count
        return range(self._first_chunk[i], end)

    def chunk(self, number: int) -> Chunk:
        i = bisect.bisect_right(self._first_chunk, number) - 1
        path = self._order[i]
        start = (number - self._first_chunk[i]) * CHUNK_LINES
        lines = self.files[path].text.split("\n")[start : start + CHUNK_LINES]
        return Chunk(path, start, start + len(lines), "\n".join(lines))

    def scores(self, query: list[str], allowed: NDArray[np.bool_]) -> NDArray[np.float32]:
        """BM25 score of every window for the query's identifiers; 0 where not `allowed`."""
        model = self.bm25
        vocabulary = model.vocab_dict if model is not None else {}
        known = [vocabulary[word] for word in query if word in vocabulary]
        if model is None or not known:
            return np.zeros(self.chunk_count, dtype=np.float32)
        scores = model.get_scores(known, weight_mask=allowed.astype(np.float32))
        return np.asarray(scores, dtype=np.float32)

    @cached_property
    def bm25(self) -> bm25s.BM25 | None:
        """BM25 over the identifiers of every window (bm25s, its default Lucene variant); None
        when no window holds an identifier."""
        corpus = [
            identifiers("\n".join(lines[start : start + CHUNK_LINES]))
            for file in self.files.values()
            for lines in [file.text.split("\n")]
            for start in range(0, len(lines), CHUNK_LINES)
        ]
        if not any(corpus):
            return None
        model = bm25s.BM25()
        model.index(corpus, show_progress=False)
        return model


def build_index(
    files: Iterable[IndexedFile], outlines: Mapping[str, Outline]
) -> tuple[RepoIndex, dict[str, Outline]]:
    """The index of `files`, parsing only those whose outline (by `outline_key`) is not in
    `outlines`; returns it with the outlines it read, for storing."""
    files = list(files)
    read: dict[str, Outline] = {}
    by_path: dict[str, Outline] = {}
    for file in files:
        key = outline_key(file.language, file.sha256)
        outline = outlines.get(key) or read.get(key)
        if outline is None:
            language = get_language(file.language)
            source = file.text.encode()
            outline = read[key] = read_outline(language, source, parse(language, source).root_node)
        by_path[file.path] = outline
    return RepoIndex(files, by_path), read
