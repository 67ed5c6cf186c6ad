"""Peak memory of planning and auditing a small and a large tree: it must not grow with files.

Trees are copies of real source files (the standard library's Python files of at most
--max-file-bytes, round robin), N files in directories of 500. Each step runs in a fresh
process, so its peak RSS (getrusage ru_maxrss) is that step's alone: planning the tree into a
SQLite store, then auditing the run against the fixed-cost model server (a fast, real
tritonserver; scoring in the process, as --scoring-processes 0 does). Target (issue 14, item 5):
every peak under 200 MB, and the large tree's within 1.3x of the small one's.

    .venv/bin/python benchmarks/memory.py [--files 50 50000] [--points 150] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

TARGET_MB = 200.0
TARGET_RATIO = 1.3
FILES_PER_DIR = 500


def make_tree(root: Path, files: int, *, corpus: Path, max_file_bytes: int) -> Path:
    """`files` copies of the corpus' small Python files under `root` (made once, then reused)."""
    done = root / ".complete"
    if done.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    sources = sorted(
        path for path in corpus.rglob("*.py") if 0 < path.stat().st_size <= max_file_bytes
    )
    for number in range(files):
        source = sources[number % len(sources)]
        target = root / f"d{number // FILES_PER_DIR:04d}" / f"f{number:06d}_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    done.write_text("")
    return root


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def plan_step(tree: Path, db_url: str, points: int) -> dict[str, float]:
    from aixaudit import sources
    from aixaudit.audit import AuditOptions, plan_run
    from aixaudit.scoring import AcceptanceRule
    from aixaudit.store.db import make_engine, session_factory, upgrade

    upgrade(db_url)
    factory = session_factory(make_engine(db_url))
    checkout = sources.checkout(str(tree), ref=None, cache_dir=tree.parent / "repos")
    before = peak_mb()
    started = time.perf_counter()
    options = AuditOptions(max_points=points, max_new_tokens=16)
    run_id = plan_run(factory, checkout=checkout, options=options, rule=AcceptanceRule())
    return {
        "run_id": run_id,
        "seconds": time.perf_counter() - started,
        "imports_mb": before,
        "peak_mb": peak_mb(),
    }


def audit_step(db_url: str, run_id: int, grpc_url: str, model_dir: Path) -> dict[str, float]:
    from aixaudit.audit import execute_run
    from aixaudit.ensemble import ENSEMBLE_NAME
    from aixaudit.inference import Endpoint, TritonCompleter
    from aixaudit.store.db import make_engine, session_factory
    from aixaudit.tokens import ModelTokenizer

    factory = session_factory(make_engine(db_url))
    completer = TritonCompleter(Endpoint.parse(grpc_url), model=ENSEMBLE_NAME, max_in_flight=32)
    started = time.perf_counter()
    status = execute_run(
        factory,
        run_id=run_id,
        completer=completer,
        counter=ModelTokenizer(model_dir),
        scoring_processes=0,
    )
    return {
        "status": status.value,
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(),
    }


def child(step: str, *args: str) -> dict[str, float]:
    """Run one step in a fresh interpreter; its JSON answer."""
    command = [sys.executable, __file__, "--step", step, *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, nargs=2, default=[50, 50_000])
    parser.add_argument("--points", type=int, default=150, help="max points of each run")
    parser.add_argument("--max-file-bytes", type=int, default=8192)
    parser.add_argument("--keep", type=Path, default=None, help="where trees are kept between runs")
    parser.add_argument("--step", choices=["plan", "audit"], help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "plan":
        tree, db_url, points = args.args
        print(json.dumps(plan_step(Path(tree), db_url, int(points))))
        return
    if args.step == "audit":
        db_url, run_id, grpc_url, model_dir = args.args
        print(json.dumps(audit_step(db_url, int(run_id), grpc_url, Path(model_dir))))
        return
    measure(args)


def measure(args: argparse.Namespace) -> None:
    from aixaudit.config import Settings
    from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton
    from aixaudit.model_repo import render_fixed_cost
    from aixaudit.weights import ensure_cpu_model

    corpus = Path(sysconfig.get_paths()["stdlib"])
    model_dir = ensure_cpu_model(Settings())
    keep = args.keep or Path(tempfile.gettempdir()) / "aixaudit-memory-trees"
    with tempfile.TemporaryDirectory(prefix="aixaudit-memory-") as tmp:
        work = Path(tmp)
        repo = render_fixed_cost(work / "repo", delay_ms=20, max_batch_size=16)
        results: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
        with LocalTriton(log_dir=work).start(repo, env={MODEL_DIR_ENV: str(model_dir)}) as server:
            for files in args.files:
                tree = make_tree(
                    keep / f"tree-{files}", files, corpus=corpus,
                    max_file_bytes=args.max_file_bytes,
                )  # fmt: skip
                db_url = f"sqlite:///{work / f'memory-{files}.db'}"
                plan = child("plan", str(tree), db_url, str(args.points))
                audit = child(
                    "audit", db_url, str(int(plan["run_id"])), server.grpc_url, str(model_dir)
                )
                results[files] = plan, audit
                print(
                    f"{files} files: plan peak {plan['peak_mb']:.0f} MB "
                    f"(after imports {plan['imports_mb']:.0f} MB, {plan['seconds']:.1f} s); "
                    f"audit peak {audit['peak_mb']:.0f} MB ({audit['status']}, "
                    f"{audit['seconds']:.1f} s)",
                    flush=True,
                )
    small, large = (results[files] for files in args.files)
    for label, index in (("plan", 0), ("audit", 1)):
        ratio = large[index]["peak_mb"] / small[index]["peak_mb"]
        peak = max(small[index]["peak_mb"], large[index]["peak_mb"])
        print(
            f"{label}: peak RSS {large[index]['peak_mb']:.0f} MB at {args.files[1]} files vs "
            f"{small[index]['peak_mb']:.0f} MB at {args.files[0]}: ratio {ratio:.2f} "
            f"(target <= {TARGET_RATIO}), largest {peak:.0f} MB (target < {TARGET_MB:.0f})"
        )
    print(f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
