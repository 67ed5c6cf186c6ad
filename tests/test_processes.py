"""Launchers on SIGTERM and SIGINT: `aixaudit serve` and `aixaudit audit` end tritonserver and
its stubs (their whole process group), remove their temp dirs and /dev/shm regions, finish the
interrupted run, and exit 128 + the signal's number. Real subprocesses, counted in /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from proc_walk import children, group_alive
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from aixaudit.local_triton import SHM_DIR, SHM_PREFIX
from aixaudit.processes import Interrupted, stop_signals_raise
from aixaudit.store.db import make_engine, session_factory
from aixaudit.store.tables import Run

AIXAUDIT = Path(sys.executable).with_name("aixaudit")
POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"
STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT]


def test_the_first_stop_signal_raises_and_later_ones_wait_for_the_cleanup() -> None:
    before = signal.getsignal(signal.SIGTERM)
    cleaned = False
    with pytest.raises(Interrupted) as raised, stop_signals_raise():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler raises in this thread long before
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # ignored: the cleanup is not cut short
            time.sleep(0.1)
            cleaned = True
    assert cleaned
    assert (str(raised.value), raised.value.exit_code) == ("interrupted by SIGTERM", 143)
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- real launchers -----------------------------------------------------------------------------


def _launch(arguments: list[str], tmp_path: Path, cpu_model_dir: Path) -> subprocess.Popen[str]:
    """`aixaudit ARGUMENTS` in a session of its own, with a private data dir and TMPDIR."""
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")} | {
        "AIXAUDIT_DATA_DIR": str(tmp_path / "data"),
        "AIXAUDIT_CPU_MODEL_DIR": str(cpu_model_dir),
        "TMPDIR": str(tmp_path / "tmp"),
    }
    return subprocess.Popen(
        [str(AIXAUDIT), *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _server_of(launcher: subprocess.Popen[str]) -> int:
    """The tritonserver the launcher started (its child, leading a process group of its own)."""
    servers = [
        pid
        for pid in children(launcher.pid)
        if "tritonserver" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    assert len(servers) == 1, servers
    return servers[0]


def _workspaces(tmp_path: Path) -> list[Path]:
    """The launcher's temp dirs left in its TMPDIR (torch, in the stubs, keeps a cache there)."""
    return list((tmp_path / "tmp").glob("aixaudit-*"))


def _stop(launcher: subprocess.Popen[str], signum: int, tmp_path: Path) -> None:
    """Signal the launcher; it must exit 128 + signum and leave nothing of its own behind."""
    server = _server_of(launcher)
    assert len(group_alive(server)) >= 2  # tritonserver and its Python-backend stubs
    assert _workspaces(tmp_path)
    shm = f"{SHM_PREFIX}aixaudit_{launcher.pid}_"
    assert list(SHM_DIR.glob(f"{shm}*"))
    launcher.send_signal(signum)
    assert launcher.wait(timeout=120) == 128 + signum
    assert group_alive(server) == []  # the server and every stub
    assert group_alive(launcher.pid) == []  # nothing else the launcher started
    assert list(SHM_DIR.glob(f"{shm}*")) == []
    assert _workspaces(tmp_path) == []


@pytest.mark.triton
@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_serve_ends_its_server_on_a_stop_signal(
    tmp_path: Path, cpu_model_dir: Path, signum: int
) -> None:
    launcher = _launch(["serve"], tmp_path, cpu_model_dir)
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()  # printed once the server is ready
        assert line.startswith("serving: grpc://127.0.0.1:"), line
        http = line.split("http://")[1].split()[0]
        with urllib.request.urlopen(f"http://{http}/v2/models/ensemble/ready") as response:
            assert response.status == 200
        _stop(launcher, signum, tmp_path)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


def _run(tmp_path: Path) -> Run | None:
    database = tmp_path / "data" / "aixaudit.db"
    if not database.is_file():
        return None
    engine = make_engine(f"sqlite:///{database}")
    try:
        with session_factory(engine)() as session:
            return session.scalars(select(Run)).one_or_none()
    except OperationalError:  # not migrated yet
        return None
    finally:
        engine.dispose()


@pytest.mark.triton
@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_audit_ends_its_server_and_finishes_the_run_on_a_stop_signal(
    tmp_path: Path, cpu_model_dir: Path, signum: int
) -> None:
    launcher = _launch(
        ["audit", str(POLYGLOT), "--max-points", "40", "--max-new-tokens", "8"],
        tmp_path,
        cpu_model_dir,
    )
    try:
        deadline = time.monotonic() + 300
        while (run := _run(tmp_path)) is None or run.status != "running":
            assert launcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        _stop(launcher, signum, tmp_path)
        run = _run(tmp_path)
        assert run is not None
        assert run.status in ("partial", "failed")
        assert run.error == f"interrupted by {signal.Signals(signum).name}"
        assert run.finished_at is not None
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
