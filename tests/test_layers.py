"""The layers import one way: the CLI, the workers and the API compose the core, the core imports
none of them, and none of them imports another (they share `aixaudit.jobs`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each layer, by the dotted prefix of its modules, and the prefixes it must never import.
FORBIDDEN = {
    "aixaudit.cli": ("api", "workers"),
    "aixaudit": ("aixaudit.cli", "api", "workers"),
    "workers": ("aixaudit.cli", "api"),
    "api": ("aixaudit.cli", "workers"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, *, is_package: bool) -> set[str]:
    """Every module `source` imports, at the top or inside a function, relative ones resolved."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> str:
    return next(prefix for prefix in FORBIDDEN if within(module, prefix))


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(f"{prefix}.")


def violations(module: str, imports: set[str]) -> list[str]:
    banned = FORBIDDEN[layer_of(module)]
    return sorted(
        f"{module} imports {name}" for name in imports if any(within(name, b) for b in banned)
    )


def test_no_layer_imports_sideways_or_back_up() -> None:
    sources = [
        path for top in ("aixaudit", "api", "workers") for path in (ROOT / top).rglob("*.py")
    ]
    assert len(sources) > 50  # the walk found the package
    found = [
        problem
        for path in sources
        for problem in violations(
            module_name(path),
            imported(path.read_text(), module_name(path), is_package=path.name == "__init__.py"),
        )
    ]
    assert found == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("aixaudit.audit", "def f():\n    from workers.tasks import dispatch_run\n"),
        ("aixaudit.store.db", "from ..cli import main\n"),
        ("aixaudit.cli.runs", "import api.main\n"),
        ("api.routes.runs", "from workers import tasks\n"),
        ("workers.tasks", "from aixaudit.cli.shared import console\n"),
    ],
)
def test_the_check_sees_each_kind_of_import(module: str, source: str) -> None:
    assert violations(module, imported(source, module, is_package=False))
