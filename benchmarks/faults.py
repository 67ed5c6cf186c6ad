"""Safe to run unattended: what hostile input and faults cost, against a baseline of the same run.

One function per section; `main` runs those asked for (all by default). Each measurement runs
in a fresh child process, so one section's memory or state never colours another's.

- planning_memory: peak RSS of planning generated hostile repositories (tests/hostile.py) of
  2,500 and 10,000 entries, beside a baseline tree of only its giant files (the same largest
  files, nearly no count). Planning streams files, so the peak should not grow with the count:
  target 10,000 / 2,500 <= 1.1.
- midrun: faults mid-run against real processes (tritonserver, a worker, Redis, PostgreSQL
  connections), each run counted: planned, answered, lost, duplicated, final status
  (benchmarks/faults_midrun.py says how). Exits non-zero if a run is not done or a point is
  lost or duplicated.

    .venv/bin/python benchmarks/faults.py [--sections planning_memory] [--entries 2500 10000]
        [--database-url URL]   (default: a SQLite file per tree in a temporary directory)
        [--leave-out CATEGORY ...]   (hostile categories written as ordinary sources instead)
        [--files 20]   (midrun: files audited, 2 points each)
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from aixaudit import audit, sources
from aixaudit.scoring import AcceptanceRule
from aixaudit.store.db import make_engine, upgrade
from aixaudit.store.tables import File

# The generator lives with the tests that use it too; tests/ is no package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hostile import CATEGORIES, GIANT_EVERY, GIANTS, make_hostile_repo


def _in_child(function: Callable[..., tuple[float, ...]], *args: object) -> tuple[float, ...]:
    """`function(*args)` in a fresh interpreter (spawned, so nothing is inherited)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def _plan_peak(root: str, database_url: str) -> tuple[float, float, float, float]:
    """In the child: plan the tree; (peak RSS MB, seconds, files stored, files skipped)."""
    engine = make_engine(database_url)
    checkout = sources.Checkout(root=Path(root), origin=root, commit=None, ref=None)
    start = time.perf_counter()
    run_id = audit.plan_run(
        sessionmaker(engine),
        checkout=checkout,
        options=audit.AuditOptions(),
        rule=AcceptanceRule(),
    )
    seconds = time.perf_counter() - start
    with sessionmaker(engine)() as session:
        reasons = Counter(session.scalars(select(File.skip_reason).where(File.run_id == run_id)))
    engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    skipped = sum(n for reason, n in reasons.items() if reason is not None)
    return peak_mb, seconds, float(sum(reasons.values())), float(skipped)


def planning_memory(args: argparse.Namespace, workdir: Path) -> None:
    print("== planning memory: peak RSS of plan_run on hostile trees (fresh process each)")
    entries: Sequence[int] = args.entries
    peaks: dict[int, float] = {}
    # The baseline holds the giant files (10 MB line, 100k lines, nested ifs) and little else.
    for count in (len(GIANTS), *entries):
        root = workdir / f"tree-{count}"
        made = make_hostile_repo(root, count, leave_out=args.leave_out)
        url = args.database_url or f"sqlite:///{workdir / f'plan-{count}.db'}"
        upgrade(url)
        peak, seconds, stored, skipped = _in_child(_plan_peak, str(root), url)
        peaks[count] = peak
        kinds = sum(1 for paths in made.values() if paths)
        print(
            f"{count:>6} entries ({kinds} kinds, giants every {GIANT_EVERY}): peak RSS "
            f"{peak:.0f} MB, {stored:.0f} files stored ({skipped:.0f} skipped), {seconds:.1f} s"
        )
    small, large = sorted(entries)[0], sorted(entries)[-1]
    print(f"ratio {large} / {small} entries: {peaks[large] / peaks[small]:.2f} (target <= 1.1)")
    baseline = peaks[min(peaks)]
    print(
        f"above the giants-only baseline ({baseline:.0f} MB): "
        + ", ".join(f"{count}: +{peaks[count] - baseline:.0f} MB" for count in entries)
    )


# Section name -> function(args, workdir): each prints its own figures.
def midrun(args: argparse.Namespace, workdir: Path) -> None:
    here = Path(__file__).resolve().parent
    import faults_midrun  # beside this file

    # benchmarks/workers.py would shadow the `workers` package the faults drive.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    outcomes = faults_midrun.midrun_faults(args.files)
    bad = [o.fault for o in outcomes if o.status != "done" or o.tally.lost or o.tally.duplicated]
    if bad:
        raise SystemExit(f"not done, or points lost or duplicated: {', '.join(bad)}")


SECTIONS: dict[str, Callable[[argparse.Namespace, Path], None]] = {
    "planning_memory": planning_memory,
    "midrun": midrun,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--entries", nargs=2, type=int, default=[2_500, 10_000])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--leave-out", nargs="*", choices=sorted(CATEGORIES), default=[])
    parser.add_argument("--files", type=int, default=20, help="midrun: files audited")
    args = parser.parse_args()
    for name in args.sections:
        with tempfile.TemporaryDirectory(prefix=f"aixaudit-{name}-") as workdir:
            SECTIONS[name](args, Path(workdir))


if __name__ == "__main__":
    main()
