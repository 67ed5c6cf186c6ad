"""Reuse of unchanged files' results and the regression check, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, incremental, lifecycle, sources
from aixaudit.config import Settings
from aixaudit.context import ContextStrategy
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.store import lineage as stored
from aixaudit.store import queries
from aixaudit.store.db import session_factory
from aixaudit.store.tables import File, Point, Run, RunStatus, Score, Suggestion

OPTIONS = audit.AuditOptions(profile="l2r", per_file=2, max_points=10)
RULE = AcceptanceRule()
MODEL = "ensemble@grpc://triton:8001"

FUNCTIONS = """\
def add(a, b):
    total = a + b
    return total


def scale(values, factor):
    if factor == 0:
        return []
    return [value * factor for value in values]
"""


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text(FUNCTIONS)
    (root / "b.py").write_text(FUNCTIONS.replace("add", "plus").replace("scale", "times"))
    return root


def plan(sessions: sessionmaker[Session], repo: Path, **extra: object) -> int:
    checkout = sources.checkout(str(repo), ref=None, cache_dir=repo.parent / "cache")
    return incremental.plan_tracked_run(
        sessions, checkout=checkout, options=OPTIONS, rule=RULE, **{"model": MODEL, **extra}
    )


def answer(
    sessions: sessionmaker[Session],
    run_id: int,
    value: float | Callable[[str], float],
    *,
    skip: int | None = None,
) -> None:
    """Store a result with every metric at `value` (or value(point key)) for each pending
    point (but `skip`), accepted at 0.8, then finish the run."""
    with sessions.begin() as session:
        pending = [p for p in queries.pending_points(session, run_id=run_id) if p.id != skip]
        values = {
            p.id: value(f"{p.path}:{p.start_byte}-{p.end_byte}:{p.kind}")
            if callable(value)
            else value
            for p in pending
        }
        results = [
            {
                "point_id": point.id,
                "run_id": run_id,
                "raw_text": f"answer {point.id}",
                "text": f"answer {point.id}",
                "accepted": values[point.id] >= 0.8,
                "scores": dict.fromkeys(METRICS, values[point.id]),
            }
            for point in pending
        ]
        queries.add_results(session, results=results, metrics=METRICS)
    audit.finish_run(sessions, run_id=run_id)


def keys_reused(sessions: sessionmaker[Session], run_id: int) -> dict[str, bool]:
    with sessions() as session:
        rows = session.execute(
            select(Point.key, Suggestion.reused)
            .join(Suggestion, Suggestion.point_id == Point.id)
            .where(Point.run_id == run_id)
        )
        return dict(rows.all())


def test_fingerprint_changes_with_what_shapes_an_answer() -> None:
    base = incremental.fingerprint(options=OPTIONS, rule=RULE, model=MODEL)
    assert base == incremental.fingerprint(options=OPTIONS, rule=RULE, model=MODEL)
    others = {
        incremental.fingerprint(
            options=OPTIONS.model_copy(update={"seed": 1}), rule=RULE, model=MODEL
        ),
        incremental.fingerprint(options=OPTIONS, rule=AcceptanceRule(threshold=0.5), model=MODEL),
        incremental.fingerprint(options=OPTIONS, rule=RULE, model="ensemble@grpc://other:8001"),
    }
    assert base not in others and len(others) == 3


def test_unchanged_files_reuse_results_and_changed_files_get_fresh_points(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first = plan(sessions, repo)
    answer(sessions, first, 0.9)
    first_points = keys_reused(sessions, first)
    assert first_points and not any(first_points.values())

    second = plan(sessions, repo, reuse=True)
    with sessions() as session:
        assert queries.pending_points(session, run_id=second) == []  # nothing left to ask
        copied = session.execute(
            select(Suggestion.text, func.count(Score.metric_name))
            .join(Score, Score.suggestion_id == Suggestion.id)
            .where(Suggestion.run_id == second)
            .group_by(Suggestion.id, Suggestion.text)
        ).all()
    assert keys_reused(sessions, second) == dict.fromkeys(first_points, True)
    assert {count for _, count in copied} == {len(METRICS)}
    with sessions() as session:
        first_texts = set(
            session.scalars(select(Suggestion.text).where(Suggestion.run_id == first))
        )
    assert {text for text, _ in copied} == first_texts
    answer(sessions, second, 0.0)  # finishes it: no pending point

    (repo / "b.py").write_text(FUNCTIONS.replace("add", "sum_of"))  # same length, new content
    third = plan(sessions, repo, reuse=True)
    reused = keys_reused(sessions, third)
    with sessions() as session:
        pending = {p.path for p in queries.pending_points(session, run_id=third)}
    assert pending == {"b.py"}
    assert reused and all(key.startswith("a.py:") for key in reused)
    assert all(reused.values())


def test_no_reuse_across_fingerprints_or_from_failed_requests(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first = plan(sessions, repo)
    with sessions.begin() as session:
        [failed, *rest] = queries.pending_points(session, run_id=first)
        queries.add_results(
            session,
            results=[{"point_id": failed.id, "run_id": first, "error": "timed out"}],
            metrics=METRICS,
        )
    answer(sessions, first, 0.9, skip=failed.id)  # the others; the run is partial

    again = plan(sessions, repo, reuse=True)
    with sessions() as session:
        still = [p.id for p in queries.pending_points(session, run_id=again)]
        original = session.scalar(select(Point.key).where(Point.id == failed.id))
        assert len(still) == 1
        assert session.scalar(select(Point.key).where(Point.id == still[0])) == original
    assert len(keys_reused(sessions, again)) == len(rest)

    other_model = plan(sessions, repo, reuse=True, model="ensemble@grpc://new-engine:8001")
    unknown_model = plan(sessions, repo, reuse=True, model=None)
    assert keys_reused(sessions, other_model) == {}
    assert keys_reused(sessions, unknown_model) == {}
    with sessions() as session:
        assert session.get(Run, unknown_model).fingerprint is None


def test_comparison_flags_a_drop_beyond_the_threshold(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first = plan(sessions, repo)
    answer(sessions, first, 0.9)
    assert incremental.compare_with_previous(sessions, run_id=first, threshold=0.05) is None

    second = plan(sessions, repo)
    answer(sessions, second, 0.7)
    assert incremental.compare_with_previous(sessions, run_id=second, threshold=0.05) is True
    with sessions() as session:
        deltas = {d.metric: d for d in stored.run_deltas(session, run_id=second)}
        run = session.get(Run, second)
        assert (run.baseline_run_id, run.regression_threshold) == (first, 0.05)
    assert set(deltas) == set(incremental.HEADLINE)
    # accepted when es_rapidfuzz >= 0.8: all of the first run's points, none of the second's
    assert (deltas["acceptance_rate"].baseline, deltas["acceptance_rate"].value) == (1.0, 0.0)
    assert deltas["es_rapidfuzz"].delta == pytest.approx(-0.2)
    assert all(d.regressed for d in deltas.values())

    # A larger threshold, asked again: the deltas are replaced, not added.
    assert incremental.compare_with_previous(sessions, run_id=second, threshold=0.5) is True
    assert incremental.compare_with_previous(sessions, run_id=second, threshold=1.0) is False
    with sessions() as session:
        assert len(stored.run_deltas(session, run_id=second)) == len(incremental.HEADLINE)


def scores(seed: int, *, drop: float = 0.0) -> Callable[[str], float]:
    """A score per point key: a level the key fixes (0.3 to 1), less `drop`, plus noise of
    sd 0.05 that `seed` fixes."""

    def value_of(key: str) -> float:
        level = 0.3 + 0.7 * np.random.default_rng(list(key.encode())).random()
        jitter = np.random.default_rng([seed, *key.encode()]).normal(0, 0.05)
        return float(np.clip(level - drop + jitter, 0.0, 1.0))

    return value_of


def test_a_significant_paired_drop_is_a_regression_and_noise_is_not(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(12):
        (root / f"m{i:02}.py").write_text(FUNCTIONS.replace("add", f"add{i}"))
    runs = []
    for seed, drop in ((1, 0.0), (2, 0.0), (3, 0.15)):  # a baseline, noise, a planted drop
        runs.append(plan(sessions, root))
        answer(sessions, runs[-1], scores(seed, drop=drop))
    first, noisy, dropped = runs
    assert incremental.compare_with_previous(sessions, run_id=first, threshold=0.05) is None
    assert incremental.compare_with_previous(sessions, run_id=noisy, threshold=0.05) is False
    assert incremental.compare_with_previous(sessions, run_id=dropped, threshold=0.05) is True
    with sessions() as session:
        points = session.get(Run, dropped).points_total
        for run_id, baseline in ((noisy, first), (dropped, noisy)):
            assert session.get(Run, run_id).baseline_run_id == baseline
        calm = {d.metric: d for d in stored.run_deltas(session, run_id=noisy)}
        fell = {d.metric: d for d in stored.run_deltas(session, run_id=dropped)}
    assert set(calm) == set(fell) == set(incremental.HEADLINE)
    es, es_calm = fell["es_rapidfuzz"], calm["es_rapidfuzz"]
    assert es.pairs == points and es.delta_high < -0.05 and es.regressed
    assert es.delta_low <= es.delta <= es.delta_high and es.delta == pytest.approx(-0.15, abs=0.03)
    assert es_calm.delta_low <= 0.0 <= es_calm.delta_high and not es_calm.regressed
    assert not any(d.regressed for d in calm.values())
    # the same drop, judged against a larger threshold, is not beyond it
    assert incremental.compare_with_previous(sessions, run_id=dropped, threshold=0.25) is False


def test_runs_of_another_fingerprint_are_not_compared(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first = plan(sessions, repo)
    answer(sessions, first, 0.9)
    other_model = plan(sessions, repo, model="ensemble@grpc://new-engine:8001")
    answer(sessions, other_model, 0.1)
    assert incremental.compare_with_previous(sessions, run_id=other_model, threshold=0.05) is None
    unknown_model = plan(sessions, repo, model=None)
    answer(sessions, unknown_model, 0.1)
    assert incremental.compare_with_previous(sessions, run_id=unknown_model, threshold=0.05) is None
    with sessions() as session:
        assert session.get(Run, other_model).baseline_run_id is None
        assert stored.run_deltas(session, run_id=other_model) == []


def test_the_baseline_is_the_latest_finished_run_of_the_same_repository(
    sessions: sessionmaker[Session], repo: Path, tmp_path: Path
) -> None:
    first = plan(sessions, repo)
    answer(sessions, first, 0.9)
    unfinished = plan(sessions, repo)  # never answered: not a baseline
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.py").write_text(FUNCTIONS)
    other_repo = plan(sessions, elsewhere)
    answer(sessions, other_repo, 0.1)
    latest = plan(sessions, repo)
    answer(sessions, latest, 0.9)
    with sessions() as session:
        assert stored.previous_run(session, run_id=latest).id == first
        assert stored.previous_run(session, run_id=unfinished).id == first
        assert stored.previous_run(session, run_id=first) is None
        assert session.scalar(select(func.count(File.id)).where(File.run_id == latest)) == 2
    assert incremental.compare_with_previous(sessions, run_id=latest, threshold=0.05) is False


def test_points_keep_long_node_types(sessions: sessionmaker[Session], repo: Path) -> None:
    """A run of statements joins its node types; real repositories have runs longer than 64
    characters, which PostgreSQL refused before migration 0002."""
    run_id = plan(sessions, repo)
    node_type = "+".join(["expression_statement"] * 6)
    with sessions.begin() as session:
        file_id = session.scalar(select(File.id).where(File.run_id == run_id).limit(1))
        row = {
            "file_id": file_id, "key": "long", "kind": "statements", "node_type": node_type,
            "start_byte": 0, "end_byte": 1, "start_line": 1, "end_line": 1, "original": "x",
        }  # fmt: skip
        [point_id] = queries.add_points(session, run_id=run_id, points=[row]).values()
    with sessions() as session:
        assert session.get(Point, point_id).node_type == node_type


def test_the_fingerprint_sees_budgets_as_resolved() -> None:
    """A run with the profile's budgets spelled out is the same question as one left to them."""
    rule = AcceptanceRule()
    implicit = audit.AuditOptions(profile="l2r")
    explicit = implicit.with_budgets()
    assert explicit.max_new_tokens is not None and explicit != implicit
    same = incremental.fingerprint(options=implicit, rule=rule, model="m")
    assert same == incremental.fingerprint(options=explicit, rule=rule, model="m")
    smaller = implicit.model_copy(update={"max_new_tokens": 8})
    assert incremental.fingerprint(options=smaller, rule=rule, model="m") != same


