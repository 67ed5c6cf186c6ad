"""The sandbox's overhead: a repository's pytest suite run bare and in the sandbox.

Both passes run the same command (the checkout's prepared virtual environment, the same pytest
arguments and plug-in) on the whole suite; the bare pass in a plain copy made before timing,
the sandboxed pass through `PreparedPytest.run`, which pays for the overlay, the namespaces,
the read-only remounts and the drop to nobody. The passes alternate; medians are printed,
with the ratio sandboxed / bare of wall and of CPU seconds.

    .venv/bin/python benchmarks/execute.py [CHECKOUT] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from aixaudit.execution.pytest_runner import PreparedPytest, PytestRunner, tool_files
from aixaudit.execution.sandbox import Limits

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "execution" / "pyrepo"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare(prepared: PreparedPytest, copy: Path) -> tuple[float, float]:
    (copy / ".aixaudit-execution" / "results.jsonl").unlink(missing_ok=True)
    command, env = prepared.command(copy, ["-m", "pytest"], [])
    cpu, started = children_cpu(), time.monotonic()
    done = subprocess.run(command, cwd=copy, env=os.environ | env, capture_output=True, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the bare run failed:\n{done.stdout.decode()[-2000:]}")
    return wall, children_cpu() - cpu


def sandboxed(prepared: PreparedPytest) -> tuple[float, float]:
    run = prepared.run([], changes={}, limits=Limits(wall_s=600))
    if not run.passed:
        raise SystemExit(f"the sandboxed run failed:\n{run.failure}")
    return run.wall_s, run.cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", nargs="?", type=Path, default=FIXTURE)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        checkout = Path(scratch) / "checkout"
        shutil.copytree(args.checkout, checkout)
        checkout.chmod(0o755)
        prepared = PytestRunner().prepare(checkout, cache_dir=Path(scratch) / "cache")
        if not isinstance(prepared, PreparedPytest):
            raise SystemExit(f"not runnable: {prepared}")
        copy = Path(scratch) / "bare"
        shutil.copytree(checkout, copy)
        for relative, text in tool_files().items():
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            (copy / relative).write_text(text)
        passes: dict[str, list[tuple[float, float]]] = {"bare": [], "sandboxed": []}
        for _ in range(args.repeat):
            passes["bare"].append(bare(prepared, copy))
            passes["sandboxed"].append(sandboxed(prepared))
    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in passes.items()
    }
    for name, (wall, cpu) in medians.items():
        print(f"{name:>9}: wall {wall:6.2f} s  cpu {cpu:6.2f} s  (median of {args.repeat})")
    (bare_wall, bare_cpu), (box_wall, box_cpu) = medians["bare"], medians["sandboxed"]
    print(f"overhead: wall x{box_wall / bare_wall:.2f}, cpu x{box_cpu / bare_cpu:.2f}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
