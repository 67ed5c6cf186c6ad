"""The CLI's own behaviour: clear one-line errors, exit statuses, database maintenance, `serve`."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aixaudit import cli
from aixaudit.cli import shared
from aixaudit.cli.shared import EXIT_RUN_NOT_DONE
from aixaudit.config import get_settings
from aixaudit.store import queries
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import RunStatus

AIXAUDIT = Path(sys.executable).with_name("aixaudit")


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


# -- bad input: one sentence, a non-zero exit, nothing stored -----------------------------------


def _one_sentence(result: Result) -> str:
    """The error line of a failed command: one sentence, no traceback, nothing else said."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(("error: ", "Error: ")) and last.endswith("."), result.output
    assert last.count(". ") == 0, last
    return last


def _no_runs() -> None:
    runs = CliRunner().invoke(cli.main, ["runs", "--json"])
    assert runs.exit_code == 0, runs.output
    assert runs.output.strip() == "[]"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--max-points", "0"], "--max-points"),
        (["--per-file", "0"], "--per-file"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--prompt-budget", "15"], "--prompt-budget"),
        (["--accept-threshold", "2"], "--accept-threshold 2 is outside es_rapidfuzz's range 0..1"),
        (["--accept-metric", "exact_match", "--accept-threshold", "-0.5"], "exact_match's range"),
        (["--accept-metric", "length_pred", "--accept-threshold", "-1"], "length_pred's range"),
        (["--triton-url", "not a url"], "must look like grpc://host:port"),
        (["--triton-url", "grpc://triton"], "must look like grpc://host:port"),
    ],
)
def test_an_out_of_range_option_is_one_sentence_and_no_run(
    data_dir: Path, tmp_path: Path, arguments: list[str], named: str
) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("def f(x):\n    return x + 1\n")
    result = CliRunner().invoke(cli.main, ["audit", str(tmp_path / "repo"), *arguments])
    assert named in _one_sentence(result)
    _no_runs()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["runs", "--limit", "0"], "--limit"),
        (["api", "--port", "70000"], "--port"),
        (["schedule", "add", "https://git.example.com/r.git", "--at", "25:00"], "25:00"),
        (["model-repo", "render", "out", "--tokenizer-dir", "/t", "--engine-dir", "/e",
          "--max-batch-size", "0"], "max batch size"),
        (["model-repo", "render", "out", "--tokenizer-dir", "/t", "--engine-dir", "/e",
          "--kv-cache-fraction", "1.5"], "fraction"),
    ],
)  # fmt: skip
def test_other_commands_options_are_checked_in_one_sentence(
    data_dir: Path, arguments: list[str], named: str
) -> None:
    assert named in _one_sentence(CliRunner().invoke(cli.main, arguments))


def test_option_defaults_and_bounds_are_the_models() -> None:
    """Every option of a run takes its default from AuditOptions or AcceptanceRule (the numbers
    their lower bounds too): none is repeated by hand."""
    from aixaudit.audit import AuditOptions
    from aixaudit.scoring import AcceptanceRule

    params = {p.name: p for p in cli.runs.audit_command.params}
    shared = [name for name in AuditOptions.model_fields if name in params]
    assert len(shared) >= 7  # profile has no default of its own: it depends on the server
    for name in shared:
        field = AuditOptions.model_fields[name]
        if name == "context":
            assert params[name].default == field.default.value
        elif name == "roles":
            assert params[name].default == ",".join(field.default)
        elif name != "profile":
            assert params[name].default == field.default, name
            assert params[name].type.min == field.metadata[0].ge  # type: ignore[attr-defined]
    rule = AcceptanceRule()
    assert (params["accept_metric"].default, params["accept_threshold"].default) == (
        rule.metric,
        rule.threshold,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AIXAUDIT_MAX_IN_FLIGHT", "0"),
        ("AIXAUDIT_CHUNK_SIZE", "0"),
        ("AIXAUDIT_REQUEST_TIMEOUT_S", "0"),
        ("AIXAUDIT_MAX_RETRIES", "-1"),
        ("AIXAUDIT_RETRY_BACKOFF_S", "soon"),
        ("AIXAUDIT_TRITON_PROTOCOL", "udp"),
        ("AIXAUDIT_DATABASE_URL", "not a url"),
        ("AIXAUDIT_DATABASE_URL", "postgresql://postgres@127.0.0.1:port/x"),
        ("AIXAUDIT_API_TOKENS", "admin:s3cret-token"),
    ],
)
def test_an_invalid_setting_is_one_sentence_naming_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    message = _one_sentence(CliRunner().invoke(cli.main, ["runs"]))
    assert message.startswith(f"error: Invalid setting {name}")
    if name.endswith(("_URL", "_TOKENS")):  # they may hold a secret: never repeated
        assert value not in message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (lambda: f"postgresql://postgres@127.0.0.1:{_free_port()}/test", "Connection refused"),
        (lambda: "postgresql://postgres@127.0.0.1:5432/aixaudit_no_such_db", "does not exist"),
    ],
)
def test_an_unusable_database_is_one_sentence(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, url: object, reason: str
) -> None:
    monkeypatch.setenv("AIXAUDIT_DATABASE_URL", url())  # type: ignore[operator]
    get_settings.cache_clear()
    message = _one_sentence(CliRunner().invoke(cli.main, ["runs"]))
    assert message.startswith("error: The database cannot be used: ") and reason in message


