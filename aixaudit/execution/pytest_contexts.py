"""A pytest plug-in that aixaudit copies into the sandboxed checkout (never imported by
aixaudit itself): it names coverage.py's dynamic context after the running test's node id, so
the coverage map answers with ids pytest takes back, and writes each test's outcome as a JSON
line, which junit XML cannot key by node id."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import coverage
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    current = coverage.Coverage.current()
    if current is not None:
        current.switch_context(item.nodeid)
    try:
        return (yield)
    finally:
        if current is not None:
            current.switch_context("")


def pytest_runtest_logreport(report: pytest.TestReport | pytest.CollectReport) -> None:
    line = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": getattr(report, "duration", 0.0),
        "failure": report.longreprtext if report.failed else None,
    }
    with open(os.environ["AIXAUDIT_RESULTS"], "a", encoding="utf-8") as results:
        results.write(json.dumps(line) + "\n")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:  # a module that no longer imports: its tests never run
        pytest_runtest_logreport(report)
