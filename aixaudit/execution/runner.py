"""The one interface every test runner plug-in implements, and what runners answer.

A runner recognises its ecosystem in a checkout (`detect`), gets it ready to test once per
commit (`prepare`: an environment built from the declared dependencies, or the reason it
cannot be), maps which tests execute which lines (`Prepared.baseline`, on the unmodified
checkout, whose outcomes are also the baseline) and runs chosen tests on the checkout with a
completion in (`Prepared.run`), always inside the sandbox.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from aixaudit.execution.sandbox import Limits, Outcome

FAILURE_LINES = 20  # lines of a failure kept: enough to see what broke

# The name standing for every test of the suite, for runners without per-test coverage.
WHOLE_SUITE = "*"


@dataclass(frozen=True)
class TestResult:
    name: str
    passed: bool
    duration_s: float


@dataclass(frozen=True)
class TestRun:
    """What running some tests once gave."""

    passed: bool  # every test ran and passed, within the limits
    tests: list[TestResult]
    failure: str | None  # the first lines of the first failure (or of the output)
    wall_s: float
    cpu_s: float
    timed_out: bool

    @classmethod
    def from_outcome(
        cls, outcome: Outcome, tests: list[TestResult], failure: str | None
    ) -> TestRun:
        passed = outcome.passed and all(test.passed for test in tests)
        if not passed and failure is None:
            failure = first_lines(outcome.output) or f"exit status {outcome.returncode}"
        if outcome.timed_out:
            failure = f"killed at the wall-time limit ({outcome.wall_s:.0f} s)"
        return cls(passed, tests, failure, outcome.wall_s, outcome.cpu_s, outcome.timed_out)


def first_lines(text: str, count: int = FAILURE_LINES) -> str:
    return "\n".join(text.strip().splitlines()[:count])


@dataclass(frozen=True)
class Baseline:
    """The suite on the unmodified checkout: which tests execute each line (path -> line ->
    tests; a runner without per-test coverage maps every file of the suite to WHOLE_SUITE) and
    which tests pass there."""

    lines: dict[str, dict[int, list[str]]]
    passing: set[str]
    run: TestRun
    whole_suite: bool = False
    files: set[str] = field(default_factory=set)  # files whole_suite covers

    def tests_for(self, path: str, start_line: int, end_line: int) -> list[str]:
        """The tests that execute any of the lines (1-based, inclusive); [] when none does."""
        if self.whole_suite:
            return [WHOLE_SUITE] if path in self.files else []
        by_line = self.lines.get(path, {})
        found = {test for line in range(start_line, end_line + 1) for test in by_line.get(line, ())}
        return sorted(found)

    def all_pass(self, tests: Sequence[str]) -> bool:
        return all(test in self.passing for test in tests)


@dataclass(frozen=True)
class NotRunnable:
    """Why a checkout's tests cannot run here (dependencies that do not install, no suite)."""

    reason: str


class Prepared(ABC):
    """A checkout ready to test: its environment is built."""

    @abstractmethod
    def baseline(self, *, limits: Limits) -> Baseline:
        """Run the whole suite on the unmodified checkout, recording coverage per test."""

    @abstractmethod
    def run(self, tests: Sequence[str], *, changes: Mapping[str, str], limits: Limits) -> TestRun:
        """Run `tests` on a copy of the checkout with `changes` (path -> text) applied."""


class Runner(ABC):
    name: ClassVar[str]

    @abstractmethod
    def detect(self, checkout: Path) -> bool:
        """Whether the checkout holds a suite this runner can run."""

    @abstractmethod
    def prepare(self, checkout: Path, *, cache_dir: Path) -> Prepared | NotRunnable:
        """Build what the tests need (cached in `cache_dir`), or say why it cannot be."""
