"""Ending a child process that leads a process group of its own (a server, a Celery worker)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def end_process_group(process: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM `process` and give it `grace_s` seconds to finish (0: no grace), then SIGKILL its
    whole group, so that children a crash or a hang left behind go too, and reap it."""
    if grace_s > 0 and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
