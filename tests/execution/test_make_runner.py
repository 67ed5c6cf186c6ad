"""The make runner on a small C repository: the whole suite per point; a breaking change
fails it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from paths import FIXTURES

from aixaudit.execution.make_runner import MakeRunner, PreparedMake
from aixaudit.execution.runner import WHOLE_SUITE
from aixaudit.execution.sandbox import Limits, available

CREPO = FIXTURES / "execution" / "crepo"

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(available() is not None, reason=f"no sandbox: {available()}"),
]


def test_make_test_maps_every_c_file_to_the_suite_and_fails_a_breaking_change(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(CREPO, checkout)
    checkout.chmod(0o755)
    runner = MakeRunner()
    assert runner.detect(checkout)
    prepared = runner.prepare(checkout, cache_dir=tmp_path)
    assert isinstance(prepared, PreparedMake)

    baseline = prepared.baseline(limits=Limits(wall_s=120))
    assert baseline.run.passed, baseline.run.failure
    assert baseline.tests_for("add.c", 2, 2) == [WHOLE_SUITE]
    assert baseline.tests_for("README", 1, 1) == []
    assert not (checkout / "test_add").exists()  # built in the copy only

    broken = (CREPO / "add.c").read_text().replace("a + b", "a * b")
    run = prepared.run([WHOLE_SUITE], changes={"add.c": broken}, limits=Limits(wall_s=120))
    assert not run.passed
    assert run.failure is not None and "add(2, 3) != 5" in run.failure


def test_no_test_target_is_not_detected(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n\ttrue\n")
    assert not MakeRunner().detect(tmp_path)
