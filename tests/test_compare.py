"""`compare`: pairing two runs' points, paired differences with intervals, McNemar, the CLI;
and, through the real tritonserver, two runs of a fixture repository under two options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, cli, compare, incremental, sources
from aixaudit.audit import AuditOptions
from aixaudit.cli import shared
from aixaudit.config import get_settings
from aixaudit.errors import ComparisonError
from aixaudit.local_triton import LocalTriton
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.stats import Interval, mcnemar_exact
from aixaudit.store import lineage, queries
from aixaudit.store.db import make_engine, session_factory
from aixaudit.store.scored import scored_rows
from aixaudit.store.tables import File, Point

OPTIONS = audit.AuditOptions(profile="l2r", per_file=3, max_points=40)
RULE = AcceptanceRule()  # es_rapidfuzz >= 0.8 (and the file still parses)

MODULE = """\
def add_{i}(a, b):
    total = a + b
    return total


def scale_{i}(values, factor):
    if factor == 0:
        return []
    return [value * factor for value in values]


class Box{i}:
    def __init__(self, size):
        self.size = size * {i}
"""


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for i in range(14):
        (root / f"mod{i:02}.py").write_text(MODULE.format(i=i))
    (root / "web.js").write_text("function twice(x) {\n  const y = x * 2;\n  return y;\n}\n")
    return root


def plan(
    sessions: sessionmaker[Session], repo: Path, *, commit: str = "c0ffee", max_points: int = 40
) -> int:
    checkout = sources.Checkout(root=repo, origin=str(repo), commit=commit, ref="main")
    options = OPTIONS.model_copy(update={"max_points": max_points})
    return audit.plan_run(sessions, checkout=checkout, options=options, rule=RULE)


def answer(
    sessions: sessionmaker[Session],
    run_id: int,
    value_of: Callable[[str], float],
    *,
    fail: Callable[[str], bool] = lambda key: False,
) -> None:
    """Store, for each point, every metric at value_of(point key) (or a failed request where
    `fail`), accepted at 0.8 as the rule says; then finish the run."""
    with sessions.begin() as session:
        pending = queries.pending_points(session, run_id=run_id)
        keys = dict(
            session.execute(select(Point.id, Point.key).where(Point.run_id == run_id)).all()
        )
        results = []
        for point in pending:
            key = keys[point.id]
            if fail(key):
                results.append({"point_id": point.id, "run_id": run_id, "error": "timed out"})
                continue
            value = value_of(key)
            results.append(
                {
                    "point_id": point.id,
                    "run_id": run_id,
                    "raw_text": f"answer {value:.3f}\nsecond line",
                    "text": f"answer {value:.3f}\nsecond line",
                    "accepted": value >= 0.8,
                    "scores": dict.fromkeys(METRICS, value),
                }
            )
        queries.add_results(session, results=results, metrics=METRICS)
    audit.finish_run(sessions, run_id=run_id)


def noise(seed: int) -> Callable[[str], float]:
    """A fixed score per point key: the same key gets the same value for one seed."""
    return lambda key: float(np.random.default_rng([seed, *key.encode()]).random())


def by_metric(group: compare.GroupComparison) -> dict[str, compare.MetricComparison]:
    return {found.metric: found for found in group.metrics}


def test_a_run_against_an_identical_one_differs_by_exactly_zero(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first, second = plan(sessions, repo), plan(sessions, repo)
    answer(sessions, first, noise(1))
    answer(sessions, second, noise(1))
    with sessions() as session:
        result = compare.compare_runs(session, run_a=first, run_b=second)
        points = queries.get_run(session, run_id=first).points_total
    assert result.pairs == points >= compare.MIN_PAIRS
    assert (result.left_out_a, result.left_out_b) == (0, 0)
    for group in result.groups:
        assert (group.accepted_a_only, group.accepted_b_only, group.mcnemar_p) == (0, 0, 1.0)
        assert set(by_metric(group)) == {compare.ACCEPTANCE, *METRICS}
        for found in group.metrics:
            assert found.difference == 0.0 and found.a == found.b
            single_file = group.key == "javascript"  # web.js: no interval across files
            assert (
                found.interval is None
                if single_file
                else found.interval == Interval(low=0.0, high=0.0, n=found.n)
            )
    assert all(pair.score_a == pair.score_b for pair in result.disagreements)


def test_pairs_groups_and_a_planted_difference(sessions: sessionmaker[Session], repo: Path) -> None:
    first = plan(sessions, repo)
    second = plan(sessions, repo, max_points=36)  # the same seed: a subset of first's points
    with sessions() as session:
        keys = sorted(session.scalars(select(Point.key).where(Point.run_id == second)))
    failed = keys[0]
    before = noise(2)
    answer(sessions, first, before)
    answer(sessions, second, lambda key: max(0.0, before(key) - 0.3), fail=lambda k: k == failed)

    with sessions() as session:
        result = compare.compare_runs(session, run_a=first, run_b=second, top=3)
        languages = dict(
            session.execute(
                select(Point.key, File.language)
                .join(File, Point.file_id == File.id)
                .where(Point.run_id == first)
            ).all()
        )
    assert result.pairs == 35  # second's 36 points but the failed one
    assert (result.left_out_a, result.left_out_b) == (len(languages) - 35, 1)

    [overall, *groups] = result.groups
    assert (overall.grouping, overall.key, overall.pairs) == ("all", "all", 35)
    paired = [key for key in keys if key != failed]
    es = by_metric(overall)["es_rapidfuzz"]
    a = np.array([before(key) for key in paired])
    b = np.maximum(0.0, a - 0.3)
    assert (es.a, es.b, es.difference) == pytest.approx((a.mean(), b.mean(), (b - a).mean()))
    assert es.interval is not None and es.interval.high < 0 and es.n == es.interval.n == 35
    only_a = int(np.sum((a >= 0.8) & ~(b >= 0.8)))
    assert (overall.accepted_a_only, overall.accepted_b_only) == (only_a, 0)
    assert overall.mcnemar_p == mcnemar_exact(only_a, 0)
    for grouping in compare.GROUPINGS:
        found = [group for group in groups if group.grouping == grouping]
        assert sum(group.pairs for group in found) == 35
    assert {g.key for g in groups if g.grouping == "language"} == {languages[key] for key in paired}

    gaps = [pair.score_a - pair.score_b for pair in result.disagreements]
    assert len(gaps) == 3 and gaps == sorted(gaps, reverse=True)
    assert max(gaps) == pytest.approx(max(np.abs(b - a)))
    [top, *_] = result.disagreements
    assert top.text_a == f"answer {top.score_a:.3f}\nsecond line" and top.reference
    assert top.path.endswith((".py", ".js")) and top.start_line <= top.end_line


def test_the_comparison_kept_at_finish_is_the_one_computed_from_the_rows(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first, second = plan(sessions, repo), plan(sessions, repo, max_points=36)
    with sessions.begin() as session:  # the same options: second's baseline is first
        for run_id in (first, second):
            queries.get_run(session, run_id=run_id).fingerprint = "same options"
    before = noise(4)
    answer(sessions, first, before)
    answer(
        sessions,
        second,
        lambda key: max(0.0, before(key) - 0.2),
        fail=lambda k: k.startswith("web"),
    )
    incremental.compare_with_previous(sessions, run_id=second, threshold=0.05)

    def from_rows(session: Session, top: int) -> compare.Comparison:
        a, b = (queries.get_run(session, run_id=run_id) for run_id in (first, second))
        paired = compare.pair(scored_rows(session, run_id=a.id), scored_rows(session, run_id=b.id))
        return compare.compared(session, first=a, second=b, paired=paired, top=top)

    with sessions() as session:
        assert lineage.stored_paired(session, run_a=first, run_b=second) is not None
        for top in (0, 3, compare.MAX_TOP):
            kept = compare.compare_runs(session, run_a=first, run_b=second, top=top)
            assert kept == from_rows(session, top)
        [delta] = [
            d for d in lineage.run_deltas(session, run_id=second) if d.metric == "es_rapidfuzz"
        ]
        overall = by_metric(kept.groups[0])["es_rapidfuzz"]
        assert (delta.delta, delta.pairs) == (overall.difference, overall.n)
    with sessions.begin() as session:  # finished again (a resume): the kept one is stale
        run = queries.get_run(session, run_id=second)
        run.finished_at = run.finished_at + timedelta(seconds=1)  # type: ignore[operator]
    with sessions() as session:
        assert lineage.stored_paired(session, run_a=first, run_b=second) is None
        assert compare.compare_runs(session, run_a=first, run_b=second, top=3) == from_rows(
            session, 3
        )


def test_other_commits_and_too_few_pairs_are_refused_in_one_sentence(
    sessions: sessionmaker[Session], repo: Path
) -> None:
    first = plan(sessions, repo)
    other_commit = plan(sessions, repo, commit="decaf")
    few = plan(sessions, repo, max_points=20)
    for run_id in (first, other_commit, few):
        answer(sessions, run_id, noise(3))
    with sessions() as session, pytest.raises(ComparisonError) as commits:
        compare.compare_runs(session, run_a=first, run_b=other_commit)
    assert "different commits (c0ffee and decaf)" in str(commits.value)
    with sessions() as session, pytest.raises(ComparisonError) as too_few:
        compare.compare_runs(session, run_a=first, run_b=few)
    assert str(too_few.value) == (
        f"Runs {first} and {few} share 20 answered points, fewer than the 30 a comparison needs."
    )


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The in-process CLI on the test's database, rendering as wide as it likes."""
    for name in list(os.environ):
        if name.startswith("AIXAUDIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIXAUDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIXAUDIT_DATABASE_URL", db_url)
    monkeypatch.setattr(shared.console, "width", 200)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def table_lines(output: str, first: str, last: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i, line in enumerate(lines) if line.startswith(last))
    return lines[start + 1 : end]


