"""The dashboard a lead reads, driven in a real headless Chromium over the DevTools protocol on
the API's seeded database: the compare view (run pickers, the table of paired differences with
their intervals, the refusal, the disagreements as diffs) and the drill-down from a table cell to
its suggestions, each a diff of the original against the suggestion with its scores. Every
screenshot is kept under tests/output/ (git-ignored) to look at."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from devtools import Browser, Page
from devtools import chromium as devtools_chromium
from paths import TESTS
from test_api import (
    COMPARED_POINTS,
    FAILED_IN_A,
    TOKENS,
    Server,
    api_process,
    compared,
    seed,
)

from aixaudit.cli.shared import percent

pytestmark = pytest.mark.services  # a real uvicorn server, Redis, Chromium

OUTPUT = TESTS / "output"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API with open reads on a seeded SQLite database (the API itself is tested on both)."""
    home = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{home / 'aixaudit.db'}"
    seeded = seed(url)
    prefix = f"aixaudit-test-{uuid.uuid4().hex[:12]}:"
    settings = TOKENS | {"AIXAUDIT_API_OPEN_READS": "true"}
    with api_process(db_url=url, home=home, key_prefix=prefix, settings=settings) as api:
        yield Server(url=api, db_url=url, seeded=seeded, key_prefix=prefix)


@pytest.fixture
def browser(chromium_binary: str, tmp_path: Path) -> Iterator[Browser]:
    with devtools_chromium(chromium_binary, tmp_path / "profile") as browser:
        yield browser


def rendered(page: Page, hash_: str) -> None:
    """Until the page has rendered the view at `hash_`."""
    page.wait_for(f"document.body.dataset.rendered === {hash_!r}")


def texts(page: Page, selector: str) -> list[str]:
    return list(
        page.evaluate(f"[...document.querySelectorAll({selector!r})].map(n => n.textContent)")
    )


def test_the_compare_view_pairs_two_runs(dashboard: Server, browser: Browser) -> None:
    runs = dashboard.seeded.runs
    found = dashboard.ok("/api/compare", a=runs["a"], b=runs["b"])
    page = browser.open(f"{dashboard.url}/#/compare")
    rendered(page, "#/compare")
    # Pick the two runs as a person would, and submit.
    page.evaluate(
        f"document.getElementById('run-a').value = '{runs['a']}';"
        f"document.getElementById('run-b').value = '{runs['b']}';"
        "document.querySelector('#compare-form button').click()"
    )
    rendered(page, f"#/compare?a={runs['a']}&b={runs['b']}")
    summary = page.evaluate("document.getElementById('compare-summary').textContent")
    assert "38 points paired; A left out 2, B left out 2." in summary
    assert "Accepted by A only 0, by B only 9 (McNemar exact p = 0.0039)." in summary

    rows = {
        key: texts(page, f"#comparison tr[data-group='{key}'] td")
        for key in ("all:all", "language:python", "kind:statement")
    }
    acceptance = found["groups"][0]["metrics"][0]
    low, high = acceptance["interval"]["low"], acceptance["interval"]["high"]
    # A accepts 20 of its 38 paired points (53%), B 29 (76%): +23.7 points.
    assert rows["all:all"][:4] == [
        "all", "38", "53% → 76%", f"+23.7 [+{low * 100:.1f}, +{high * 100:.1f}]",
    ]  # fmt: skip
    assert rows["all:all"][-2:] == ["0 / 9", "0.004"]
    assert page.evaluate("document.querySelectorAll('#comparison td.better').length") >= 3
    # The forest plot: a mark per group and metric, the overall ones above zero beyond doubt.
    verdicts = page.evaluate(
        "[...document.querySelectorAll('svg.forest g.difference')].map(g => g.classList[1])"
    )
    assert len(verdicts) == 2 * len(found["groups"])
    assert verdicts[0] == "better"
    for key, group in (("language:python", "python"), ("kind:statement", "statement")):
        [expected] = [g for g in found["groups"] if g["key"] == group]
        assert rows[key][:2] == [key.replace(":", " "), str(expected["pairs"])]

    # The disagreements, each as two diffs against the original: A's and B's own last lines.
    assert len(texts(page, "article.disagreement")) == len(found["disagreements"]) == 10
    first = found["disagreements"][0]
    heading = texts(page, "article.disagreement h4")[0]
    assert heading == f"{first['path']}:{first['start_line']}-{first['end_line']} A 0.30 · B 0.80"
    diffs = page.evaluate(
        "[...document.querySelector('article.disagreement').querySelectorAll('figure pre')]"
        ".map(pre => [...pre.children].map(line => [line.className, line.textContent]))"
    )
    original = first["reference"].splitlines()
    for diff, side in zip(diffs, ("A", "B"), strict=True):
        assert diff[0] == ["same", f"  {original[0]}\n"]
        assert [line for kind, line in diff if kind == "del"] == [f"- {x}\n" for x in original[1:]]
        assert [line for kind, line in diff if kind == "add"] == [
            f"+     return None  # model {side}\n"
        ]
    page.screenshot(OUTPUT / "compare.png")

    # Exported as CSV: the table the API serves, one row per group and metric.
    page.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(OUTPUT))
    target = OUTPUT / f"compare-{runs['a']}-{runs['b']}.csv"
    target.unlink(missing_ok=True)
    page.evaluate("document.querySelector('button.export[data-format=csv]').click()")
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    exported = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(exported) == sum(len(g["metrics"]) for g in found["groups"])
    assert float(exported[0]["interval.low"]) == pytest.approx(low)

    # Under 30 pairs: the API's one-sentence refusal, in place of the table.
    refused = f"#/compare?a={runs['first']}&b={runs['second']}"
    page.evaluate(f"location.hash = {refused!r}")
    rendered(page, refused)
    refusal = page.evaluate("document.getElementById('compare-refusal').textContent")
    assert refusal == (
        f"Runs {runs['first']} and {runs['second']} share 4 answered points, fewer than the 30 "
        "a comparison needs."
    )
    assert page.evaluate("document.getElementById('comparison')") is None
    page.screenshot(OUTPUT / "compare-refused.png")


