"""Bad model output, from a real tritonserver serving tests/model_repos/misbehaving: every
point is stored, what is no completion as the point's error, the rest scored; the run finishes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from aixaudit import audit, sources
from aixaudit.inference import Endpoint, TritonCompleter
from aixaudit.local_triton import LocalTriton
from aixaudit.scoring import AcceptanceRule
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import File, Point, RunStatus, Score, Suggestion
from aixaudit.tokens import ModelTokenizer

MISBEHAVING = Path(__file__).parent / "model_repos" / "misbehaving"
NOT_A_TEXT = "not BYTES [1, 1]."
WAYS = ("good", "empty", "huge", "invalid_utf8", "echo", "wrong_shape", "wrong_type")


@pytest.fixture(scope="module")
def misbehaving_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    server = LocalTriton(log_dir=tmp_path_factory.mktemp("misbehaving-logs"))
    with server.start(MISBEHAVING):
        yield server


@pytest.mark.triton
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_bad_answers_are_stored_as_failures_and_the_run_finishes(
    misbehaving_server: LocalTriton, cpu_model_dir: Path, tmp_path: Path, protocol: str
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for way in WAYS:  # the comment, in every prompt of the file, says how to answer
        (repo / f"{way}.py").write_text(
            f"# misbehave: {way}\n\ndef step(value):\n    total = value + 1\n    return total\n"
        )
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    sessions = session_factory(make_engine(url))
    checkout = sources.checkout(str(repo), ref=None, cache_dir=tmp_path / "repos")
    options = audit.AuditOptions(profile="l2r", per_file=1, max_new_tokens=8)
    run_id = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
    address = misbehaving_server.grpc_url if protocol == "grpc" else misbehaving_server.http_url
    completer = TritonCompleter(
        Endpoint.parse(address, default_protocol=protocol), model="ensemble", max_in_flight=4
    )
    status = audit.execute_run(
        sessions, run_id=run_id, completer=completer, counter=ModelTokenizer(cpu_model_dir)
    )
    assert status is RunStatus.PARTIAL  # three answers were no completion
    with sessions() as session:
        rows = {
            Path(path).stem: row
            for path, row in session.execute(
                select(File.path, Suggestion)
                .join(Point, Suggestion.point_id == Point.id)
                .join(File, Point.file_id == File.id)
                .where(Suggestion.run_id == run_id)
            ).all()
        }
        exact = dict(
            session.execute(
                select(Suggestion.point_id, Score.value)
                .join(Score, Score.suggestion_id == Suggestion.id)
                .where(Suggestion.run_id == run_id, Score.metric_name == "exact_match")
            ).all()
        )
    assert sorted(rows) == sorted(WAYS)  # every point has its row: none lost, no crash
    for way in ("good", "empty", "huge", "echo"):  # completions, scored
        assert rows[way].error is None and rows[way].text is not None, way
        assert rows[way].point_id in exact, way
    assert rows["good"].raw_text == "value + 1"
    assert rows["empty"].raw_text == "" and exact[rows["empty"].point_id] == 0.0
    assert len(rows["huge"].raw_text or "") == 100_000
    assert (rows["echo"].raw_text or "").startswith("# misbehave: echo\n")
    for way in ("empty", "huge", "echo"):
        assert not rows[way].accepted, way
    assert (rows["invalid_utf8"].error or "").startswith("The answer is not UTF-8 (")
    assert (rows["wrong_shape"].error or "").endswith(f"BYTES [1, 1, 3], {NOT_A_TEXT}")
    assert (rows["wrong_type"].error or "").endswith(f"INT32 [1, 3], {NOT_A_TEXT}")
    for way in ("invalid_utf8", "wrong_shape", "wrong_type"):
        assert (rows[way].text, rows[way].attempts) == (None, 1), way  # not retried
        assert rows[way].point_id not in exact, way
