"""Imports resolved to files of the repository, per language, nearest first.

Only what the repository itself holds is resolved: a standard or third-party module has no
file here and is left out. Where several files could be meant (two `util.py` in different
packages), every candidate is kept and the nearest (fewest directory steps from the
importing file) comes first.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath

from .outline import Import

_JS_EXTENSIONS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".d.ts")
_RUST_ROOTS = ("lib.rs", "main.rs", "mod.rs")


class RepositoryPaths:
    """The repository's files, looked up by path, by path suffix and by directory."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = set(paths)
        self._by_suffix: dict[str, list[str]] = defaultdict(list)
        self._by_directory: dict[str, list[str]] = defaultdict(list)
        for path in sorted(self.paths):
            parts = PurePosixPath(path).parts
            for i in range(len(parts)):
                self._by_suffix["/".join(parts[i:])].append(path)
            self._by_directory[posixpath.dirname(path)].append(path)

    def ending_with(self, suffix: str) -> list[str]:
        """Files whose path is `suffix` or ends with `/suffix`."""
        return self._by_suffix.get(suffix.strip("/"), [])

    def in_directory(self, directory: str) -> list[str]:
        return self._by_directory.get(directory, [])

    def directories_ending_with(self, suffix: str) -> list[str]:
        """Directories (holding files) whose path is `suffix` or ends with `/suffix`."""
        return sorted(
            {posixpath.dirname(path) for path in self.ending_with(f"{suffix}/_")}
            | {d for d in self._by_directory if d == suffix or d.endswith(f"/{suffix}")}
        )


def distance(a: str, b: str) -> int:
    """Directory steps between the folders of two files."""
    da, db = PurePosixPath(a).parent.parts, PurePosixPath(b).parent.parts
    common = 0
    for x, y in zip(da, db, strict=False):
        if x != y:
            break
        common += 1
    return len(da) + len(db) - 2 * common


def resolve_imports(
    language: str, importer: str, imports: Sequence[Import], paths: RepositoryPaths
) -> list[tuple[str, Import]]:
    """(file, import) for each repository file the imports name, nearest first; the importer
    itself is never one."""
    resolver = _RESOLVERS[language]
    found: dict[str, tuple[int, int, Import]] = {}
    for order, item in enumerate(imports):
        candidates = resolver(importer, item, paths)
        for path in candidates:
            if path != importer and path not in found:
                found[path] = (distance(importer, path), order, item)
    return [(p, item) for p, (_, _, item) in sorted(found.items(), key=lambda kv: kv[1][:2])]


def _normal(path: str) -> str | None:
    """`a/./b/../c` as `a/c`; None for a path that climbs out of the repository."""
    normal = posixpath.normpath(path)
    return None if normal.startswith("..") or normal.startswith("/") else normal.lstrip("./")


def _first_existing(paths: RepositoryPaths, candidates: Iterable[str | None]) -> list[str]:
    for candidate in candidates:
        if candidate is not None and candidate in paths.paths:
            return [candidate]
    return []


def _python(importer: str, item: Import, paths: RepositoryPaths) -> list[str]:
    """`a.b` is `a/b.py` or `a/b/__init__.py` under any source root; `from a import b` names
    the submodule `a/b.py` if there is one, else `a` itself; leading dots count packages up
    from the importer's own."""
    module = item.module
    dots = len(module) - len(module.lstrip("."))
    parts = [p for p in module[dots:].split(".") if p]
    parents = PurePosixPath(importer).parents
    if dots > len(parents):
        return []
    package = parents[dots - 1].as_posix() if dots else ""

    def files(dotted: list[str]) -> list[str]:
        stem = "/".join(dotted)
        if not dots:
            return paths.ending_with(f"{stem}.py") or paths.ending_with(f"{stem}/__init__.py")
        base = posixpath.join(package, stem) if stem else package
        ends = (".py", "/__init__.py") if stem else ("/__init__.py",)
        return _first_existing(paths, (_normal(f"{base}{end}") for end in ends))

    submodules = [path for name in item.names for path in files([*parts, name])]
    return submodules or (files(parts) if parts or dots else [])


