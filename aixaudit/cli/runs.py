"""Commands on runs: audit (here or on the workers), report, runs, status, resume, cancel."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import jobs, lifecycle, sources
from aixaudit.config import Settings, get_settings
from aixaudit.execution.verify import ExecutionOptions
from aixaudit.store import context as stored_context
from aixaudit.store import control, queries, reports
from aixaudit.store.tables import RunStatus

from .execute import (
    execute_here,
    execution_options,
    options_from,
    request_execution,
    show_execution,
)
from .shared import (
    TITLES,
    audit_options,
    audit_request,
    console,
    errors,
    estimate,
    exit_for,
    figure,
    finishing,
    list_table,
    percent,
    progress_bar,
    regression_mark,
    report_table,
    sessions_for,
    show_report,
)

NOTHING_TO_AUDIT = "nothing to audit: no file has a completion point"


@click.command("audit")
@click.argument("location")
@click.option("--ref", help="Branch, tag or commit to audit when LOCATION is a git URL.")
@audit_options
@click.option("--triton-url", help="grpc://host:port or http://host:port (AIXAUDIT_TRITON_URL).")
@click.option(
    "--distributed",
    is_flag=True,
    help="Plan here, let the Celery workers answer; prints the run ids (see `status`).",
)
@click.option("--wait", is_flag=True, help="With --distributed: follow the runs, then report.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--execute", is_flag=True, help="Then run the repository's tests on the suggestions.")
@execution_options
def audit_command(
    location: str,
    ref: str | None,
    triton_url: str | None,
    distributed: bool,
    wait: bool,
    as_json: bool,
    execute: bool,
    **choices: Any,
) -> None:
    """Audit the repository at LOCATION (a path or a git URL) and store the results.

    Without a configured Triton URL, starts the bundled tritonserver with the CPU model
    for the duration of the run. With --distributed, the workers' Triton server answers.
    Exits 3 when the run ends failed or partial, 128 + N on signal N (the run is finished).
    """
    execution = options_from(choices) if execute else None
    if distributed:
        if triton_url:
            raise click.UsageError("With --distributed, the workers' AIXAUDIT_TRITON_URL applies.")
        _audit_distributed(location, ref, choices, wait=wait, as_json=as_json, execute=execution)
        return
    if wait:
        raise click.UsageError("--wait goes with --distributed.")
    # The launcher, only for commands that need it.
    from aixaudit.model_server import configured_endpoint

    settings = get_settings()
    if triton_url:
        settings = settings.model_copy(update={"triton_url": triton_url})
    configured_endpoint(settings)  # a bad URL fails here, before a run exists
    sessions = sessions_for(settings)
    checkout, run_ids = _plan(settings, sessions, location, ref, choices)
    with sessions() as session:
        points = queries.get_run(session, run_id=run_ids[0]).points_total
    if not points:  # no server is started for nothing
        for run_id in run_ids:
            status = lifecycle.finish(
                sessions, run_id=run_id, threshold=settings.regression_threshold,
                error=NOTHING_TO_AUDIT,
            )  # fmt: skip
            errors.print(f"run {run_id} {status.value}: {NOTHING_TO_AUDIT} in {checkout.origin}")
        exit_for(status)
    errors.print(f"{_named(run_ids)}: {points} points to complete in {checkout.origin}")
    statuses = _answer_here(settings, sessions, run_ids)
    _show(sessions, run_ids, as_json)
    if execution is not None:
        for run_id in run_ids:
            show_execution(execute_here(settings, sessions, run_id, execution), as_json)
    for status in statuses:
        exit_for(status)


def _plan(
    settings: Settings,
    sessions: sessionmaker[Session],
    location: str,
    ref: str | None,
    choices: dict[str, Any],
    *,
    distributed: bool = False,
) -> tuple[sources.Checkout, list[int]]:
    """Check out and plan here (this machine has the checkout; file texts go to the database,
    so any worker can answer): one run, or one per --context strategy on the same points."""
    options, rule = audit_request(settings, choices, ablation=True)
    checkout = sources.checkout(location, ref=ref, cache_dir=settings.repos_dir)
    run_ids = lifecycle.plan(
        sessions,
        checkout=checkout,
        options=options,
        rule=rule,
        model=settings.model,
        strategies=choices["context"],
        distributed=distributed,
    )
    return checkout, run_ids


def _named(run_ids: Sequence[int]) -> str:
    return f"run {run_ids[0]}" if len(run_ids) == 1 else f"runs {', '.join(map(str, run_ids))}"


def _show(sessions: sessionmaker[Session], run_ids: Sequence[int], as_json: bool) -> None:
    """The report of a run, or the runs of an ablation side by side."""
    if len(run_ids) == 1:
        show_report(sessions, run_ids[0], as_json)
    else:
        show_group(sessions, run_ids[0], as_json)


def _answer_here(
    settings: Settings, sessions: sessionmaker[Session], run_ids: Sequence[int]
) -> list[RunStatus]:
    """Answer the runs' pending points in this process, one run after the other behind one
    server (the configured one, or the embedded one started for the while). Each run is
    finished as a worker finishes it (`lifecycle.finish`: compared with its previous run), even
    when this fails or is interrupted."""
    from aixaudit.model_server import model_access  # the launcher, only for commands that need it

    statuses = []
    threshold = settings.regression_threshold
    with model_access(settings) as access:
        for run_id in run_ids:
            started = time.monotonic()
            with (
                finishing(sessions, run_id, threshold=threshold),
                progress_bar(f"run {run_id}") as progress,
            ):
                status = lifecycle.execute(
                    sessions,
                    run_id=run_id,
                    completer=access.completer(settings),
                    counter=access.counter,
                    threshold=threshold,
                    progress=progress,
                )
            errors.print(f"run {run_id} {status.value} in {time.monotonic() - started:.1f} s")
            statuses.append(status)
    return statuses


def show_group(sessions: sessionmaker[Session], group_id: int, as_json: bool) -> None:
    """The runs of an ablation side by side: per context strategy, acceptance, headline metrics
    and what a point cost (mean prompt tokens, mean latency in ms). `aixaudit compare` pairs
    them point by point."""
    rows: list[dict[str, Any]] = []
    with sessions() as session:
        for run_id, strategy, tokens in stored_context.group_runs(session, group_id=group_id):
            totals = reports.run_report(session, run_id=run_id).totals
            about = {"strategy": strategy, "run_id": run_id, "prompt_tokens": tokens}
            rows.append(about | asdict(totals))
    if as_json:
        click.echo(json.dumps({"group_id": group_id, "runs": rows}, indent=2))
        return
    shown = ("exact_match", "es_rapidfuzz", "identifier_f1")
    table = report_table(
        "run", "points", "accept", *(TITLES[name] for name in shown), "tokens", "ms"
    )
    for row in rows:
        table.add_row(
            row["strategy"],
            str(row["run_id"]),
            f"{row['suggestions']}/{row['points']}",
            percent(row["acceptance_rate"]),
            *(estimate(row["metrics"].get(name), None, figure) for name in shown),
            estimate(row["prompt_tokens"], None, figure),
            estimate(row["mean_latency_ms"], None, figure),
        )
    console.print(table)
    for row in rows[1:]:
        console.print(
            f"what {row['strategy']} adds, with paired intervals by language and span kind: "
            f"aixaudit compare {rows[0]['run_id']} {row['run_id']}",
            highlight=False,
        )


@click.command("report")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report_command(run_id: int, as_json: bool) -> None:
    """Show a run's totals and its breakdowns by language and span kind."""
    show_report(sessions_for(get_settings()), run_id, as_json)


