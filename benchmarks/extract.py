"""Span extraction over the Python standard library vs a bare tree-sitter parse of the same files.

pick_spans is what planning runs per file: parse, the span query, and the sampling of the
points (default policy). It parses too, so the ratio is what the query and the picking add on
top of parsing (target: at most 1.5x). parse+query, with nothing built from the captures, is
the floor any query-based extraction pays; find_spans (every candidate as a Span) shows what
picking avoids. Files are read and hashed before timing; the passes alternate. Times are CPU
seconds of this process (other processes on a loaded machine inflate wall time unevenly), and
the load average is printed beside them.

    .venv/bin/python benchmarks/extract.py [--limit N] [--repeat R]
"""

from __future__ import annotations

import argparse
import hashlib
import os
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


Corpus = list[tuple[bytes, str]]  # (source, sha256)
POLICY = spans.SamplingPolicy()


def bare_parse(corpus: Corpus) -> int:
    for source, _ in corpus:
        parse(PYTHON, source)
    return 0


def parse_and_query(corpus: Corpus) -> int:
    return sum(
        len(nodes)
        for source, _ in corpus
        for nodes in captures(QUERY, parse(PYTHON, source).root_node).values()
    )


def pick(corpus: Corpus) -> int:
    return sum(
        len(spans.pick_spans(PYTHON, source, policy=POLICY, content_hash=sha256))
        for source, sha256 in corpus
    )


def find_all(corpus: Corpus) -> int:
    return sum(len(spans.find_spans(PYTHON, source)) for source, _ in corpus)


PASSES: dict[str, Callable[[Corpus], int]] = {
    "parse": bare_parse,
    "parse+query": parse_and_query,
    "pick_spans": pick,
    "find_spans": find_all,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="at most N files")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each kind")
    args = parser.parse_args()

    corpus = [(source, hashlib.sha256(source).hexdigest()) for source in stdlib_sources(args.limit)]
    megabytes = sum(len(source) for source, _ in corpus) / 1e6
    print(f"corpus: {len(corpus)} files, {megabytes:.1f} MB (Python stdlib)")
    pick(corpus[:50])  # compile the query and warm the parser outside the timings

    times: dict[str, list[float]] = {name: [] for name in PASSES}
    counts: dict[str, int] = {}
    for i in range(args.repeat):
        for name, run in PASSES.items():
            start = time.process_time()
            counts[name] = run(corpus)
            times[name].append(time.process_time() - start)
        print(f"pass {i + 1}: " + "  ".join(f"{name} {times[name][-1]:.2f}s" for name in PASSES))

    print(
        f"captured nodes: {counts['parse+query']}  candidates: {counts['find_spans']}  "
        f"picked: {counts['pick_spans']}"
    )
    for label, choose in (("best", min), ("median", statistics.median)):
        base = choose(times["parse"])
        print(
            f"{label}: "
            + "  ".join(
                f"{name} {choose(times[name]):.2f}s ({megabytes / choose(times[name]):.1f} MB/s, "
                f"{choose(times[name]) / base:.2f}x)"
                for name in PASSES
            )
        )
    ratio = min(times["pick_spans"]) / min(times["parse"])
    load = "/".join(f"{avg:.1f}" for avg in os.getloadavg())
    print(f"ratio pick_spans / parse (best): {ratio:.2f}x (target <= 1.5x); load {load}")


if __name__ == "__main__":
    main()
