"""C and C++ checkouts whose Makefile has a `test` target, run as one whole suite.

Without per-test coverage, every C/C++ file of the checkout maps to the whole suite (the issue's
"for others, the whole suite of the package"), and the suite passes when `make test` exits 0.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aixaudit.execution.runner import (
    WHOLE_SUITE,
    Baseline,
    NotRunnable,
    Prepared,
    Runner,
    TestResult,
    TestRun,
)
from aixaudit.execution.sandbox import Limits, Sandbox

SUFFIXES = {".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx"}
_TEST_TARGET = re.compile(r"^test\s*:", re.MULTILINE)


class MakeRunner(Runner):
    name = "make"

    def detect(self, checkout: Path) -> bool:
        makefile = checkout / "Makefile"
        return makefile.is_file() and bool(
            _TEST_TARGET.search(makefile.read_text(errors="replace"))
        )

    def prepare(self, checkout: Path, *, cache_dir: Path) -> PreparedMake | NotRunnable:
        if shutil.which("make") is None:
            return NotRunnable("make is not installed")
        return PreparedMake(checkout)


@dataclass
class PreparedMake(Prepared):
    checkout: Path

    def baseline(self, *, limits: Limits) -> Baseline:
        run = self.run([WHOLE_SUITE], changes={}, limits=limits)
        files = {
            path.relative_to(self.checkout).as_posix()
            for path in self.checkout.rglob("*")
            if path.suffix in SUFFIXES
        }
        passing = {WHOLE_SUITE} if run.passed else set()
        return Baseline(lines={}, passing=passing, run=run, whole_suite=True, files=files)

    def run(self, tests: Sequence[str], *, changes: Mapping[str, str], limits: Limits) -> TestRun:
        with Sandbox.open(self.checkout, changes=changes) as sandbox:
            outcome = sandbox.run(["make", "--no-print-directory", "test"], limits=limits)
        return TestRun.from_outcome(
            outcome, [TestResult(WHOLE_SUITE, outcome.passed, outcome.wall_s)], None
        )