@click.command("runs")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the latest runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs_command(limit: int, as_json: bool) -> None:
    """List the latest runs."""
    with sessions_for(get_settings())() as session:
        runs = reports.list_runs(session, limit=limit)
    if as_json:
        click.echo(json.dumps([asdict(run) for run in runs], indent=2))
        return
    # Fits 80 columns: context and group join the profile; --json has every field.
    table = list_table(
        "run", "repository", "ref", "status", "profile", "points", "accept", "regressed"
    )
    table.add_column("created", min_width=11, no_wrap=True)  # MM-DD HH:MM
    for run in runs:
        group = "" if run.group_id is None else f" g{run.group_id}"
        context = "" if run.context == "none" else f"+{run.context}"
        reused = f" ({run.reused} reused)" if run.reused else ""
        table.add_row(
            str(run.id),
            run.name,
            run.ref or "",
            run.status,
            f"{run.profile}{context}{group}",
            f"{run.suggestions}/{run.points_total}{reused}",
            percent(run.acceptance_rate),
            regression_mark(run.regression),
            run.created_at[5:16].replace("T", " "),
        )
    console.print(table)


# -- distributed audits (Celery workers; see workers/) ---------------------------------------

POLL_S = 0.5  # how often `status` and `--wait` read a run's progress


def _audit_distributed(
    location: str,
    ref: str | None,
    choices: dict[str, Any],
    *,
    wait: bool,
    as_json: bool,
    execute: ExecutionOptions | None,
) -> None:
    """Plan here and enqueue each run's points for the workers (they finish and compare each
    run as `audit` does here)."""
    settings = get_settings()
    sessions = sessions_for(settings)
    checkout, run_ids = _plan(settings, sessions, location, ref, choices, distributed=True)
    for run_id in run_ids:
        if execute is not None:
            request_execution(sessions, run_id, execute)
        jobs.dispatch(run_id=run_id)
    with sessions() as session:
        points = queries.get_run(session, run_id=run_ids[0]).points_total
    errors.print(f"{_named(run_ids)}: {points} points for the workers in {checkout.origin}")
    if not wait:
        for run_id in run_ids:
            click.echo(run_id)
        return
    statuses = [_follow(sessions, run_id).status for run_id in run_ids]
    _show(sessions, run_ids, as_json)
    for status in statuses:
        exit_for(status)


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
    """Follow a run with a live progress bar until it is final; exits 3 if it ended failed or
    partial."""
    progress = _follow(sessions_for(get_settings()), run_id)
    console.print(
        f"run {run_id} [bold]{progress.status}[/bold]: {progress.answered}/{progress.points_total}"
        f" points answered, {progress.failed} failed, {progress.reused} reused"
        + (f" ({progress.error})" if progress.error else "")
    )
    exit_for(progress.status)