def plan_group(sessions: sessionmaker[Session], repo: Path, **extra: Any) -> list[int]:
    checkout = sources.checkout(str(repo), ref=None, cache_dir=repo.parent / "cache")
    return lifecycle.plan(
        sessions, checkout=checkout, options=OPTIONS, rule=RULE, model=MODEL, strategies=GROUP,
        **extra,
    )  # fmt: skip


GROUP = (ContextStrategy.NONE, ContextStrategy.IMPORTS, ContextStrategy.BOTH)


def test_each_run_of_an_ablation_is_tracked_and_compared_with_its_own_strategy(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first = plan_group(sessions, repo)
    for run_id, level in zip(first, (0.9, 0.6, 0.3), strict=True):
        answer(sessions, run_id, level)
        assert lifecycle.finish(sessions, run_id=run_id, threshold=0.05) is RunStatus.DONE
    with sessions() as session:
        runs = [session.get(Run, run_id) for run_id in first]
        expected = [
            incremental.fingerprint(
                options=OPTIONS.model_copy(update={"context": strategy}), rule=RULE, model=MODEL
            )
            for strategy in GROUP
        ]
        assert [run.fingerprint for run in runs] == expected and len(set(expected)) == 3
        # Not compared with each other: the strategies differ, so do the fingerprints.
        assert [run.baseline_run_id for run in runs] == [None] * 3

    again = plan_group(sessions, repo, reuse=True)  # nothing changed: every result taken over
    for before, after in zip(first, again, strict=True):
        assert keys_reused(sessions, after) == dict.fromkeys(keys_reused(sessions, before), True)
        assert lifecycle.finish(sessions, run_id=after, threshold=0.05) is RunStatus.DONE
    with sessions() as session:
        for before, after in zip(first, again, strict=True):
            run = session.get(Run, after)
            assert (run.baseline_run_id, run.regression, run.group_id) == (before, False, again[0])
            deltas = stored.run_deltas(session, run_id=after)
            assert {d.metric for d in deltas} == set(incremental.HEADLINE)
            assert all(d.delta == 0.0 for d in deltas)


def test_a_group_planned_twice_under_one_key_is_planned_once(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    """A planning task delivered again plans no second group, nor a member twice."""
    ids = plan_group(sessions, repo, plan_key="task-1", distributed=True)
    assert plan_group(sessions, repo, plan_key="task-1", distributed=True) == ids
    with sessions() as session:
        runs = session.scalars(select(Run).order_by(Run.id)).all()
    assert [run.id for run in runs] == ids
    assert [run.plan_key for run in runs] == ["task-1", "task-1:imports", "task-1:both"]
    assert all(run.distributed and run.fingerprint for run in runs)


def test_a_run_answered_by_the_embedded_server_has_a_model_identity() -> None:
    """`aixaudit audit` without a server starts its own: its runs are fingerprinted (so reused
    and compared) like any other, under the CPU model's name."""
    embedded = Settings(_env_file=None, cpu_model="smollm2-135m")
    assert embedded.model == "ensemble@embedded:smollm2-135m"
    served = Settings(_env_file=None, triton_url="grpc://triton:8001")
    assert served.model == "ensemble@grpc://triton:8001"
    assert Settings(_env_file=None, model_identity="engine-7").model == "engine-7"
