"""An ablation plans the points once: one run per context strategy, the same points, linked as
a group (on SQLite and PostgreSQL); and `--context` names strategies clearly or fails."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import ablation, audit, sources
from aixaudit.cli.shared import context_strategies
from aixaudit.context import ContextStrategy
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import reports
from aixaudit.store.db import session_factory
from aixaudit.store.tables import File, Point, Run

STRATEGIES = tuple(ContextStrategy)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def test_one_plan_many_runs_the_same_points_grouped(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("def f(x):\n    if x:\n        return g(x)\n    return 0\n")
    (repo / "b.js").write_text("export function g(y) {\n  return y.map((z) => z + 1);\n}\n")
    checkout = sources.checkout(str(repo), ref=None, cache_dir=tmp_path / "cache")
    run_ids = ablation.plan_group(
        sessions,
        checkout=checkout,
        options=audit.AuditOptions(),
        rule=AcceptanceRule(),
        strategies=STRATEGIES,
        model="m",
    )
    assert len(run_ids) == 4
    with sessions() as session:
        runs = [session.get(Run, run_id) for run_id in run_ids]
        assert [run.config["context"] for run in runs] == [s.value for s in STRATEGIES]
        assert {run.group_id for run in runs} == {run_ids[0]}

        def points(run_id: int) -> list[tuple[object, ...]]:
            stmt = (
                select(File.path, File.sha256, Point.key, Point.original, Point.start_byte)
                .join(File, Point.file_id == File.id)
                .where(Point.run_id == run_id)
                .order_by(Point.key)
            )
            return [tuple(row) for row in session.execute(stmt)]

        planned = points(run_ids[0])
        assert planned and all(points(run_id) == planned for run_id in run_ids[1:])
        assert {run.points_total for run in runs} == {len(planned)}
        listed = {run.id: run for run in reports.list_runs(session)}
        assert [(listed[i].group_id, listed[i].context) for i in run_ids] == [
            (run_ids[0], s.value) for s in STRATEGIES
        ]


def test_context_option_parses_lists_and_refuses_unknown_or_repeated_names() -> None:
    assert context_strategies("none, both") == (ContextStrategy.NONE, ContextStrategy.BOTH)
    with pytest.raises(click.BadParameter, match="choose from none, imports, similar, both"):
        context_strategies("imports,nearby")
    with pytest.raises(click.BadParameter, match="twice"):
        context_strategies("similar,similar")
