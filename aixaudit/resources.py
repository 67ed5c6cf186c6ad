"""Where the data that ships with aixaudit lives: migrations, model repositories, span queries,
the dashboard's static files.

A wheel carries `migrations/` and `model_repo/` inside the `aixaudit` package (pyproject maps
the repository root's directories there); a source checkout or an editable install keeps them at
the root, beside the package. `importlib.resources.files` answers real directories for both,
because setuptools installs packages unzipped, so no `as_file` copy is needed: Alembic and
tritonserver take plain paths.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _shipped(package: str, name: str) -> Path:
    """`name` inside `package` when installed from a wheel, else beside it in the checkout."""
    inside = Path(str(files(package) / name))
    return inside if inside.is_dir() else Path(str(files(package))).parent / name


def migrations_dir() -> Path:
    return _shipped("aixaudit", "migrations")


def model_repo_dir() -> Path:
    return _shipped("aixaudit", "model_repo")


def span_queries_dir() -> Path:
    return Path(str(files("aixaudit") / "span_queries"))


def static_dir() -> Path:
    return Path(str(files("api") / "static"))
