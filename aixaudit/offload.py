"""CPU-bound work beside an asyncio loop: in worker processes, or inline when there are none.

Post-processing an answer parses its whole file several times with tree-sitter, which holds the
GIL: run in the loop's thread it stops requests from going out, run in another thread it still
takes turns with the loop. Worker processes run it on other cores while the loop keeps the
server busy. At most `backlog` calls are outstanding, so a slow scorer slows the requests down
(back-pressure) instead of piling up answers in memory.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


class Offload(Generic[T]):
    """Calls `submit`ted in order, results collected with `results` in completion order."""

    def __init__(self, processes: int) -> None:
        # Spawned, not forked: the parent holds gRPC and database threads that a fork would copy.
        self._pool = (
            ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            if processes > 0
            else None
        )
        self.backlog = 2 * processes  # keeps every worker busy while the loop gathers results
        self._running: set[asyncio.Future[T]] = set()
        self._ready: list[T] = []

    def submit(self, function: Callable[..., T], *args: Any) -> None:
        """Start `function(*args)` in a worker, or run it now when there are no workers."""
        if self._pool is None:
            self._ready.append(function(*args))
            return
        loop = asyncio.get_running_loop()
        self._running.add(loop.run_in_executor(self._pool, function, *args))

    async def results(self, *, keep: int) -> list[T]:
        """What has finished, after waiting until at most `keep` calls are still running; a
        call that raised raises here."""
        while True:
            done = {future for future in self._running if future.done()}
            self._running -= done
            self._ready.extend(future.result() for future in done)
            if len(self._running) <= keep:
                break
            await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
        ready, self._ready = self._ready, []
        return ready

    def __enter__(self) -> Offload[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
