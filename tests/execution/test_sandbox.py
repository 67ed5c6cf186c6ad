"""The sandbox against a test suite written to escape it (tests/fixtures/execution/hostile):
each attack fails inside, and the host shows no trace of it afterwards."""

from __future__ import annotations

import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from paths import FIXTURES

from aixaudit.errors import ExecutionError
from aixaudit.execution.sandbox import Limits, Outcome, Sandbox, available

HOSTILE = FIXTURES / "execution" / "hostile"

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(available() is not None, reason=f"no sandbox: {available()}"),
]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the hostile suite, open to all like a fresh clone."""
    root = tmp_path / "checkout"
    shutil.copytree(HOSTILE, root)
    root.chmod(0o755)
    return root


def _pytest(
    checkout: Path, test: str, *, limits: Limits, env: dict[str, str] | None = None
) -> Outcome:
    # The interpreter and this venv's packages, wherever they are (a checkout under /tmp too).
    with Sandbox.open(checkout, expose=[Path(sys.base_prefix), Path(sys.prefix)]) as sandbox:
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", test]
        return sandbox.run(argv, limits=limits, env=env)


def _processes_with(marker: str) -> list[int]:
    """Host processes whose environment holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_passing_command_runs_as_nobody_and_sees_its_changes(tmp_path: Path) -> None:
    root = tmp_path / "co"
    root.mkdir(mode=0o755)
    (root / "a.txt").write_text("original\n")
    with Sandbox.open(root, changes={"a.txt": "changed\n", "new/b.txt": "b\n"}) as sandbox:
        outcome = sandbox.run(
            ["sh", "-c", "id -un; cat a.txt new/b.txt; echo w > written"], limits=Limits()
        )
        assert (sandbox.upper / "written").read_text() == "w\n"
    assert outcome.passed and outcome.user == "nobody"
    assert outcome.output == "nobody\nchanged\nb\n"
    assert (root / "a.txt").read_text() == "original\n"
    assert sorted(p.name for p in root.iterdir()) == ["a.txt"]


def test_a_change_outside_the_copy_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(ExecutionError, match="outside"),
        Sandbox.open(tmp_path, changes={"../escape.txt": "x"}),
    ):
        pass
    assert not (tmp_path.parent / "escape.txt").exists()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    yield server
    server.close()


def test_no_network(checkout: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    outcome = _pytest(
        checkout, "connect", limits=Limits(wall_s=60), env={"HOSTILE_PORT": str(port)}
    )
    assert outcome.returncode == 1, outcome.output
    assert "Network is unreachable" in outcome.output or "Connection refused" in outcome.output
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing came through


def test_fork_bomb_is_capped_and_reaped(checkout: Path) -> None:
    marker = f"HOSTILE_MARKER={uuid.uuid4().hex}"
    outcome = _pytest(
        checkout, "fork_bomb", limits=Limits(wall_s=60, processes=64), env=dict([marker.split("=")])
    )
    assert outcome.returncode == 1, outcome.output
    children = int(re.findall(r"children=(\d+)", outcome.output)[0])
    assert children < 64
    assert _processes_with(marker) == []  # its sleeping children died with it


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may write, where the sandbox's /tmp does not hide it."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
        Path(directory).chmod(0o777)
        yield Path(directory)


def test_home_and_outside_writes_fail(checkout: Path, open_dir: Path) -> None:
    name = f"hostile-{uuid.uuid4().hex}"
    outside = open_dir / "outside.txt"
    env = {"HOSTILE_NAME": name, "HOSTILE_OUTSIDE": str(outside)}
    home = _pytest(checkout, "write_home", limits=Limits(wall_s=60), env=env)
    assert home.passed, home.output  # the write lands in a home thrown away afterwards
    assert not (Path.home() / name).exists()
    outcome = _pytest(checkout, "write_outside", limits=Limits(wall_s=60), env=env)
    assert outcome.returncode == 1, outcome.output
    assert "Read-only file system" in outcome.output
    assert not outside.exists()
    (checkout / "test_hostile.py").chmod(0o666)  # even a file anyone may write
    overwrite = _pytest(checkout, "overwrite_checkout", limits=Limits(wall_s=60))
    assert overwrite.passed, overwrite.output  # is written in the copy only
    assert (checkout / "test_hostile.py").read_text() == (HOSTILE / "test_hostile.py").read_text()


def test_sleep_forever_is_killed_at_the_wall_time(checkout: Path) -> None:
    marker = f"HOSTILE_MARKER={uuid.uuid4().hex}"
    started = time.monotonic()
    outcome = _pytest(
        checkout, "sleep_forever", limits=Limits(wall_s=5), env=dict([marker.split("=")])
    )
    assert outcome.timed_out
    assert time.monotonic() - started < 15
    time.sleep(0.2)
    assert _processes_with(marker) == []  # the daemon that left the group died too


def test_memory_is_capped(checkout: Path) -> None:
    outcome = _pytest(checkout, "memory", limits=Limits(wall_s=60, memory_bytes=2 << 30))
    assert outcome.returncode == 1
    assert "MemoryError" in outcome.output


def test_output_is_truncated(checkout: Path) -> None:
    outcome = _pytest(checkout, "flood", limits=Limits(wall_s=60, output_bytes=10_000))
    assert outcome.returncode == 1
    assert outcome.truncated
    assert len(outcome.output) < 10_200
    assert "bytes of output left out" in outcome.output
    assert "1 failed" in outcome.output  # the summary at the end is kept


def test_a_tool_nobody_cannot_read_runs_as_root(tmp_path: Path) -> None:
    """Still inside the namespaces and limits, just not as nobody."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as private:  # 0700, outside /tmp
        tool = Path(private) / "tool"
        tool.write_text("#!/bin/sh\nid -un\n")
        tool.chmod(0o700)
        with Sandbox.open(tmp_path) as sandbox:
            outcome = sandbox.run([str(tool)], limits=Limits())
    assert (outcome.user, outcome.output) == ("root", "root\n")
