"""Celery worker and beat processes on this machine, for tests and benchmarks (not shipped).

Each process runs in a session of its own, so `kill()` (SIGKILL to the whole group: a crashed
machine) and `stop()` reach the pool's children too, and nothing is left running behind.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from aixaudit.errors import ConfigError
from aixaudit.processes import end_process_group

ROOT = Path(__file__).resolve().parent.parent  # `celery -A workers` runs from the repository root


class LocalCelery:
    """One `celery -A workers <command>` process; `ready_line` in its log means it is up."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        ready_line: str,
        stop_timeout_s: float = 20.0,
    ) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.log_path = log_path
        self.ready_line = ready_line
        self.stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def worker(
        cls,
        name: str,
        *,
        env: Mapping[str, str],
        log_dir: Path,
        concurrency: int = 1,
        pool: str = "prefork",
        queues: Sequence[str] = (),
    ) -> LocalCelery:
        """A worker named `name` (all queues unless `queues` names some)."""
        args = [
            "worker", "--pool", pool, "--concurrency", str(concurrency), "--hostname",
            f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        if queues:
            args += ["--queues", ",".join(queues)]
        return cls(args, env=env, log_path=log_dir / f"{name}.log", ready_line=f"{name}@")

    @classmethod
    def beat(cls, *, env: Mapping[str, str], log_dir: Path) -> LocalCelery:
        return cls(
            ["beat", "--loglevel", "INFO"],
            env=env,
            log_path=log_dir / "beat.log",
            ready_line="beat: Starting",
        )

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout_s: float = 60.0) -> LocalCelery:
        """Start the process and return once its log says it is ready (or raise)."""
        if self._process is not None:
            raise ConfigError("This Celery process is already running; stop it first.")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", *self.args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while not self._ready(offset):
            if not self.running or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"celery {self.args[0]} did not start; see {self.log_path}.")
            time.sleep(0.1)
        return self

    def _ready(self, offset: int) -> bool:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        if self.args[0] == "worker":
            return self.ready_line in text and " ready." in text
        return self.ready_line in text

    def pool_pids(self) -> list[int]:
        """Process ids of the worker's pool processes (its children)."""
        if self._process is None:
            return []
        path = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def kill(self) -> None:
        """SIGKILL the whole process group at once: no warm shutdown, no acknowledgement."""
        self._end(grace_s=0)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: finish the current tasks), then SIGKILL what is left."""
        self._end(grace_s=self.stop_timeout_s)

    def _end(self, *, grace_s: float) -> None:
        if self._process is not None:
            end_process_group(self._process, grace_s=grace_s)
        self._forget()

    def _forget(self) -> None:
        self._process = None
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalCelery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