def test_an_unreachable_triton_url_fails_the_planned_run_with_the_reason(
    data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("def f(x):\n    total = x + 1\n    return total\n")
    url = f"grpc://127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(cli.main, ["audit", str(tmp_path / "repo"), "--triton-url", url])
    assert "cannot be reached" in _one_sentence(result)
    [run] = json.loads(CliRunner().invoke(cli.main, ["runs", "--json"]).output)
    assert run["status"] == "failed"
    assert run["error"].startswith(f"Triton at {url} (model 'ensemble') cannot be reached: ")


def test_an_empty_repository_fails_without_starting_a_server(
    data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no code here\n")
    result = CliRunner().invoke(cli.main, ["audit", str(tmp_path / "empty")])
    assert result.exit_code == EXIT_RUN_NOT_DONE, result.output
    assert "nothing to audit" in result.output
    assert not (data_dir / "logs").exists()  # tritonserver writes its log there when started
    runs = CliRunner().invoke(cli.main, ["runs", "--json"])
    [run] = json.loads(runs.output)
    assert (run["status"], run["error"]) == (
        "failed",
        "nothing to audit: no file has a completion point",
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (RunStatus.DONE, 0),
        (RunStatus.PARTIAL, EXIT_RUN_NOT_DONE),
        (RunStatus.FAILED, EXIT_RUN_NOT_DONE),
    ],
)
def test_status_exits_non_zero_for_a_failed_or_partial_run(
    data_dir: Path, status: RunStatus, code: int
) -> None:
    assert CliRunner().invoke(cli.main, ["db", "upgrade"]).exit_code == 0
    sessions = session_factory(make_engine(get_settings().db_url))
    with sessions.begin() as session:
        repository = queries.get_or_create_repository(session, origin="/r", name="r")
        run = queries.create_run(
            session, repository_id=repository.id, ref=None, commit=None, profile="l2r",
            config={}, acceptance_rule={},
        )  # fmt: skip
        queries.set_run_status(session, run_id=run.id, status=status)
        run_id = run.id
    result = CliRunner().invoke(cli.main, ["status", str(run_id)])
    assert result.exit_code == code, result.output
    assert f"run {run_id} {status.value}" in result.output


# The lines around the tables that are prose (one line each, however long).
PROSE = re.compile(
    r"^(run \d|under each|\w+ v\d+: |accepted when|answered by|prompts truncated|requests sent"
    r"|B-A: |where the runs|  (reference|A|B) )"
)


def test_the_tables_fit_80_columns(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_api import seed

    url = f"sqlite:///{data_dir / 'aixaudit.db'}"
    upgrade(url)
    runs = seed(url).runs
    monkeypatch.setenv("AIXAUDIT_DATABASE_URL", url)
    monkeypatch.setattr(shared.console, "width", 80)
    compare = ["compare", str(runs["a"]), str(runs["b"])]
    for arguments in (["runs"], ["report", str(runs["third"])], compare):
        result = CliRunner().invoke(cli.main, arguments)
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if not PROSE.match(line)]
        assert len(lines) > 8
        assert [line for line in lines if len(line) > 80] == [], arguments
    listed = CliRunner().invoke(cli.main, ["runs"]).output.splitlines()
    assert listed[0].split() == [
        "run", "repository", "ref", "status", "profile", "points", "accept", "regressed", "created",
    ]  # fmt: skip