@click.command("resume")
@click.argument("run_id", type=int)
@click.option("--wait", is_flag=True, help="Follow a distributed run until it is final.")
@click.option(
    "--local", is_flag=True, help="Answer here, even a distributed run's points: no worker needed."
)
def resume_command(run_id: int, wait: bool, local: bool) -> None:
    """Answer again the points of a run that have no result (after a lost worker or server, a
    cancel or failed requests): in this process for a run audited here (or with --local), on
    the workers for a distributed one. Safe to repeat, results are stored once per point.
    Exits 3 if the run ends failed or partial (answered here, or with --wait)."""
    settings = get_settings()
    sessions = sessions_for(settings)
    with sessions() as session:
        distributed = queries.get_run(session, run_id=run_id).distributed
    if local or not distributed:
        _resume_here(settings, sessions, run_id)
        return
    status, pending = jobs.resume(sessions, run_id=run_id)
    if status.is_final:
        _nothing_to_resume(run_id, status)
        return
    errors.print(f"run {run_id}: {pending} points without a result enqueued again")
    if wait:
        exit_for(_follow(sessions, run_id).status)


def _resume_here(settings: Settings, sessions: sessionmaker[Session], run_id: int) -> None:
    """Reopen the run and answer its missing points in this process, as `audit` does."""
    with sessions.begin() as session:
        pending = control.reopen_run(session, run_id=run_id)
        status = RunStatus(queries.get_run(session, run_id=run_id).status)
    if status.is_final:
        _nothing_to_resume(run_id, status)
        return
    errors.print(f"run {run_id}: {pending} points without a result, answered here")
    exit_for(_answer_here(settings, sessions, [run_id])[0])


def _nothing_to_resume(run_id: int, status: RunStatus) -> None:
    why = "the cancel wins" if status is RunStatus.CANCELLED else "no point is missing a result"
    errors.print(f"run {run_id} is {status.value}: {why}")


@click.command("cancel")
@click.argument("run_id", type=int)
def cancel_command(run_id: int) -> None:
    """Cancel a pending or running run: workers skip its remaining chunks. Safe to repeat;
    `resume` continues it."""
    status = jobs.cancel(sessions_for(get_settings()), run_id=run_id)
    if status is RunStatus.CANCELLED:
        console.print(f"run {run_id} cancelled")
    else:
        console.print(f"run {run_id} is {status.value} already; nothing to cancel")
