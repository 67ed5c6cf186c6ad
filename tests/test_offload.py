from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aixaudit import audit, sources
from aixaudit.ensemble import ENSEMBLE_NAME
from aixaudit.inference import Endpoint, TritonCompleter
from aixaudit.local_triton import LocalTriton
from aixaudit.offload import Offload
from aixaudit.scoring import AcceptanceRule
from aixaudit.store.db import make_engine, session_factory, upgrade
from aixaudit.store.tables import RunStatus, Score, Suggestion
from aixaudit.tokens import ModelTokenizer

POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"


def _gather(processes: int, pairs: list[tuple[int, int]], keep: int) -> list[list[int]]:
    """Submit operator.mul for each pair, collecting after each submit; the batches seen."""

    async def run() -> list[list[int]]:
        seen = []
        with Offload[int](processes) as offload:
            for pair in pairs:
                offload.submit(operator.mul, *pair)
                seen.append(await offload.results(keep=keep))
                assert len(offload._running) <= keep  # never more outstanding than asked
            seen.append(await offload.results(keep=0))
        return seen

    return asyncio.run(run())


def test_without_processes_each_call_runs_at_once() -> None:
    assert _gather(0, [(2, 3), (4, 5)], keep=0) == [[6], [20], []]


def test_worker_processes_return_every_result_and_bound_the_backlog() -> None:
    pairs = [(n, n + 1) for n in range(12)]
    seen = _gather(2, pairs, keep=2)
    assert sorted(value for batch in seen for value in batch) == [a * b for a, b in pairs]


def test_an_error_in_a_worker_reaches_the_caller() -> None:
    async def divide_by_zero() -> None:
        with Offload[float](1) as offload:
            offload.submit(operator.truediv, 1, 0)
            await offload.results(keep=0)

    with pytest.raises(ZeroDivisionError):
        asyncio.run(divide_by_zero())


def _stored(sessions: Any, run_id: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(point, text, accepted) of each suggestion, and (point, metric, value) of each score."""
    with sessions() as session:
        suggestions = session.execute(
            select(Suggestion.point_id, Suggestion.text, Suggestion.accepted)
            .where(Suggestion.run_id == run_id)
            .order_by(Suggestion.point_id)
        ).all()
        scores = session.execute(
            select(Suggestion.point_id, Score.metric_name, Score.value)
            .join(Score, Score.suggestion_id == Suggestion.id)
            .where(Suggestion.run_id == run_id)
            .order_by(Suggestion.point_id, Score.metric_name)
        ).all()
    return [tuple(row) for row in suggestions], [tuple(row) for row in scores]


@pytest.mark.triton
def test_scoring_in_processes_stores_what_scoring_inline_stores(
    fixed_cost_server: LocalTriton,
    cpu_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit, "OFFLOAD_MIN_POINTS", 1)  # the fixture has few points
    checkout = sources.checkout(str(POLYGLOT), ref=None, cache_dir=tmp_path / "repos")
    options = audit.AuditOptions(max_points=8, max_new_tokens=16)
    counter = ModelTokenizer(cpu_model_dir)
    endpoint = Endpoint.parse(fixed_cost_server.grpc_url)
    stored = []
    for processes in (0, 2):
        url = f"sqlite:///{tmp_path / f'audit-{processes}.db'}"
        upgrade(url)
        sessions = session_factory(make_engine(url))
        run_id = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
        completer = TritonCompleter(endpoint, model=ENSEMBLE_NAME, max_in_flight=4)
        status = audit.execute_run(
            sessions, run_id=run_id, completer=completer, counter=counter,
            scoring_processes=processes,
        )  # fmt: skip
        assert status is RunStatus.DONE
        stored.append(_stored(sessions, run_id))
    (suggestions, scores), offloaded = stored
    assert len(suggestions) == 8 and len(scores) >= 8 * 5
    assert offloaded == (suggestions, scores)
