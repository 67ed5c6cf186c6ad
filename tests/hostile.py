"""A generated repository of everything that may break an unattended audit.

`make_hostile_repo(root, entries)` writes `entries` directory entries, one category each, in
directories of DIR_ENTRIES: mostly ordinary source files of every language (distinct contents,
so nothing is deduplicated away), and among them binary files, invalid UTF-8, a NUL byte after
the first 8 KB, UTF-8 BOMs, non-UTF-8 file names, FIFOs, dangling links and symlink loops; every
directory has a .gitignore with lines git tolerates and pattern libraries may not (`[z-a]`, a
lone backslash). Once per GIANT_EVERY entries come the giants: a 10 MB single-line file, a
100,000-line file and 30,000 nested `if` blocks. `vanishing(directory)` keeps files appearing
and disappearing while an audit reads the tree.

Used by tests/test_hostile.py and benchmarks/faults.py.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

DIR_ENTRIES = 100
GIANT_EVERY = 2_500
GITIGNORE = "# git ignores what it cannot parse\n[z-a]\n\\\n*.log\nignored/\n"

# One source file per language, padded with functions to about 4 KB.
_FUNCTIONS = {
    ".py": "def f_{i}_{k}(items):\n    total = 0\n    for item in items:\n"
    "        if item > {k}:\n            total += item * {i}\n    return total\n\n\n",
    ".js": "function f_{i}_{k}(items) {{\n  let total = 0;\n  for (const item of items) {{\n"
    "    if (item > {k}) {{\n      total += item * {i};\n    }}\n  }}\n  return total;\n}}\n\n",
    ".ts": "export function f_{i}_{k}(items: number[]): number {{\n  let total = 0;\n"
    "  for (const item of items) {{\n    if (item > {k}) {{\n      total += item * {i};\n"
    "    }}\n  }}\n  return total;\n}}\n\n",
    ".go": "func F{i}x{k}(items []int) int {{\n\ttotal := 0\n\tfor _, item := range items {{\n"
    "\t\tif item > {k} {{\n\t\t\ttotal += item * {i}\n\t\t}}\n\t}}\n\treturn total\n}}\n\n",
    ".rs": "pub fn f_{i}_{k}(items: &[i64]) -> i64 {{\n    let mut total = 0;\n"
    "    for item in items {{\n        if *item > {k} {{\n            total += item * {i};\n"
    "        }}\n    }}\n    total\n}}\n\n",
    ".c": "int f_{i}_{k}(const int *items, int n) {{\n    int total = 0;\n"
    "    for (int j = 0; j < n; j++) {{\n        if (items[j] > {k}) {{\n"
    "            total += items[j] * {i};\n        }}\n    }}\n    return total;\n}}\n\n",
    ".java": "    static int f{i}x{k}(int[] items) {{\n        int total = 0;\n"
    "        for (int item : items) {{\n            if (item > {k}) {{\n"
    "                total += item * {i};\n            }}\n        }}\n        return total;\n"
    "    }}\n\n",
    ".cpp": "int f_{i}_{k}(const std::vector<int>& items) {{\n    int total = 0;\n"
    "    for (int item : items) {{\n        if (item > {k}) {{\n"
    "            total += item * {i};\n        }}\n    }}\n    return total;\n}}\n\n",
}
_HEADERS = {".go": "package gen\n\n", ".java": "class Gen{i} {{\n", ".cpp": "#include <vector>\n\n"}
_FOOTERS = {".java": "}\n"}
_EXTENSIONS = list(_FUNCTIONS)
SOURCE_BYTES = 4_000


def source_text(extension: str, i: int) -> str:
    """An ordinary, valid source file of about SOURCE_BYTES, unique to `i`."""
    parts = [_HEADERS.get(extension, "").format(i=i)]
    k = 0
    while sum(map(len, parts)) < SOURCE_BYTES:
        parts.append(_FUNCTIONS[extension].format(i=i, k=k))
        k += 1
    return "".join(parts) + _FOOTERS.get(extension, "")


def nested_ifs(depth: int) -> str:
    """JavaScript of `depth` nested if blocks: each holds all the deeper ones."""
    return "function f(x) {\n" + "if (x) {\n" * depth + "g(x);\n" + "}\n" * depth + "}\n"


def _source(directory: Path, i: int) -> str:
    extension = _EXTENSIONS[i % len(_EXTENSIONS)]
    name = f"src_{i}{extension}"
    (directory / name).write_text(source_text(extension, i), encoding="utf-8")
    return name


def _bom(directory: Path, i: int) -> str:
    name = f"bom_{i}.py"
    (directory / name).write_text("\ufeff" + source_text(".py", i), encoding="utf-8")
    return name


def _binary(directory: Path, i: int) -> str:
    name = f"blob_{i}.c"
    (directory / name).write_bytes(b"\x7fELF\0\0\0" + i.to_bytes(4, "little") * 64)
    return name


def _invalid_utf8(directory: Path, i: int) -> str:
    name = f"latin_{i}.py"
    (directory / name).write_bytes(f"name = 'caf\xe9 {i}'\n".encode("latin-1"))
    return name


def _nul_after_8k(directory: Path, i: int) -> str:
    name = f"late_nul_{i}.js"
    text = source_text(".js", i) * 3  # over 8 KB before the NUL
    (directory / name).write_bytes(text.encode() + b"\0" + source_text(".js", i + 1).encode())
    return name


def _non_utf8_name(directory: Path, i: int) -> str:
    name = f"caf\xe9_{i}.py".encode("latin-1")
    with open(os.path.join(os.fsencode(directory), name), "wb") as handle:
        handle.write(source_text(".py", i).encode())
    return os.fsdecode(name)


def _fifo(directory: Path, i: int) -> str:
    name = f"pipe_{i}.py"
    os.mkfifo(directory / name)
    return name


def _dangling_link(directory: Path, i: int) -> str:
    name = f"dangling_{i}.py"
    (directory / name).symlink_to(f"missing_{i}.py")
    return name


def _symlink_loop(directory: Path, i: int) -> str:
    name = f"loop_{i}.py"
    (directory / name).symlink_to(f"loop_{i}_back.py")
    (directory / f"loop_{i}_back.py").symlink_to(name)
    (directory / f"up_{i}").symlink_to("..", target_is_directory=True)
    return name


def _huge_line(directory: Path, i: int) -> str:
    name = f"huge_line_{i}.js"
    unit = b"a+=1;"
    (directory / name).write_bytes(unit * (10_000_000 // len(unit)))
    return name


def _many_lines(directory: Path, i: int) -> str:
    name = f"many_lines_{i}.py"
    (directory / name).write_text("".join(f"v = {n % 10}\n" for n in range(100_000)))
    return name


def _nested_if(directory: Path, i: int) -> str:
    name = f"nested_{i}.js"
    (directory / name).write_text(nested_ifs(30_000))
    return name


Writer = Callable[[Path, int], str]
# Per block of 20 entries: 12 ordinary sources, then one of each hostile kind.
_SOURCE: tuple[str, Writer] = ("source", _source)
CYCLE: list[tuple[str, Writer]] = [_SOURCE] * 12 + [
    ("bom", _bom),
    ("binary", _binary),
    ("invalid_utf8", _invalid_utf8),
    ("nul_after_8k", _nul_after_8k),
    ("non_utf8_name", _non_utf8_name),
    ("fifo", _fifo),
    ("dangling_link", _dangling_link),
    ("symlink_loop", _symlink_loop),
]
GIANTS: list[tuple[str, Writer]] = [
    ("huge_line", _huge_line),
    ("many_lines", _many_lines),
    ("nested_if", _nested_if),
]
CATEGORIES = frozenset({name for name, _ in CYCLE + GIANTS} | {"gitignore"})


def make_hostile_repo(
    root: Path, entries: int, *, leave_out: Collection[str] = ()
) -> dict[str, list[str]]:
    """Write the tree; returns category -> paths (posix, relative to root) of what was made.

    Categories in `leave_out` are written as ordinary sources instead (for a scanner that
    cannot handle them yet)."""
    unknown = set(leave_out) - CATEGORIES
    if unknown:
        raise ValueError(f"unknown categories: {sorted(unknown)}")
    made: dict[str, list[str]] = defaultdict(list)
    for i in range(entries):
        rel_dir = f"d{i // DIR_ENTRIES:04d}"
        directory = root / rel_dir
        if i % DIR_ENTRIES == 0:
            directory.mkdir(parents=True)
            if "gitignore" not in leave_out:
                (directory / ".gitignore").write_text(GITIGNORE)
                made["gitignore"].append(f"{rel_dir}/.gitignore")
        slot = i % GIANT_EVERY
        category, write = GIANTS[slot] if slot < len(GIANTS) else CYCLE[i % len(CYCLE)]
        if category in leave_out:
            category, write = _SOURCE
        made[category].append(f"{rel_dir}/{write(directory, i)}")
    return dict(made)


@contextmanager
def vanishing(directory: Path, *, files: int = 20) -> Iterator[None]:
    """While the block runs, source files in `directory` keep being created and deleted."""
    directory.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            path = directory / f"gone_{n % files}.py"
            if path.exists():
                path.unlink()
            else:
                path.write_text(source_text(".py", n))
            n += 1
            stop.wait(0.001)  # leave the audit most of the interpreter

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