def test_the_cli_shows_intervals_in_80_columns(
    sessions: sessionmaker[Session], repo: Path, cli_env: None
) -> None:
    first, second = plan(sessions, repo), plan(sessions, repo)
    answer(sessions, first, noise(4))
    answer(sessions, second, lambda key: noise(4)(key) * 0.9)
    runner = CliRunner()

    report = runner.invoke(cli.main, ["report", str(first)])
    assert report.exit_code == 0, report.output
    lines = table_lines(report.output, f"run {first}", "under each number")
    assert lines and max(len(line) for line in lines) <= 80
    assert "…" not in report.output
    data = json.loads(runner.invoke(cli.main, ["report", str(first), "--json"]).output)
    totals = data["totals"]
    rate = totals["intervals"]["acceptance_rate"]
    assert rate["n"] == totals["suggestions"] and rate["low"] <= totals["acceptance_rate"]
    es = totals["intervals"]["es_rapidfuzz"]
    assert es["low"] <= totals["metrics"]["es_rapidfuzz"] <= es["high"]
    assert data["run"]["acceptance_interval"] == rate
    assert all("acceptance_rate" in row["intervals"] for row in data["by_language"])

    shown = runner.invoke(cli.main, ["compare", str(first), str(second), "--top", "2"])
    assert shown.exit_code == 0, shown.output
    lines = table_lines(shown.output, f"run {second} (B)", "B-A: mean")
    assert lines and max(len(line) for line in lines) <= 80
    assert "by language" in shown.output and "by kind" in shown.output
    assert max(len(line) for line in shown.output.split("disagree most")[1].splitlines()) <= 80
    data = json.loads(
        runner.invoke(cli.main, ["compare", str(first), str(second), "--json"]).output
    )
    assert data["pairs"] == data["groups"][0]["pairs"] and len(data["disagreements"]) == 5

    refused = runner.invoke(cli.main, ["compare", str(first), "9999"])
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1