def test_a_cell_drills_down_to_its_suggestions_as_diffs(
    dashboard: Server, browser: Browser
) -> None:
    runs = dashboard.seeded.runs
    run_id = runs["a"]
    page = browser.open(f"{dashboard.url}/#/runs/{run_id}")
    rendered(page, f"#/runs/{run_id}")
    # Charts by language, span kind and file role, each bar with its interval's whisker.
    report = dashboard.ok(f"/api/runs/{run_id}")
    bars = page.evaluate("document.querySelectorAll('svg.bars rect.bar').length")
    breakdowns = report["by_language"] + report["by_kind"] + report["by_role"]
    assert bars == 2 * len(breakdowns)
    whiskers = sum(
        name in row["intervals"]
        for row in breakdowns
        for name in ("acceptance_rate", "es_rapidfuzz")
    )
    assert page.evaluate("document.querySelectorAll('svg.bars g.whisker').length") == whiskers
    page.screenshot(OUTPUT / "run-report.png")

    # A click on the python row's group opens its suggestions.
    page.evaluate(
        "document.querySelector('[data-breakdown=\"by language\"] tr[data-key=python] a').click()"
    )
    rendered(page, f"#/runs/{run_id}/suggestions?language=python")
    numbers = {point_id: n for n, (point_id, _, _) in enumerate(dashboard.seeded.points["a"])}
    python = [p for p, language, _ in dashboard.seeded.points["a"] if language == "python"]
    count = page.evaluate("document.getElementById('suggestions-count').textContent")
    assert count.startswith(f"{len(python)} points; 1–{len(python)} shown")
    shown = page.evaluate(
        "[...document.querySelectorAll('article.suggestion')].map(a => Number(a.dataset.pointId))"
    )
    assert sorted(shown) == sorted(python)
    items = dashboard.ok(f"/api/runs/{run_id}/suggestions", language="python")["items"]
    for item in items:
        result = compared("a", numbers[item["point_id"]])
        article = f"article.suggestion[data-point-id='{item['point_id']}']"
        [tag] = texts(page, f"{article} .tag")
        assert tag == f"python · {item['kind']} · source"
        [badge] = texts(page, f"{article} .badge")
        if result is None:
            assert badge == "failed"
            continue
        accepted, em, es, *_ = result
        assert badge == ("accepted" if accepted else "rejected")
        [scores] = texts(page, f"{article} p.scores")
        assert scores == f"ES {es:.2f} · EM {em:.2f}"
        lines = texts(page, f"{article} pre span")
        original = item["original"].splitlines()
        if em:  # the suggestion is the original: nothing marked
            assert lines == [f"  {line}\n" for line in original]
        else:
            assert lines[0] == f"  {original[0]}\n"
            assert "+     return None  # model A\n" in lines
    page.screenshot(OUTPUT / "suggestions.png")

    # From the run's accepted count, only accepted suggestions.
    page.evaluate(f"location.hash = '#/runs/{run_id}'")
    rendered(page, f"#/runs/{run_id}")
    page.evaluate(
        'document.querySelector(\'[data-breakdown="totals"] a[href$="accepted=true"]\').click()'
    )
    rendered(page, f"#/runs/{run_id}/suggestions?accepted=true")
    accepted = sum(
        1
        for n in range(COMPARED_POINTS)
        if n != FAILED_IN_A and compared("a", n)[0]  # type: ignore[index]
    )
    count = page.evaluate("document.getElementById('suggestions-count').textContent")
    assert count.startswith(f"{accepted} points; 1–20 shown")
    assert set(texts(page, "article.suggestion .badge")) == {"accepted"}

    # The table by file role: the fixture's audited files are all source code (its generated
    # api_pb2.py is skipped by default), and the role's cell opens all of the run's points.
    page.evaluate(f"location.hash = '#/runs/{run_id}'")
    rendered(page, f"#/runs/{run_id}")
    [source] = report["by_role"]
    cells = texts(page, '[data-breakdown="by file role"] tr[data-key=source] td')
    assert cells[:5] == ["source", *map(str, (source["points"], source["suggestions"],
                                              source["errors"], source["accepted"]))]  # fmt: skip
    assert source["points"] == report["totals"]["points"]
    assert texts(page, "svg.bars[data-chart='by file role'] text.label") == ["source"]
    page.evaluate(
        "document.querySelector('[data-breakdown=\"by file role\"] tr[data-key=source] a').click()"
    )
    rendered(page, f"#/runs/{run_id}/suggestions?role=source")
    count = page.evaluate("document.getElementById('suggestions-count').textContent")
    assert count.startswith(f"{source['points']} points; 1–20 shown")


def test_the_trend_marks_regressions_with_intervals(dashboard: Server, browser: Browser) -> None:
    third = dashboard.seeded.runs["third"]
    page = browser.open(f"{dashboard.url}/#/runs/{third}")
    rendered(page, f"#/runs/{third}")
    markers = texts(page, "svg.trend path.regression-marker title")
    assert markers == [f"regression: run #{third} fell significantly"]
    # Three finished runs, two series, each point with its interval's whisker.
    assert page.evaluate("document.querySelectorAll('svg.trend line.whisker').length") == 6
    page.screenshot(OUTPUT / "trend-regression.png")


# Halves that f"{rate:.0%}" rounds to even and Math.round rounds up, thirds, and the ends.
RATES = [0.0, 0.005, 0.015, 0.025, 0.045, 0.125, 0.145, 0.285, 0.575, 1 / 3, 2 / 3, 0.995, 1.0]


def test_the_dashboard_rounds_percentages_as_the_cli(dashboard: Server, browser: Browser) -> None:
    page = browser.open(f"{dashboard.url}/")
    shown = page.evaluate(f"{RATES}.map(percent)")
    assert shown == [percent(rate) for rate in RATES]
    assert shown[3] == "3%"  # the 2.5% that once showed as 2% in the CLI
