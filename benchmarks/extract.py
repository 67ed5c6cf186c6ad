"""Span extraction over the Python standard library vs a bare tree-sitter parse of the same files.

find_spans parses too, so the ratio is what the query and span building add on top of parsing
(target: at most 1.5x). A third pass, parse + the same query with no span building, shows the
floor any query-based extraction pays. Files are read before timing; the passes alternate.

    .venv/bin/python benchmarks/extract.py [--limit N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from aixaudit import spans
from aixaudit.languages import captures, get_language, parse

PYTHON = get_language("python")
QUERY = spans.span_query(PYTHON)


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


def bare_parse(sources: list[bytes]) -> int:
    for source in sources:
        parse(PYTHON, source)
    return 0


def parse_and_query(sources: list[bytes]) -> int:
    return sum(
        len(nodes)
        for source in sources
        for nodes in captures(QUERY, parse(PYTHON, source).root_node).values()
    )


def extract(sources: list[bytes]) -> int:
    return sum(len(spans.find_spans(PYTHON, source)) for source in sources)


PASSES: dict[str, Callable[[list[bytes]], int]] = {
    "parse": bare_parse,
    "parse+query": parse_and_query,
    "find_spans": extract,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="at most N files")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each kind")
    args = parser.parse_args()

    sources = stdlib_sources(args.limit)
    megabytes = sum(map(len, sources)) / 1e6
    print(f"corpus: {len(sources)} files, {megabytes:.1f} MB (Python stdlib)")
    extract(sources[:50])  # compile the query and warm the parser outside the timings

    times: dict[str, list[float]] = {name: [] for name in PASSES}
    counts: dict[str, int] = {}
    for i in range(args.repeat):
        for name, run in PASSES.items():
            start = time.perf_counter()
            counts[name] = run(sources)
            times[name].append(time.perf_counter() - start)
        print(f"pass {i + 1}: " + "  ".join(f"{name} {times[name][-1]:.2f}s" for name in PASSES))

    print(f"captured nodes: {counts['parse+query']}  spans: {counts['find_spans']}")
    for label, pick in (("best", min), ("median", statistics.median)):
        base = pick(times["parse"])
        print(
            f"{label}: "
            + "  ".join(
                f"{name} {pick(times[name]):.2f}s ({megabytes / pick(times[name]):.1f} MB/s, "
                f"{pick(times[name]) / base:.2f}x)"
                for name in PASSES
            )
        )
    ratio = min(times["find_spans"]) / min(times["parse"])
    print(f"ratio find_spans / parse (best): {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
