"""Execution-verified acceptance through the real CLI: `audit --execute` on a small Python
repository with a real pytest suite, answered by the real tritonserver with the CPU model;
then two seeded completions (one breaks a test, one passes) executed again with `execute`
on the same run, without asking the model."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from execution_repos import PYREPO, git_fixture

from aixaudit.execution.sandbox import available

AIXAUDIT = Path(sys.executable).with_name("aixaudit")

pytestmark = [
    pytest.mark.triton,
    pytest.mark.skipif(available() is not None, reason=f"no sandbox: {available()}"),
]


def aixaudit(*args: str, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [str(AIXAUDIT), *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.timeout(1800)  # a CPU model on two shared cores
def test_audit_execute_then_seeded_completions(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    checkout = git_fixture(PYREPO, tmp_path / "pyrepo")
    done = subprocess.run(
        [str(AIXAUDIT), "audit", str(checkout.root), "--max-points", "3", "--max-new-tokens",
         "8", "--execute", "--execute-wall-s", "120", "--json"],
        env=embedded_env, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Two JSON documents: the run's report, then its execution.
    decoder = json.JSONDecoder()
    report, end = decoder.raw_decode(done.stdout)
    execution, _ = decoder.raw_decode(done.stdout[end:].lstrip())
    run_id = report["run"]["id"]
    assert report["totals"]["suggestions"] == 3
    assert execution["run_id"] == run_id and execution["runner"] == "pytest"
    assert execution["status"] == "done" and execution["reason"] is None
    assert sum(execution["by_status"].values()) == execution["points_sampled"] == 3

    # Seed two answers at two spans of calc/ops.py: one breaks test_add, one leaves clamp as
    # it was. They replace the model's answers; `execute` runs them without asking the model.
    db = sqlite3.connect(Path(embedded_env["AIXAUDIT_DATA_DIR"]) / "aixaudit.db")
    db.execute("PRAGMA foreign_keys = ON")  # deleting the answers deletes their results
    file_id, text = db.execute(
        "SELECT f.id, b.text FROM files f JOIN blobs b ON b.sha256 = f.sha256"
        " WHERE f.run_id = ? AND f.path = 'calc/ops.py'", (run_id,)
    ).fetchone()  # fmt: skip
    seeded = {"return a + b": "return a - b", "return low": "return low"}
    with db:
        db.execute("DELETE FROM suggestions WHERE run_id = ?", (run_id,))
        for original, answer in seeded.items():
            start = text.index(original)
            line = text.count("\n", 0, start) + 1
            point = db.execute(
                "INSERT INTO points (run_id, file_id, key, kind, node_type, start_byte,"
                " end_byte, start_line, end_line, original) VALUES (?, ?, ?, 'statement',"
                " 'return_statement', ?, ?, ?, ?, ?)",
                (run_id, file_id, f"calc/ops.py:{start}:seeded", start,
                 start + len(original), line, line, original),
            ).lastrowid  # fmt: skip
            db.execute(
                "INSERT INTO suggestions (point_id, run_id, raw_text, text, attempts, accepted,"
                " lines_suggested, lines_accepted, chars_suggested, chars_accepted,"
                " created_at, reused) VALUES (?, ?, ?, ?, 1, 1, 1, 1, 1, 1,"
                " '2026-12-03 00:00:00', 0)",
                (point, run_id, answer, answer),
            )
    again = aixaudit("execute", str(run_id), "--execute-wall-s", "120", "--json", env=embedded_env)
    assert again["by_status"] == {"passed": 1, "failed": 1, "uncovered": 0, "baseline_failing": 0}
    assert (again["totals"]["executed"], again["totals"]["verified"]) == (2, 1)
    failure = db.execute("SELECT failure FROM executions WHERE status = 'failed'").fetchone()[0]
    assert "assert -1 == 5" in failure
