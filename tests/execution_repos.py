"""The repositories the execution tests run (tests/fixtures/execution), as checkouts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from aixaudit import sources

FIXTURES = Path(__file__).parent / "fixtures" / "execution"
PYREPO = FIXTURES / "pyrepo"  # a package with a pytest suite; one function no test reaches


def git_fixture(source: Path, destination: Path) -> sources.Checkout:
    """A copy of a fixture repository, open to all like a fresh clone, committed."""
    shutil.copytree(source, destination)
    destination.chmod(0o755)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fixture"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=destination, check=True,
        )  # fmt: skip
    return sources.checkout(str(destination), ref=None, cache_dir=destination.parent)
