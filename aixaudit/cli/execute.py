"""`aixaudit execute RUN_ID`: run the repository's own tests against a run's stored
suggestions (no model is asked), here or on the execution workers; and the options that
`audit --execute` shares."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import jobs
from aixaudit.config import Settings, get_settings
from aixaudit.execution.verify import ExecutionOptions, execute_run, run_checkout
from aixaudit.store import executions
from aixaudit.store.executions import ExecutionReport, Verified

from .shared import console, errors, estimate, percent, report_table, sessions_for

_DEFAULTS = ExecutionOptions()


def execution_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The bounds of an execution, as options of a command."""
    for option in reversed(
        [
            click.option(
                "--execute-max-points",
                type=click.IntRange(1, 1_000_000),
                default=_DEFAULTS.max_points,
                show_default=True,
                help="Points executed at most (a deterministic sample).",
            ),
            click.option(
                "--execute-max-test-s",
                type=click.FloatRange(min=1),
                default=_DEFAULTS.max_test_s,
                show_default=True,
                help="Total wall seconds of test runs, after which no point starts.",
            ),
            click.option(
                "--execute-seed",
                type=int,
                default=_DEFAULTS.seed,
                show_default=True,
                help="Seed of the sample of points.",
            ),
            click.option(
                "--execute-wall-s",
                type=click.FloatRange(min=1),
                default=_DEFAULTS.wall_s,
                show_default=True,
                help="Wall-time limit of one test run.",
            ),
        ]
    ):
        command = option(command)
    return command


def options_from(choices: dict[str, Any]) -> ExecutionOptions:
    return ExecutionOptions(
        max_points=choices.pop("execute_max_points"),
        max_test_s=choices.pop("execute_max_test_s"),
        seed=choices.pop("execute_seed"),
        wall_s=choices.pop("execute_wall_s"),
    )


def execute_here(
    settings: Settings, sessions: sessionmaker[Session], run_id: int, options: ExecutionOptions
) -> ExecutionReport:
    source = run_checkout(sessions, run_id=run_id, cache_dir=settings.repos_dir, allowed_roots=None)
    errors.print(f"run {run_id}: executing suggestions on {source.root}")
    return execute_run(
        sessions, run_id=run_id, source=source, cache_dir=settings.data_dir / "execution",
        options=options,
    )  # fmt: skip


@click.command("execute")
@click.argument("run_id", type=int)
@execution_options
@click.option("--distributed", is_flag=True, help="Enqueue for the execution workers.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def execute_command(run_id: int, distributed: bool, as_json: bool, **choices: Any) -> None:
    """Run the repository's own tests with each sampled suggestion of run RUN_ID in place
    (sandboxed) and store whether they pass; replaces an earlier execution of the run."""
    settings = get_settings()
    sessions = sessions_for(settings)
    options = options_from(choices)
    if distributed:
        jobs.execute(run_id=run_id, options=options.model_dump(mode="json"))
        errors.print(f"run {run_id}: execution enqueued")
        return
    show_execution(execute_here(settings, sessions, run_id, options), as_json)


def request_execution(
    sessions: sessionmaker[Session], run_id: int, options: ExecutionOptions
) -> None:
    """For a run the workers answer: they execute it once its completions are in."""
    with sessions.begin() as session:
        executions.request_execution(session, run_id=run_id, options=options.model_dump())


def show_execution(report: ExecutionReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    counts = ", ".join(f"{status} {n}" for status, n in report.by_status.items())
    per_point = "-" if report.cpu_s_per_point is None else f"{report.cpu_s_per_point:.1f}"
    console.print(
        f"[bold]run {report.run_id}[/bold] executed with {report.runner or 'no runner'}: "
        f"{report.status}{f' ({report.reason})' if report.reason else ''}\n"
        f"sampled {report.points_sampled}: {counts}; CPU {report.cpu_s:.1f} s, "
        f"{per_point} s per executed point",
        highlight=False,
    )
    table = report_table("n", "accepted", "verified", "pass")
    for heading, rows in (("", [report.totals]), ("by language", report.by_language),
                          ("by span kind", report.by_kind)):  # fmt: skip
        if heading:
            table.add_row(f"[dim]{heading}[/dim]")
        for row in rows:
            table.add_row(row.key, str(row.executed), *_rates(row))
    console.print(table)


def _rates(row: Verified) -> list[str]:
    def rate(count: int, interval: Any) -> str:
        return estimate(count / row.executed if row.executed else None, interval, percent)

    return [
        rate(row.accepted, row.accepted_rate),
        rate(row.verified, row.verified_rate),
        rate(row.passed, row.passed_rate),
    ]
