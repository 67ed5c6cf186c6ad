"""A server describes itself: the ensemble's config declares the prompt profile, the model and
the tokenizer, and a client given only the URL asks and counts as the server does. Explicit
settings still win, with a warning when they contradict the server."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aixaudit.config import Settings
from aixaudit.ensemble import (
    DECLARED_MODEL_ID,
    DECLARED_PROFILE,
    DECLARED_TOKENIZER_DIR,
    DECLARED_TOKENIZER_SHA256,
)
from aixaudit.local_triton import LocalTriton
from aixaudit.model_server import counter_for, declared_by, profile_for
from aixaudit.tokens import tokenizer_sha256

AIXAUDIT = Path(sys.executable).with_name("aixaudit")
POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


def test_the_declared_tokenizer_is_used_only_where_this_machine_has_the_same_file(
    tmp_path: Path, cpu_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sha = tokenizer_sha256(cpu_model_dir)
    assert sha is not None
    declared = {DECLARED_TOKENIZER_DIR: str(cpu_model_dir), DECLARED_TOKENIZER_SHA256: sha}
    settings = _settings(tmp_path)
    exact = counter_for(settings, declared)
    assert (exact.exact, exact.sha256) == (True, sha)
    assert caplog.records == []
    # Another file at the declared path (a different model's tokenizer): approximate, said.
    elsewhere = counter_for(settings, declared | {DECLARED_TOKENIZER_SHA256: "0" * 64})
    assert not elsewhere.exact
    assert "token counts are approximate" in caplog.text
    caplog.clear()
    # Nothing declared (an older server): approximate, as before, without a warning.
    assert not counter_for(settings, {}).exact
    assert caplog.records == []


def test_an_explicit_tokenizer_wins_over_the_declared_one_with_a_warning(
    tmp_path: Path, cpu_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine = tmp_path / "tokenizer"
    mine.mkdir()
    shutil.copy(cpu_model_dir / "tokenizer.json", mine / "tokenizer.json")
    with (mine / "tokenizer.json").open("a") as file:
        file.write("\n")  # the same tokens, another file: the server's counts are not promised
    declared = {
        DECLARED_TOKENIZER_DIR: str(cpu_model_dir),
        DECLARED_TOKENIZER_SHA256: tokenizer_sha256(cpu_model_dir) or "",
    }
    counter = counter_for(_settings(tmp_path, tokenizer_dir=mine), declared)
    assert counter.sha256 == tokenizer_sha256(mine)
    assert "is not the tokenizer the server declares" in caplog.text


def test_an_unreachable_server_declares_nothing_and_the_default_stays(tmp_path: Path) -> None:
    settings = _settings(tmp_path, triton_url="grpc://127.0.0.1:9")
    assert declared_by(settings) == {}
    assert profile_for(settings, None) == "aixcoder"
    assert profile_for(_settings(tmp_path), None) == "l2r"  # the embedded CPU model


@pytest.mark.triton
def test_the_served_cpu_model_declares_itself_and_an_explicit_profile_wins_with_a_warning(
    tmp_path: Path,
    triton_server: LocalTriton,
    cpu_model_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for url in (f"grpc://{triton_server.grpc_url}", f"http://{triton_server.http_url}"):
        settings = _settings(tmp_path, triton_url=url)
        declared = declared_by(settings)
        assert declared[DECLARED_PROFILE] == "l2r"
        assert declared[DECLARED_MODEL_ID] == settings.cpu_model
        assert declared[DECLARED_TOKENIZER_DIR] == str(cpu_model_dir)
        assert declared[DECLARED_TOKENIZER_SHA256] == tokenizer_sha256(cpu_model_dir)
        assert profile_for(settings, None) == "l2r"
        assert caplog.records == []
        assert profile_for(settings, "aixcoder") == "aixcoder"
        [warning] = caplog.records
        assert warning.levelno == logging.WARNING
        assert "declares l2r: prompts follow aixcoder" in warning.getMessage()
        caplog.clear()


@pytest.mark.triton
def test_serve_then_an_audit_with_only_the_url_asks_and_counts_as_the_server(
    tmp_path: Path, cpu_model_dir: Path
) -> None:
    """`aixaudit serve` in one environment, `aixaudit audit` in another that has nothing but
    the URL (and its own data dir): l2r prompts and the served model's exact tokenizer."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")}
    serving = clean | {
        "AIXAUDIT_DATA_DIR": str(tmp_path / "server"),
        "AIXAUDIT_CPU_MODEL_DIR": str(cpu_model_dir),
    }
    server = subprocess.Popen(
        [str(AIXAUDIT), "serve"],
        env=serving,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the server is ready
        url = line.split()[1]
        assert url.startswith("grpc://127.0.0.1:"), line
        client = clean | {"AIXAUDIT_DATA_DIR": str(tmp_path / "client"), "AIXAUDIT_TRITON_URL": url}
        small = ["--max-points", "1", "--max-new-tokens", "4", "--prompt-budget", "128"]
        command = ["audit", str(POLYGLOT), *small, "--json"]
        done = subprocess.run(
            [str(AIXAUDIT), *command],
            env=client,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    assert report["run"]["status"] == "done"
    assert report["run"]["profile"] == "l2r"
    served = report["served_by"]
    assert served["profile"] == "l2r"
    assert served["model_id"] == Settings(_env_file=None).cpu_model
    assert served["tokens_exact"] is True
    assert served["tokenizer_sha256"] == tokenizer_sha256(cpu_model_dir)
    assert served["weights_sha256"]  # the converted weights' source, declared by the server
    assert "approximate" not in done.stderr
