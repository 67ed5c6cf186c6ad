"""The CLI's own behaviour: clear one-line errors, database maintenance, `serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from aixaudit import cli
from aixaudit.config import get_settings

AIXAUDIT = Path(sys.executable).with_name("aixaudit")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("AIXAUDIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIXAUDIT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_db_upgrade_creates_the_sqlite_database(data_dir: Path) -> None:
    result = CliRunner().invoke(cli.main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (data_dir / "aixaudit.db").is_file()
    assert "database at the current schema: sqlite:///" in result.output


def test_a_missing_path_is_one_clear_line_and_no_run(data_dir: Path) -> None:
    result = CliRunner().invoke(cli.main, ["audit", str(data_dir / "nowhere")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "nowhere" in result.output and len(result.output.strip().splitlines()) <= 2
    runs = CliRunner().invoke(cli.main, ["runs", "--json"])
    assert runs.output.strip() == "[]"


def test_report_of_an_unknown_run_is_a_clear_error(data_dir: Path) -> None:
    result = CliRunner().invoke(cli.main, ["report", "42"])
    assert result.exit_code == 1
    assert "There is no run with id 42." in result.output


@pytest.mark.triton
def test_serve_answers_on_loopback_and_stops_on_ctrl_c(tmp_path: Path, cpu_model_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")} | {
        "AIXAUDIT_DATA_DIR": str(tmp_path / "data"),
        "AIXAUDIT_CPU_MODEL_DIR": str(cpu_model_dir),
    }
    server = subprocess.Popen([str(AIXAUDIT), "serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the server is ready
        assert line.startswith("serving: grpc://127.0.0.1:"), line
        http = line.split("http://")[1].split()[0]
        with urllib.request.urlopen(f"http://{http}/v2/models/ensemble/ready") as response:
            assert response.status == 200
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