# -- through the real tritonserver ----------------------------------------------------------

FIXTURE = Path(__file__).parent / "fixtures" / "polyglot"
AIXAUDIT = Path(sys.executable).with_name("aixaudit")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIXAUDIT), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.triton
def test_compare_two_real_runs_of_a_fixture_repository(
    tmp_path: Path, cpu_model_dir: Path, triton_server: LocalTriton
) -> None:
    repo = tmp_path / "polyglot"
    shutil.copytree(FIXTURE, repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")} | {
        "AIXAUDIT_DATA_DIR": str(tmp_path / "data"),
        "AIXAUDIT_CPU_MODEL_DIR": str(cpu_model_dir),
        "AIXAUDIT_TRITON_URL": f"grpc://{triton_server.grpc_url}",
    }

    def audit_run(tokens: int) -> dict:
        done = run_cli(
            "audit", str(repo), "--profile", "l2r", "--per-file", "4", "--max-points", "32",
            "--prompt-budget", "256", "--max-new-tokens", str(tokens), "--json", env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    short, long = audit_run(4), audit_run(8)
    answered = {r["run"]["id"]: r["totals"]["suggestions"] for r in (short, long)}

    def compared(a: dict, b: dict) -> dict:
        done = run_cli("compare", str(a["run"]["id"]), str(b["run"]["id"]), "--json", env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    options = compared(short, long)
    pairs = min(answered[short["run"]["id"]], answered[long["run"]["id"]])
    assert options["pairs"] == pairs >= compare.MIN_PAIRS
    assert options["left_out_a"] == short["totals"]["points"] - pairs
    assert options["left_out_b"] == long["totals"]["points"] - pairs
    assert sum(g["pairs"] for g in options["groups"] if g["grouping"] == "language") == pairs
    lengths = {m["metric"]: m for m in options["groups"][0]["metrics"]}["length_pred"]
    assert lengths["difference"] > 0  # twice the tokens: longer suggestions

    assert long["run"]["regression"] is None  # other options: not compared with `short`

    # An identical run: the same checkout, options and model, every result taken over from
    # `long` (its files are unchanged), compared with it by the command and the regression check.
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'data' / 'aixaudit.db'}"))
    with sessions() as session:
        stored = queries.get_run(session, run_id=long["run"]["id"])
        options, rule = AuditOptions.model_validate(stored.config), stored.acceptance_rule
        model = stored.model
    checkout = sources.checkout(str(repo), ref=None, cache_dir=tmp_path / "cache")
    identical = incremental.plan_tracked_run(
        sessions,
        checkout=checkout,
        options=options,
        rule=AcceptanceRule.from_dict(rule),
        model=model,
        reuse=True,
    )
    assert audit.finish_run(sessions, run_id=identical).value == "done"
    assert incremental.compare_with_previous(sessions, run_id=identical, threshold=0.05) is False
    same = compared(long, {"run": {"id": identical}})
    assert same["pairs"] == answered[long["run"]["id"]]
    for found in same["groups"][0]["metrics"]:
        assert found["difference"] == 0.0
        assert found["interval"]["low"] <= 0.0 <= found["interval"]["high"]
