"""Counting processes by walking /proc: what a launcher left running, zombies excluded."""

from __future__ import annotations

from pathlib import Path


def _stats() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process."""
    rows = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        rows.append((int(stat.parent.name), fields[0], int(fields[1]), int(fields[2])))
    return rows


def group_alive(pgid: int) -> list[int]:
    """Processes of a process group that are still running."""
    return [pid for pid, state, _, group in _stats() if group == pgid and state != "Z"]


def children(pid: int) -> list[int]:
    """The running direct children of `pid`."""
    return [child for child, state, parent, _ in _stats() if parent == pid and state != "Z"]
