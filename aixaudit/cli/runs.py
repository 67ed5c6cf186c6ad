"""Commands on runs: audit (here or on the workers), report, runs, status, resume, cancel."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import click
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, history, sources
from aixaudit.config import get_settings
from aixaudit.store import control, queries, reports
from aixaudit.store.tables import RunStatus

from .shared import (
    audit_options,
    audit_request,
    console,
    errors,
    percent,
    progress_bar,
    regression_mark,
    sessions_for,
    show_report,
)


@click.command("audit")
@click.argument("location")
@click.option("--ref", help="Branch, tag or commit to audit when LOCATION is a git URL.")
@audit_options
@click.option("--triton-url", help="grpc://host:port or http://host:port (AIXAUDIT_TRITON_URL).")
@click.option(
    "--distributed",
    is_flag=True,
    help="Plan here, let the Celery workers answer; prints the run id (see `status`).",
)
@click.option("--wait", is_flag=True, help="With --distributed: follow the run, then report.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_command(
    location: str,
    ref: str | None,
    triton_url: str | None,
    distributed: bool,
    wait: bool,
    as_json: bool,
    **choices: Any,
) -> None:
    """Audit the repository at LOCATION (a path or a git URL) and store the results.

    Without a configured Triton URL, starts the bundled tritonserver with the CPU model
    for the duration of the run. With --distributed, the workers' Triton server answers.
    """
    if distributed:
        if triton_url:
            raise click.UsageError("With --distributed, the workers' AIXAUDIT_TRITON_URL applies.")
        _audit_distributed(location, ref, choices, wait=wait, as_json=as_json)
        return
    if wait:
        raise click.UsageError("--wait goes with --distributed.")
    from aixaudit.serving import model_access  # the launcher, only for commands that need it

    settings = get_settings()
    if triton_url:
        settings = settings.model_copy(update={"triton_url": triton_url})
    options, rule = audit_request(settings, choices)
    sessions = sessions_for(settings)
    checkout = sources.checkout(location, ref=ref, cache_dir=settings.repos_dir)
    run_id = history.plan_tracked_run(
        sessions, checkout=checkout, options=options, rule=rule, model=settings.model
    )
    with sessions() as session:
        points = queries.get_run(session, run_id=run_id).points_total
    errors.print(f"run {run_id}: {points} points to complete in {checkout.origin}")
    started = time.monotonic()
    with model_access(settings) as access, progress_bar("completing") as progress:
        status = audit.execute_run(
            sessions,
            run_id=run_id,
            completer=access.completer(settings),
            counter=access.counter,
            progress=progress,
        )
    errors.print(f"run {run_id} {status.value} in {time.monotonic() - started:.1f} s")
    if status in (RunStatus.DONE, RunStatus.PARTIAL):
        threshold = settings.regression_threshold
        history.compare_with_previous(sessions, run_id=run_id, threshold=threshold)
    show_report(sessions, run_id, as_json)


@click.command("report")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report_command(run_id: int, as_json: bool) -> None:
    """Show a run's totals and its breakdowns by language and span kind."""
    show_report(sessions_for(get_settings()), run_id, as_json)


@click.command("runs")
@click.option("--limit", default=20, show_default=True, help="How many of the latest runs.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs_command(limit: int, as_json: bool) -> None:
    """List the latest runs."""
    with sessions_for(get_settings())() as session:
        runs = reports.list_runs(session, limit=limit)
    if as_json:
        click.echo(json.dumps([asdict(run) for run in runs], indent=2))
        return
    table = Table(
        "run", "repository", "ref", "status", "profile", "points", "reused", "accepted",
        "regression", "created",
    )  # fmt: skip
    for run in runs:
        table.add_row(
            str(run.id),
            run.name,
            run.ref or "",
            run.status,
            run.profile,
            f"{run.suggestions}/{run.points_total}",
            str(run.reused),
            percent(run.acceptance_rate),
            regression_mark(run.regression),
            run.created_at[:19],
        )
    console.print(table)


# -- distributed audits (Celery workers; see workers/) ---------------------------------------

POLL_S = 0.5  # how often `status` and `--wait` read a run's progress


def _audit_distributed(
    location: str, ref: str | None, choices: dict[str, Any], *, wait: bool, as_json: bool
) -> None:
    """Plan here (this machine has the checkout; file texts go to the database, so any worker
    can answer) and enqueue the points for the workers."""
    from workers.tasks import dispatch_run

    settings = get_settings()
    sessions = sessions_for(settings)
    options, rule = audit_request(settings, choices)
    checkout = sources.checkout(location, ref=ref, cache_dir=settings.repos_dir)
    run_id = history.plan_tracked_run(
        sessions, checkout=checkout, options=options, rule=rule, model=settings.model
    )
    dispatch_run.apply_async((run_id,), ignore_result=True)
    with sessions() as session:
        points = queries.get_run(session, run_id=run_id).points_total
    errors.print(f"run {run_id}: {points} points for the workers in {checkout.origin}")
    if not wait:
        click.echo(run_id)
        return
    _follow(sessions, run_id)
    show_report(sessions, run_id, as_json)


def _follow(sessions: sessionmaker[Session], run_id: int) -> control.RunProgress:
    """A live progress bar of a run's stored results until the run is final."""
    with progress_bar(f"run {run_id}") as update:
        while True:
            with sessions() as session:
                progress = control.run_progress(session, run_id=run_id)
            update(progress.answered, progress.points_total)
            if progress.finished:
                return progress
            time.sleep(POLL_S)


@click.command("status")
@click.argument("run_id", type=int)
def status_command(run_id: int) -> None:
    """Follow a run with a live progress bar until it is final."""
    progress = _follow(sessions_for(get_settings()), run_id)
    console.print(
        f"run {run_id} [bold]{progress.status}[/bold]: {progress.answered}/{progress.points_total}"
        f" points answered, {progress.failed} failed, {progress.reused} reused"
        + (f" ({progress.error})" if progress.error else "")
    )


@click.command("resume")
@click.argument("run_id", type=int)
@click.option("--wait", is_flag=True, help="Follow the run until it is final.")
def resume_command(run_id: int, wait: bool) -> None:
    """Enqueue again the points of a run that have no result (after a lost worker, a cancel
    or failed requests); safe to repeat, results are stored once per point."""
    from workers.tasks import resume

    sessions = sessions_for(get_settings())
    status, pending = resume(sessions, run_id=run_id)
    if status.is_final:
        errors.print(f"run {run_id} is {status.value}: no point is missing a result")
        return
    errors.print(f"run {run_id}: {pending} points without a result enqueued again")
    if wait:
        _follow(sessions, run_id)


@click.command("cancel")
@click.argument("run_id", type=int)
def cancel_command(run_id: int) -> None:
    """Cancel a pending or running run: workers skip its remaining chunks. Safe to repeat;
    `resume` continues it."""
    with sessions_for(get_settings()).begin() as session:
        status = control.cancel_run(session, run_id=run_id)
    if status is RunStatus.CANCELLED:
        console.print(f"run {run_id} cancelled")
    else:
        console.print(f"run {run_id} is {status.value} already; nothing to cancel")
