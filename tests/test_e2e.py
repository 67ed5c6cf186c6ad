"""The whole slice through the real CLI: scan, points, a real tritonserver with the real CPU
model, post-processing, scores, storage and the report."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aixaudit.config import Settings
from aixaudit.local_triton import LocalTriton
from aixaudit.prompts import PROFILE_BUDGETS
from aixaudit.scoring import METRICS
from aixaudit.tokens import ModelTokenizer
from aixaudit.weights import MARKER_NAME

FIXTURE = Path(__file__).parent / "fixtures" / "polyglot"
AIXAUDIT = Path(sys.executable).with_name("aixaudit")
POINTS = 6

pytestmark = pytest.mark.triton


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The polyglot fixture plus what git could not carry: an ignored file and an outward link."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root)
    (root / "out").mkdir()
    (root / "out" / "ignored.py").write_text("def ignored():\n    return 1\n")
    (root / "passwd.py").symlink_to("/etc/passwd")
    return root


def aixaudit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIXAUDIT), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def audit(repo: Path, env: dict[str, str], *extra: str) -> dict:
    done = aixaudit(
        "audit", str(repo), "--max-points", str(POINTS), "--max-new-tokens", "8", "--json",
        *extra, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_audit_on_embedded_defaults_stores_scores_and_reports(
    repo: Path, embedded_env: dict[str, str]
) -> None:
    report = audit(repo, embedded_env)  # no Triton URL: aixaudit starts the bundled server itself

    assert report["run"]["status"] == "done"
    assert report["run"]["profile"] == "l2r"
    assert report["totals"]["points"] == POINTS
    assert report["totals"]["suggestions"] == POINTS
    assert report["totals"]["errors"] == 0
    assert report["skipped"] == {
        "binary": 1,  # logo.png
        "generated": 1,  # src/api_pb2.py
        "symlink_outside": 1,  # passwd.py
        "unsupported_language": 2,  # README.md, .gitignore
        "vendored": 1,  # node_modules/leftpad/index.js
    }
    assert sum(row["points"] for row in report["by_language"]) == POINTS
    assert sum(row["points"] for row in report["by_kind"]) == POINTS
    assert {m["name"] for m in report["metrics"]} == set(METRICS)

    db = sqlite3.connect(Path(embedded_env["AIXAUDIT_DATA_DIR"]) / "aixaudit.db")
    files = dict(db.execute("SELECT path, skip_reason FROM files"))
    assert "out/ignored.py" not in files  # .gitignore'd: not even listed
    assert files["src/stats.py"] is None and files["native/lib.rs"] is None
    rows = db.execute(
        "SELECT p.original, s.text, s.accepted, s.error, "
        "  (SELECT value FROM scores WHERE suggestion_id = s.id AND metric_name = 'exact_match'),"
        "  (SELECT count(*) FROM scores WHERE suggestion_id = s.id)"
        " FROM points p JOIN suggestions s ON s.point_id = p.id"
    ).fetchall()
    assert len(rows) == POINTS
    for original, text, accepted, error, exact, n_scores in rows:
        assert error is None and text is not None
        assert n_scores == len(METRICS)
        assert exact == float(text.strip() == original.strip())
        if exact:
            assert accepted
    accepted = sum(row[2] for row in rows)
    assert report["totals"]["accepted"] == accepted

    # What answered it: the embedded model by name, version and weights, on loopback, with
    # token counts by its own tokenizer; the budgets are the profile's, capped by the option.
    served = report["served_by"]
    weights = json.loads((Path(embedded_env["AIXAUDIT_CPU_MODEL_DIR"]) / MARKER_NAME).read_text())
    assert (served["model"], served["versions"]) == ("ensemble", ["1"])
    assert served["weights_sha256"] == weights["source_sha256"]
    assert served["server_url"].startswith("grpc://127.0.0.1:")
    tokenizer = ModelTokenizer(Path(embedded_env["AIXAUDIT_CPU_MODEL_DIR"]))
    assert (served["tokens_exact"], served["tokenizer_sha256"]) == (True, tokenizer.sha256)
    # The run's model identity (what its fingerprint holds): the embedded server's, by name.
    [identity] = db.execute("SELECT model FROM runs").fetchone()
    assert identity == f"ensemble@embedded:{Settings.model_fields['cpu_model'].default}"
    assert report["config"]["max_new_tokens"] == 8
    assert report["config"]["prompt_budget"] == PROFILE_BUDGETS["l2r"].prompt
    facts = db.execute(
        "SELECT raw_text, output_tokens, max_new_tokens, latency_ms, queued_ms, prompt_truncated"
        " FROM suggestions"
    ).fetchall()
    for raw, output, asked, latency, queued, truncated in facts:
        assert output == tokenizer.count(raw) and 1 <= asked <= 8
        assert latency > 0 and queued >= 0 and truncated in (0, 1)
    assert report["budgets"]["at_limit"] == sum(row[1] >= row[2] for row in facts)
    assert report["budgets"]["prompts_truncated"] == sum(row[5] for row in facts)

    # The stored report is the same through `report`, and `runs` lists the run.
    again = aixaudit("report", str(report["run"]["id"]), "--json", env=embedded_env)
    assert json.loads(again.stdout) == report
    listed = aixaudit("runs", "--json", env=embedded_env)
    assert [run["id"] for run in json.loads(listed.stdout)] == [report["run"]["id"]]


def test_same_commit_and_seed_pick_the_same_points_on_a_configured_server(
    repo: Path, embedded_env: dict[str, str], triton_server: LocalTriton
) -> None:
    env = embedded_env | {"AIXAUDIT_TRITON_URL": f"grpc://{triton_server.grpc_url}"}
    first = audit(repo, env, "--profile", "l2r")
    second = audit(repo, env, "--profile", "l2r")
    db = sqlite3.connect(Path(env["AIXAUDIT_DATA_DIR"]) / "aixaudit.db")

    def points(run_id: int) -> list[tuple[str, str]]:
        query = "SELECT key, original FROM points WHERE run_id = ? ORDER BY key"
        return db.execute(query, (run_id,)).fetchall()

    def texts(run_id: int) -> list[str]:
        query = (
            "SELECT s.text FROM suggestions s JOIN points p ON p.id = s.point_id"
            " WHERE s.run_id = ? ORDER BY p.key"
        )
        return [row[0] for row in db.execute(query, (run_id,))]

    assert first["served_by"]["server_url"] == env["AIXAUDIT_TRITON_URL"]
    assert points(first["run"]["id"]) == points(second["run"]["id"])
    assert len(points(first["run"]["id"])) == POINTS
    # fp32 greedy decoding on CPU: the same prompts get the same completions.
    assert texts(first["run"]["id"]) == texts(second["run"]["id"])


def test_unreachable_server_fails_the_run_with_one_sentence(
    repo: Path, embedded_env: dict[str, str]
) -> None:
    env = embedded_env | {"AIXAUDIT_TRITON_URL": "grpc://127.0.0.1:9", "AIXAUDIT_MAX_RETRIES": "0"}
    done = aixaudit("audit", str(repo), "--max-points", "2", env=env)
    assert done.returncode == 1
    assert "Triton at grpc://127.0.0.1:9 (model 'ensemble') cannot be reached" in done.stderr
    assert "Traceback" not in done.stderr
    listed = json.loads(aixaudit("runs", "--json", env=env).stdout)
    assert listed[0]["status"] == "failed" and "cannot be reached" in listed[0]["error"]
