"""Span extraction over the Python standard library vs a bare tree-sitter parse of the same files.

pick_spans is what planning runs per file: parse, the span query, and the sampling of the
points (default policy). It parses too, so the ratio is what the query and the picking add on
top of parsing (target: at most 1.5x, in the median pass). parse+query, with nothing built
from the captures, is what any query-based extraction pays; find_spans (every candidate as a
Span) shows what picking avoids.

floor is the least work that keeps pick_spans' picks, short of another sampling rule: the
parse; a query that captures only the kinds the file's picks have (the turns reach at least
those); and the sha256 rank of each of their candidates that fits the size window, as picking
must find the lowest. It leaves out every check, every Span, and statement runs (their
candidates come from the blocks' children), so pick_spans can never be cheaper.

Files are read and hashed before timing. Each file goes through every kind of work in turn,
in an order that rotates from file to file, so that a change of load on the machine falls on
all kinds alike; a pass is one round over the corpus, and its ratios compare sums of the same
files. Times are CPU seconds of this process (other processes on a loaded machine inflate
wall time unevenly); the load average is printed with them, as a loaded machine still slows
the Python part of the work more than the parse.

    .venv/bin/python benchmarks/extract.py [--limit N] [--repeat R]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import sysconfig
import time
from collections.abc import Callable
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import tree_sitter

from aixaudit import spans
from aixaudit.languages import captures, compile_query, get_language, parse
from aixaudit.resources import span_queries_dir

PYTHON = get_language("python")
QUERY = spans.span_query(PYTHON)
POLICY = spans.SamplingPolicy()
TARGET = 1.5
CAPTURE = re.compile(rb"@([\w.]+)")
BYTE_RANGE = attrgetter("byte_range")


def stdlib_sources(limit: int | None) -> list[bytes]:
    """Every readable *.py of the standard library (site-packages is not stdlib), sorted by path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    sources: list[bytes] = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.relative_to(root).parts:
            continue
        try:
            sources.append(path.read_bytes())
        except OSError:
            continue
        if limit is not None and len(sources) >= limit:
            break
    return sources


class File(NamedTuple):
    source: bytes
    sha256: str
    picked_kinds: frozenset[spans.SpanKind]  # of its picks, found before timing


def bare_parse(file: File) -> int:
    parse(PYTHON, file.source)
    return 0


def parse_and_query(file: File) -> int:
    return sum(map(len, captures(QUERY, parse(PYTHON, file.source).root_node).values()))


def pick(file: File) -> int:
    return len(spans.pick_spans(PYTHON, file.source, policy=POLICY, content_hash=file.sha256))


def find_all(file: File) -> int:
    return len(spans.find_spans(PYTHON, file.source))


def floor(file: File) -> int:
    """Parse, capture the picked kinds' nodes, rank the ones in the window: see the docstring."""
    kinds = [kind for kind in file.picked_kinds if kind in spans.CAPTURE_NAMES]
    query = query_capturing(frozenset(spans.CAPTURE_NAMES[kind] for kind in kinds))
    nodes = captures(query, parse(PYTHON, file.source).root_node)
    window = spans.Window.of(file.source, POLICY)
    ranked = 0
    for kind in kinds:
        key = spans.rank_key(seed=POLICY.seed, content_hash=file.sha256, kind=kind)
        ranges = list(map(BYTE_RANGE, nodes.get(spans.CAPTURE_NAMES[kind], ())))
        ranked += len(spans.rank_digests(key, map(ranges.__getitem__, window.holding(ranges))))
    return ranked


@cache
def query_capturing(names: frozenset[str]) -> tree_sitter.Query:
    """The Python span query with only the patterns and captures in `names` left on (none: a
    query that walks the tree and captures nothing)."""
    text = (span_queries_dir() / "python.scm").read_bytes()
    query = compile_query(PYTHON, text.decode())
    for pattern in range(query.pattern_count):
        source = text[query.start_byte_for_pattern(pattern) : query.end_byte_for_pattern(pattern)]
        if not names.intersection(name.decode() for name in CAPTURE.findall(source)):
            query.disable_pattern(pattern)
    for name in map(query.capture_name, range(query.capture_count)):
        if name not in names:
            query.disable_capture(name)
    return query


WORK: dict[str, Callable[[File], int]] = {
    "parse": bare_parse,
    "parse+query": parse_and_query,
    "pick_spans": pick,
    "find_spans": find_all,
    "floor": floor,
}


def timed_pass(corpus: list[File]) -> tuple[dict[str, float], dict[str, int]]:
    """CPU seconds and results of each kind of work over the corpus, file by file."""
    names = list(WORK)
    seconds = dict.fromkeys(names, 0.0)
    counts = dict.fromkeys(names, 0)
    for i, file in enumerate(corpus):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.process_time()
            counts[name] += WORK[name](file)
            seconds[name] += time.process_time() - start
    return seconds, counts


def load() -> str:
    return "/".join(f"{average:.1f}" for average in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=400, help="the first N files (0: all)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes")
    args = parser.parse_args()

    sources = stdlib_sources(args.limit or None)
    corpus = [
        File(source, sha256, frozenset(span.kind for span in picks))
        for source in sources
        for sha256 in [hashlib.sha256(source).hexdigest()]
        for picks in [spans.pick_spans(PYTHON, source, policy=POLICY, content_hash=sha256)]
    ]
    megabytes = sum(map(len, sources)) / 1e6
    print(f"corpus: {len(corpus)} files, {megabytes:.1f} MB (Python stdlib); load {load()}")
    timed_pass(corpus)  # compile the queries and warm the parser outside the timings

    ratios: dict[str, list[float]] = {name: [] for name in WORK}
    counts: dict[str, int] = {}
    for i in range(max(args.repeat, 1)):
        seconds, counts = timed_pass(corpus)
        for name in WORK:
            ratios[name].append(seconds[name] / seconds["parse"])
        print(
            f"pass {i + 1}: "
            + "  ".join(f"{name} {seconds[name]:.2f}s ({ratios[name][-1]:.2f}x)" for name in WORK)
            + f"; load {load()}"
        )
    print(
        f"captured nodes: {counts['parse+query']}  candidates: {counts['find_spans']}  "
        f"picked: {counts['pick_spans']} (per pass)"
    )
    for label, choose in (("median", statistics.median), ("best", min)):
        print(f"{label}: " + "  ".join(f"{name} {choose(ratios[name]):.2f}x" for name in WORK))
    median, best = statistics.median(ratios["pick_spans"]), min(ratios["pick_spans"])
    verdict = "met" if median <= TARGET else "NOT met"
    print(
        f"ratio pick_spans / parse: median {median:.2f}x, best {best:.2f}x "
        f"(target <= {TARGET}x in the median pass: {verdict}); load {load()}"
    )
    lowest = statistics.median(ratios["floor"])
    print(
        f"floor / parse: median {lowest:.2f}x, {counts['floor']} ranks a pass; what is left "
        f"under the target for everything else: {TARGET - lowest:.2f}x"
    )


if __name__ == "__main__":
    main()
