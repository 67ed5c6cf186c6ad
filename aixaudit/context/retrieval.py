"""Context strategies: which fragments of other files go before a point's prompt.

- `none`: the file alone (aixaudit before repository context).
- `imports`: signatures and docstrings of what the file imports from the repository, nearest
  file first; the same for every point of a file, so its points share one prompt prefix.
- `similar`: the top-k windows of lines by BM25 over identifiers against the lines before the
  point, as CrossCodeEval retrieves.
- `both`: the imports, then the similar windows.

Leak-proof: the answer never reaches the context. A window of the file itself is taken only if
it ends before the point's line, and nothing is taken from a copy of the file (see
`RepoIndex.copies_of`), however much it is imported or however well it ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .index import CHUNK_LINES, RepoIndex, identifiers

TOP_K = 3  # aiXcoder's CrossCodeEval numbers are with BM25 top-3 context
QUERY_LINES = 10  # the lines before the point that make the query


class ContextStrategy(StrEnum):
    NONE = "none"
    IMPORTS = "imports"
    SIMILAR = "similar"
    BOTH = "both"


@dataclass(frozen=True)
class Fragment:
    path: str  # the repository file it was taken from
    text: str  # code as written there


def retrieve(
    index: RepoIndex, strategy: ContextStrategy, *, path: str, prefix: str, k: int = TOP_K
) -> list[Fragment]:
    """The fragments `strategy` puts before a point of `path` whose text before it is `prefix`."""
    fragments: list[Fragment] = []
    if strategy in (ContextStrategy.IMPORTS, ContextStrategy.BOTH):
        fragments += imported(index, path)
    if strategy in (ContextStrategy.SIMILAR, ContextStrategy.BOTH):
        fragments += similar(index, path, prefix, k)
    return fragments


def imported(index: RepoIndex, path: str) -> list[Fragment]:
    """One fragment per imported file, nearest first: the definitions the import names (all of
    them for a whole-module import, or when the names are modules), as signatures."""
    copies = index.copies_of(path)
    fragments = []
    for source, item in index.resolved_imports(path):
        definitions = index.definitions(source)
        if source in copies or not definitions:
            continue
        named = [d for d in definitions if {d.name, d.owner} & set(item.names)]
        text = "\n".join(d.snippet for d in named or definitions)
        fragments.append(Fragment(source, text))
    return fragments


def similar(index: RepoIndex, path: str, prefix: str, k: int = TOP_K) -> list[Fragment]:
    """The `k` best windows for the identifiers of the last QUERY_LINES lines of `prefix`;
    windows of `path` itself only if they end before the point's line."""
    query = identifiers("\n".join(prefix.rsplit("\n", QUERY_LINES)[-QUERY_LINES:]))
    allowed = np.ones(index.chunk_count, dtype=bool)
    for copy in index.copies_of(path):
        own = index.chunk_range(copy)
        allowed[own.start : own.stop] = False
    own = index.chunk_range(path)  # windows ending before the point's line stay
    allowed[own.start + prefix.count("\n") // CHUNK_LINES : own.stop] = False
    scores = index.scores(query, allowed)
    best = np.argsort(-scores, kind="stable")[:k]
    return [
        Fragment(chunk.path, chunk.text)
        for chunk in (index.chunk(int(number)) for number in best if scores[number] > 0)
    ]
