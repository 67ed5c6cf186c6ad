"""Repository context over the Python standard library: what the index costs against a bare
tree-sitter parse of the same files (target: at most 2x), what retrieval costs per point, and
how many prompt tokens each strategy adds.

Timed passes alternate: bare parse, index build from nothing (one parse per file, outlines,
windows, copies' line sets), and index build with every outline stored (what a nightly run of
an unchanged repository pays). The BM25 model over the windows is built when `similar` is first
asked for; its time is shown apart. Points are sampled as an audit samples them.

    .venv/bin/python benchmarks/context.py [--limit N] [--repeat R] [--points P]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sysconfig
import time
from pathlib import Path

from aixaudit.context import ContextStrategy, IndexedFile, build_index, render_context, retrieve
from aixaudit.languages import get_language, parse
from aixaudit.prompts import build_prompt, get_profile
from aixaudit.spans import SamplingPolicy, pick_spans
from aixaudit.tokens import ApproximateTokenizer

PYTHON = get_language("python")
COUNTER = ApproximateTokenizer()
PROFILE = get_profile("aixcoder-psm")
PROMPT_BUDGET, CONTEXT_BUDGET = 768, 512  # AuditOptions' defaults


def stdlib_files(limit: int | None) -> list[IndexedFile]:
    """Every UTF-8 *.py of the standard library (site-packages is not stdlib), by path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[IndexedFile] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if "site-packages" in relative.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        sha = hashlib.sha256(text.encode()).hexdigest()
        files.append(IndexedFile(relative.as_posix(), "python", sha, text))
        if limit is not None and len(files) >= limit:
            break
    return files


def bare_parse(files: list[IndexedFile]) -> None:
    for file in files:
        parse(PYTHON, file.text.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="at most N files")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each kind")
    parser.add_argument("--points", type=int, default=300, help="points timed per strategy")
    args = parser.parse_args()

    files = stdlib_files(args.limit)
    megabytes = sum(len(f.text) for f in files) / 1e6
    print(f"corpus: {len(files)} files, {megabytes:.1f} MB (Python stdlib)")
    _, outlines = build_index(files[:50], {})  # compile the query, warm the parser

    times: dict[str, list[float]] = {"parse": [], "index": [], "index, outlines stored": []}
    for i in range(args.repeat):
        start = time.perf_counter()
        bare_parse(files)
        times["parse"].append(time.perf_counter() - start)
        start = time.perf_counter()
        index, outlines = build_index(files, {})
        times["index"].append(time.perf_counter() - start)
        start = time.perf_counter()
        build_index(files, outlines)
        times["index, outlines stored"].append(time.perf_counter() - start)
        print(f"pass {i + 1}: " + "  ".join(f"{name} {t[-1]:.2f}s" for name, t in times.items()))
    base = min(times["parse"])
    print(
        "best: "
        + "  ".join(f"{name} {min(t):.2f}s ({min(t) / base:.2f}x)" for name, t in times.items())
    )
    print(f"ratio index / parse (best): {min(times['index']) / base:.2f}x (target <= 2x)")

    start = time.perf_counter()
    index.bm25  # noqa: B018 (built on first use)
    bm25_s = time.perf_counter() - start
    print(f"BM25 model over {index.chunk_count} windows: {bm25_s:.2f}s ({bm25_s / base:.2f}x)")

    policy = SamplingPolicy(per_file=1)
    points = []
    for file in files:
        source = file.text.encode()
        picked = pick_spans(PYTHON, source, policy=policy, content_hash=file.sha256)
        points += [(file, source[: span.start_byte].decode()) for span in picked]
        if len(points) >= args.points:
            break
    bare_tokens = statistics.mean(
        build_prompt(
            PROFILE, language=PYTHON, path=f.path, prefix=p, suffix="", counter=COUNTER,
            budget=PROMPT_BUDGET,
        ).tokens
        for f, p in points
    )  # fmt: skip
    print(f"{len(points)} points; prompt without context {bare_tokens:.0f} tokens ({COUNTER.name})")
    for strategy in ContextStrategy:
        if strategy is ContextStrategy.NONE:
            continue
        started, tokens = time.perf_counter(), []
        for file, prefix in points:
            fragments = retrieve(index, strategy, path=file.path, prefix=prefix)
            context = render_context(
                fragments, language=PYTHON, counter=COUNTER, budget=CONTEXT_BUDGET
            )
            tokens.append(COUNTER.count(context))
        per_point_ms = (time.perf_counter() - started) / len(points) * 1000
        added = statistics.mean(tokens)
        print(
            f"{strategy.value:8} retrieval+render {per_point_ms:6.1f} ms/point  "
            f"context {added:5.0f} tokens/point (+{added / bare_tokens:.0%} prompt), "
            f"{sum(t > 0 for t in tokens) / len(tokens):.0%} of points get some"
        )


if __name__ == "__main__":
    main()
