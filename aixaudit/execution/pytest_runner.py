"""Python checkouts tested with pytest, in a virtual environment made for the checkout.

The environment is built outside the sandbox (it may need the package index) from what the
checkout declares: `[project] dependencies` and the test extras of pyproject.toml, and
requirements files. Only wheels are installed, so no code of the checkout's dependencies runs
outside the sandbox; a requirement that cannot be met makes the checkout `not_runnable`.
pytest and coverage.py come from aixaudit's own environment (a .pth file puts it after the
checkout's packages), so they need not be installable from the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from coverage import CoverageData

from aixaudit.execution.runner import (
    FAILURE_LINES,
    Baseline,
    NotRunnable,
    Prepared,
    Runner,
    TestResult,
    TestRun,
    first_lines,
)
from aixaudit.execution.sandbox import Limits, Sandbox

TEST_EXTRAS = ("test", "tests", "testing", "dev")
REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-test.txt",
                     "test-requirements.txt", "requirements_dev.txt")  # fmt: skip
INSTALL_TIMEOUT_S = 600.0
TOOLS = ".aixaudit-execution"  # in the copy: the plug-in, coverage's settings and data
PLUGIN = "aixaudit_pytest_contexts"
COVERAGE_RC = f"""\
[run]
dynamic_context = none
relative_files = true
data_file = {TOOLS}/coverage
source = .
omit = {TOOLS}/*
"""


def declared_requirements(checkout: Path) -> tuple[list[str], list[Path]]:
    """The requirement strings of pyproject.toml (dependencies and test extras) and the
    requirements files present."""
    requirements: list[str] = []
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        requirements += project.get("dependencies", [])
        extras = project.get("optional-dependencies", {})
        for extra in TEST_EXTRAS:
            requirements += extras.get(extra, [])
    files = [checkout / name for name in REQUIREMENT_FILES if (checkout / name).is_file()]
    return requirements, files


class PytestRunner(Runner):
    name = "pytest"

    def detect(self, checkout: Path) -> bool:
        markers = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini")
        if not any((checkout / marker).is_file() for marker in markers):
            return False
        return any(_is_test_file(path) for path in checkout.rglob("*.py"))

    def prepare(self, checkout: Path, *, cache_dir: Path) -> PreparedPytest | NotRunnable:
        requirements, files = declared_requirements(checkout)
        key = hashlib.sha256(
            json.dumps([sys.version, sorted(requirements), [f.read_text() for f in files]]).encode()
        ).hexdigest()[:16]
        venv = cache_dir / "venvs" / key
        if not (venv / "ready").is_file():
            reason = _build_venv(venv, requirements, files)
            if reason is not None:
                return NotRunnable(reason)
        return PreparedPytest(checkout, venv)


def _is_test_file(path: Path) -> bool:
    return path.name.startswith("test_") or path.name.endswith("_test.py")


def _build_venv(venv: Path, requirements: list[str], files: list[Path]) -> str | None:
    """Make the environment in a scratch directory and move it into place when it is
    complete (two workers building the same one: the second's is dropped). Returns why it
    could not be made, None when it was."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=venv.parent))
    scratch.chmod(0o755)  # the sandbox runs it as nobody
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(scratch)], check=True)
        python = scratch / "bin" / "python"
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        Path(site, "aixaudit-tools.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        wanted = [*requirements, *(arg for f in files for arg in ("-r", str(f)))]
        if wanted:
            install = subprocess.run(
                [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                 "--no-input", "--only-binary=:all:", "--disable-pip-version-check", *wanted],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False,
            )  # fmt: skip
            if install.returncode != 0:
                lines = [ln for ln in install.stderr.splitlines() if ln.strip()]
                return "dependencies do not install: " + " ".join(lines[-2:])[:500]
        (scratch / "ready").write_text("")
        with suppress(OSError):  # another worker finished the same environment first
            scratch.rename(venv)
        return None
    except subprocess.TimeoutExpired:
        return f"dependencies did not install within {INSTALL_TIMEOUT_S:.0f} s"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class PreparedPytest(Prepared):
    checkout: Path
    venv: Path

    def baseline(self, *, limits: Limits) -> Baseline:
        with self._sandbox({}) as sandbox:
            argv = ["-m", "coverage", "run", f"--rcfile={TOOLS}/coveragerc", "-m", "pytest"]
            run = self._pytest(sandbox, argv, [], limits)
            data = CoverageData(str(sandbox.upper / TOOLS / "coverage"))
            data.read()
            lines: dict[str, dict[int, list[str]]] = {}
            for path in data.measured_files():
                by_line = data.contexts_by_lineno(path)
                lines[path] = {
                    line: sorted(c for c in contexts if c) for line, contexts in by_line.items()
                }
        passing = {test.name for test in run.tests if test.passed}
        return Baseline(lines=lines, passing=passing, run=run)

    def run(self, tests: Sequence[str], *, changes: Mapping[str, str], limits: Limits) -> TestRun:
        with self._sandbox(changes) as sandbox:
            return self._pytest(sandbox, ["-m", "pytest"], tests, limits)

    def _sandbox(self, changes: Mapping[str, str]) -> AbstractContextManager[Sandbox]:
        expose = [Path(sys.base_prefix), self.venv, Path(sysconfig.get_paths()["purelib"])]
        return Sandbox.open(self.checkout, changes={**changes, **tool_files()}, expose=expose)

    def command(
        self, root: Path, argv: Sequence[str], tests: Sequence[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The command and environment that run `tests` in a copy at `root` holding
        tool_files() (benchmarks/execute.py runs the same outside the sandbox)."""
        paths = [root / TOOLS, *([root / "src"] if (self.checkout / "src").is_dir() else []), root]
        env = {
            "PYTHONPATH": os.pathsep.join(map(str, paths)),
            "AIXAUDIT_RESULTS": str(root / TOOLS / "results.jsonl"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        command = [str(self.venv / "bin" / "python"), *argv, "-q", "-p", "no:cacheprovider",
                   "-p", PLUGIN, *tests]  # fmt: skip
        return command, env

    def _pytest(
        self, sandbox: Sandbox, argv: list[str], tests: Sequence[str], limits: Limits
    ) -> TestRun:
        command, env = self.command(sandbox.root, argv, tests)
        outcome = sandbox.run(command, limits=limits, env=env)
        results = sandbox.upper / TOOLS / "results.jsonl"
        reports = results.read_text().splitlines() if results.is_file() else []
        return TestRun.from_outcome(outcome, *_tests(reports, tests))


def tool_files() -> dict[str, str]:
    """What every copy gets beside the checkout: the plug-in and coverage's settings."""
    plugin = resources.files(__package__ or "").joinpath("pytest_contexts.py").read_text()
    return {f"{TOOLS}/{PLUGIN}.py": plugin, f"{TOOLS}/coveragerc": COVERAGE_RC}


def _tests(reports: list[str], asked: Sequence[str]) -> tuple[list[TestResult], str | None]:
    """Each test's result from the plug-in's lines (a test passes when no phase failed), a
    test asked for and never reported as failed; and the first failure's first lines."""
    passed: dict[str, bool] = {}
    durations: dict[str, float] = {}
    failure = None
    for line in reports:
        report = json.loads(line)
        test = report["nodeid"]
        ok = report["outcome"] != "failed"
        passed[test] = passed.get(test, True) and ok
        durations[test] = durations.get(test, 0.0) + report["duration"]
        if not ok and failure is None:
            failure = f"{test} ({report['when']}):\n{_explanation(report['failure'] or '')}"
    for test in asked:
        passed.setdefault(test, False)
    results = [
        TestResult(test, ok, durations.get(test, 0.0))
        for test, ok in passed.items()
        if report_is_test(test)
    ]
    return results, failure


def _explanation(longrepr: str) -> str:
    """pytest's explanation lines (`E ...`) of a failure, else its last lines: the traceback
    before them says where, they say what."""
    lines = longrepr.strip().splitlines()
    explained = [line for line in lines if line.startswith("E ")]
    return first_lines("\n".join(explained or lines[-FAILURE_LINES:]))


def report_is_test(nodeid: str) -> bool:
    """Collection reports name modules; only test node ids (with `::`) are tests."""
    return "::" in nodeid