def _java(importer: str, item: Import, paths: RepositoryPaths) -> list[str]:
    """`a.b.C` is `a/b/C.java` (`a.b.C.m` a static member of it); `a.b.*` every file of `a/b`."""
    parts = item.module.split(".")
    if "*" in item.names:
        return [
            path
            for directory in paths.directories_ending_with("/".join(parts))
            for path in paths.in_directory(directory)
            if path.endswith(".java")
        ]
    for end in range(len(parts), 0, -1):
        found = paths.ending_with("/".join(parts[:end]) + ".java")
        if found:
            return found
    return []


def _javascript(importer: str, item: Import, paths: RepositoryPaths) -> list[str]:
    """Relative specifiers only (`./x`, `../x`): the file as written, with each extension, or
    its folder's index file; a package name has no file here."""
    if not item.module.startswith("."):
        return []
    target = _normal(posixpath.join(posixpath.dirname(importer), item.module))
    if target is None:
        return []
    stem = posixpath.splitext(target)[0]
    candidates = [target]
    candidates += [f"{base}{ext}" for base in (target, stem) for ext in _JS_EXTENSIONS]
    candidates += [f"{target}/index{ext}" for ext in _JS_EXTENSIONS]
    return _first_existing(paths, candidates)


def _go(importer: str, item: Import, paths: RepositoryPaths) -> list[str]:
    """The package folder whose path ends the import path (the module path is its start);
    the package's non-test files."""
    parts = item.module.split("/")
    for start in range(len(parts)):
        folders = paths.directories_ending_with("/".join(parts[start:]))
        if folders:
            return [
                path
                for folder in folders
                for path in paths.in_directory(folder)
                if path.endswith(".go") and not path.endswith("_test.go")
            ]
    return []


def _rust(importer: str, item: Import, paths: RepositoryPaths) -> list[str]:
    """`crate::a::b::C` walks modules from the crate root (the folder of the nearest lib.rs or
    main.rs), `self::`/`super::` from the importer's module; the longest module path that is a
    file (`a/b.rs` or `a/b/mod.rs`) is the one meant."""
    found: list[str] = []
    for path in _rust_paths(item.module):
        head, *rest = path
        if head == "crate":
            base = _rust_crate_root(importer, paths)
        elif head == "self":
            base = _rust_module_dir(importer)
        elif head == "super":
            base = posixpath.dirname(_rust_module_dir(importer))
            while rest and rest[0] == "super":
                base, rest = posixpath.dirname(base), rest[1:]
        else:  # a module of this crate named from its root (2015 style), or another crate
            base, rest = _rust_crate_root(importer, paths), path
        for end in range(len(rest), 0, -1):
            stem = posixpath.join(base, *rest[:end])
            match = _first_existing(paths, (_normal(f"{stem}.rs"), _normal(f"{stem}/mod.rs")))
            if match:
                found += match
                break
    return found


def _rust_paths(text: str) -> list[list[str]]:
    """`a::{b, c::D}` as [a, b] and [a, c, D] (one level of braces, which is what `use` trees
    hold in practice)."""
    text = "".join(text.split())
    head, brace, tail = text.partition("{")
    prefix = [p for p in head.split("::") if p]
    if not brace:
        return [prefix] if prefix else []
    items = tail.rstrip("}").split(",")
    return [[*prefix, *(p for p in item.split("::") if p and p != "{")] for item in items if item]


def _rust_module_dir(importer: str) -> str:
    path = PurePosixPath(importer)
    return path.parent.as_posix() if path.name in _RUST_ROOTS else path.with_suffix("").as_posix()


def _rust_crate_root(importer: str, paths: RepositoryPaths) -> str:
    for parent in PurePosixPath(importer).parents:
        folder = parent.as_posix()
        folder = "" if folder == "." else folder
        if any(posixpath.join(folder, root) in paths.paths for root in _RUST_ROOTS[:2]):
            return folder
    return posixpath.dirname(importer)


def _include(importer: str, item: Import, paths: RepositoryPaths) -> list[str]:
    """`#include "x.h"` beside the includer first, else any file ending with that path."""
    beside = _normal(posixpath.join(posixpath.dirname(importer), item.module))
    return _first_existing(paths, (beside,)) or paths.ending_with(item.module)


_RESOLVERS: dict[str, Callable[[str, Import, RepositoryPaths], list[str]]] = {
    "python": _python,
    "java": _java,
    "javascript": _javascript,
    "typescript": _javascript,
    "tsx": _javascript,
    "go": _go,
    "rust": _rust,
    "c": _include,
    "cpp": _include,
}
