"""Span extraction over the Python standard library vs a bare tree-sitter parse of the same files.

pick_spans is what planning runs per file: parse, the span query, and the sampling of the
points (default policy). It parses too, so the ratio is what the query and the picking add on
top of parsing (target: at most 1.5x, in the median pass). parse+query, with nothing built
from the captures, is the floor any query-based extraction pays; find_spans (every candidate
as a Span) shows what picking avoids.

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
import statistics
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from aixaudit import spans
from aixaudit.languages import captures, get_language, parse

PYTHON = get_language("python")
QUERY = spans.span_query(PYTHON)
POLICY = spans.SamplingPolicy()
TARGET = 1.5


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


def bare_parse(source: bytes, _sha256: str) -> int:
    parse(PYTHON, source)
    return 0


def parse_and_query(source: bytes, _sha256: str) -> int:
    return sum(map(len, captures(QUERY, parse(PYTHON, source).root_node).values()))


def pick(source: bytes, sha256: str) -> int:
    return len(spans.pick_spans(PYTHON, source, policy=POLICY, content_hash=sha256))


def find_all(source: bytes, _sha256: str) -> int:
    return len(spans.find_spans(PYTHON, source))


WORK: dict[str, Callable[[bytes, str], int]] = {
    "parse": bare_parse,
    "parse+query": parse_and_query,
    "pick_spans": pick,
    "find_spans": find_all,
}


def timed_pass(corpus: list[tuple[bytes, str]]) -> tuple[dict[str, float], dict[str, int]]:
    """CPU seconds and results of each kind of work over the corpus, file by file."""
    names = list(WORK)
    seconds = dict.fromkeys(names, 0.0)
    counts = dict.fromkeys(names, 0)
    for i, (source, sha256) in enumerate(corpus):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.process_time()
            counts[name] += WORK[name](source, sha256)
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
    corpus = [(source, hashlib.sha256(source).hexdigest()) for source in sources]
    megabytes = sum(map(len, sources)) / 1e6
    print(f"corpus: {len(corpus)} files, {megabytes:.1f} MB (Python stdlib); load {load()}")
    timed_pass(corpus[:50])  # compile the query and warm the parser outside the timings

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


if __name__ == "__main__":
    main()
