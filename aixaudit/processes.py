"""Process lifetimes: ending a child that leads a process group of its own (a server, a Celery
worker), and turning SIGTERM/SIGINT into an exception so that launchers clean up on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # what `timeout`, systemd and Ctrl-C send


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived. A KeyboardInterrupt, so that it leaves an asyncio loop at once
    (Task steps re-raise it) and every `finally` on the way out runs."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, the first SIGTERM or SIGINT raises Interrupted; later ones are ignored,
    so that the cleanup the first one started (stopping a server) is not cut short."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
