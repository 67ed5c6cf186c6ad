"""Faults injected into real processes mid-run, for tests/workers/ and benchmarks/faults_midrun.py
alike: the repository and environment their runs share, a private redis-server to restart empty,
PostgreSQL backends to terminate, and a tritonserver restarted on the ports its clients know."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
import redis
import tritonclient.http as httpclient

from aixaudit import local_triton
from aixaudit.local_triton import LocalTriton

AIXAUDIT = Path(sys.executable).with_name("aixaudit")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
UNREACHABLE = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
SMALL = ["--profile", "l2r", "--per-file", "2", "--max-new-tokens", "4"]
FAULTS = 5  # connection kills, 0.3 s apart, while chunks are being answered

MODULE = """\
def total_{i}(values):
    result = 0
    for value in values:
        if value > {i}:
            result += value
    return result


def label_{i}(name, count):
    text = "{{}}: {{}}".format(name, count)
    return text.upper()
"""


def make_repo(root: Path, files: int) -> Path:
    """`files` modules of two points each (with `--per-file 2`)."""
    root.mkdir()
    for i in range(files):
        (root / f"mod{i:02d}.py").write_text(MODULE.format(i=i))
    return root


def run_env(
    *, data_dir: Path, database_url: str, broker_url: str, triton_url: str
) -> dict[str, str]:
    """This process's environment without its AIXAUDIT_ settings, plus these: 2-point chunks."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")}
    return clean | {
        "AIXAUDIT_DATA_DIR": str(data_dir),
        "AIXAUDIT_DATABASE_URL": database_url,
        "AIXAUDIT_BROKER_URL": broker_url,
        "AIXAUDIT_RESULT_BACKEND": broker_url,
        "AIXAUDIT_TRITON_URL": f"grpc://{triton_url}",
        "AIXAUDIT_CHUNK_SIZE": "2",
        "AIXAUDIT_MAX_IN_FLIGHT": "2",
    }


def local_env(env: Mapping[str, str], triton_url: str) -> dict[str, str]:
    """`env` for a run answered in its own process on `triton_url`: no broker, one quick retry."""
    return dict(env) | {
        "AIXAUDIT_TRITON_URL": f"grpc://{triton_url}",
        "AIXAUDIT_BROKER_URL": UNREACHABLE,
        "AIXAUDIT_RESULT_BACKEND": UNREACHABLE,
        "AIXAUDIT_MAX_RETRIES": "1",
        "AIXAUDIT_RETRY_BACKOFF_S": "0.05",
    }


def wait_for(condition: Callable[[], Any], *, timeout_s: float = 120.0) -> Any:
    """`condition()` once it is truthy, polled every 20 ms; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_s} s")
        time.sleep(0.02)
    return value


def inferences(server: LocalTriton) -> int:
    """Requests the server's ensemble has answered since it started."""
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model_name="ensemble")
    finally:
        client.close()
    return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])


def restart_on_its_ports(server: LocalTriton, repository: Path, env: Mapping[str, str]) -> None:
    """Stop `server` (killed or not) and start it again on the same ports: its clients' address
    stays right."""
    ports = server._ports
    assert ports is not None, "the server was never started"
    server.stop()
    free_ports, local_triton._free_ports = local_triton._free_ports, lambda: ports
    try:
        server.start(repository, env=env)
    finally:
        local_triton._free_ports = free_ports


def terminate_backends(database: str, *, times: int = FAULTS) -> int:
    """Terminate every connection to `database` (only it) `times` times, 0.3 s apart; returns
    how many were terminated."""
    terminated = 0
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for _ in range(times):
            terminated += len(admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
            )  # fmt: skip
            time.sleep(0.3)
    return terminated


class PrivateRedis:
    """A redis-server of our own on a free loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}/0"
        self.command = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis.from_url(self.url)
        try:
            wait_for(lambda: _pings(client), timeout_s=30)
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL, nothing saved: every queued message is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Killed, then up again empty on the same port."""
        self.kill()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
