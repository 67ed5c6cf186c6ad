"""The API against its own OpenAPI description: Schemathesis generates valid and invalid requests
for every operation (paths, queries, bodies) and sends them, with a write token, to a real
`aixaudit api` on a small seeded database (SQLite and PostgreSQL). No answer may be a 5xx, every
answer must match the schema (status codes, content types, headers, bodies), and data the schema
calls invalid must be refused. Ids are drawn at random, so for GET /api/compare half of the
draws take seeded runs instead (a pair that compares, and pairs it refuses): its answers of 200
and 409 are checked too, not only its 404s."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_api import TOKENS, WRITE_TOKEN, api_process, seed

pytestmark = pytest.mark.services  # a real uvicorn server

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]
EXAMPLES = 25  # per operation and phase: bounded, and seeded, so every run sends the same


def test_the_api_keeps_its_openapi_contract(db_url: str, tmp_path: Path) -> None:
    runs = seed(db_url).runs
    compared = [runs["a"], runs["b"], runs["first"]]
    (tmp_path / "schemathesis.toml").write_text(
        f"[dictionaries.runs]\nvalues = {compared}\n\n[parameters]\n"
        + "".join(
            f'"query.{name}" = {{ dictionary = "runs", probability = 0.5 }}\n' for name in "ab"
        )
    )
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    with api_process(db_url=db_url, home=tmp_path, key_prefix=prefix, settings=TOKENS) as api:
        done = subprocess.run(
            [
                str(SCHEMATHESIS), "run", f"{api}/openapi.json",
                "--header", f"Authorization: Bearer {WRITE_TOKEN}",
                "--checks", ",".join(CHECKS),
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", str(EXAMPLES), "--seed", "7", "--workers", "1",
                "--request-timeout", "30", "--no-shrink",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=400, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "GET /api/compare" not in done.stdout  # not among the operations that only met 404s
