"""The pytest runner on a small real repository: its environment, its coverage map (which
tests execute which lines), and runs with a change that passes and one that breaks a test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from paths import FIXTURES

from aixaudit.execution.pytest_runner import PreparedPytest, PytestRunner
from aixaudit.execution.runner import NotRunnable
from aixaudit.execution.sandbox import Limits, available

PYREPO = FIXTURES / "execution" / "pyrepo"
LIMITS = Limits(wall_s=120)

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(available() is not None, reason=f"no sandbox: {available()}"),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Not under /tmp or the home directory: the sandbox covers those.
    directory = Path("/var/tmp") / f"aixaudit-test-cache-{tmp_path_factory.getbasetemp().name}"
    directory.mkdir(exist_ok=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def prepared(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedPytest:
    checkout = tmp_path_factory.mktemp("pyrepo") / "checkout"
    shutil.copytree(PYREPO, checkout)
    checkout.chmod(0o755)
    runner = PytestRunner()
    assert runner.detect(checkout)
    ready = runner.prepare(checkout, cache_dir=cache_dir)
    assert isinstance(ready, PreparedPytest), ready
    return ready


def test_detect_needs_a_python_project_with_tests(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert not PytestRunner().detect(tmp_path)
    (tmp_path / "test_x.py").write_text("def test_x(): pass\n")
    assert PytestRunner().detect(tmp_path)


def test_dependencies_that_cannot_install_make_it_not_runnable(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the index is out of reach
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'x'\ndependencies = ['aixaudit-fixture-dependency==1.0']\n"
    )
    result = PytestRunner().prepare(tmp_path, cache_dir=cache_dir)
    assert isinstance(result, NotRunnable)
    assert "dependencies do not install" in result.reason
    assert "aixaudit-fixture-dependency" in result.reason


def test_baseline_maps_lines_to_the_tests_that_run_them(prepared: PreparedPytest) -> None:
    baseline = prepared.baseline(limits=LIMITS)
    assert baseline.run.passed, baseline.run.failure
    assert len(baseline.passing) == 4
    ops = "calc/ops.py"
    assert baseline.tests_for(ops, 2, 2) == ["tests/test_ops.py::test_add"]
    assert baseline.tests_for(ops, 6, 9) == [
        "tests/test_ops.py::test_clamp_high",
        "tests/test_ops.py::test_clamp_low",
    ]
    assert baseline.tests_for(ops, 21, 22) == []  # never_tested: uncovered
    assert baseline.run.cpu_s > 0


def test_a_change_that_breaks_a_test_fails_it_and_one_that_does_not_passes(
    prepared: PreparedPytest,
) -> None:
    original = (PYREPO / "calc" / "ops.py").read_text()
    broken = original.replace("return a + b", "return a - b")
    clamp_tests = ["tests/test_ops.py::test_clamp_high", "tests/test_ops.py::test_clamp_low"]

    fails = prepared.run(
        ["tests/test_ops.py::test_add"], changes={"calc/ops.py": broken}, limits=LIMITS
    )
    assert not fails.passed
    assert [(t.name, t.passed) for t in fails.tests] == [("tests/test_ops.py::test_add", False)]
    assert fails.failure is not None and "assert -1 == 5" in fails.failure

    same = original.replace("return a + b", "return b + a")
    passes = prepared.run(clamp_tests, changes={"calc/ops.py": same}, limits=LIMITS)
    assert passes.passed, passes.failure
    assert sorted(t.name for t in passes.tests) == clamp_tests  # only the tests asked for


def test_a_change_that_does_not_import_fails_every_asked_test(prepared: PreparedPytest) -> None:
    run = prepared.run(
        ["tests/test_ops.py::test_mean"],
        changes={"calc/ops.py": "def add(a, b):\n    return (\n"},
        limits=LIMITS,
    )
    assert not run.passed
    assert [(t.name, t.passed) for t in run.tests] == [("tests/test_ops.py::test_mean", False)]
    assert run.failure is not None and "SyntaxError" in run.failure
