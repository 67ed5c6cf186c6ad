"""The `aixaudit` command line: each command composes core functions and renders the result."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from . import audit, history, sources
from .config import Settings, get_settings
from .errors import AixauditError
from .model_repo import SCHEDULER_POLICIES, render_trtllm
from .prompts import PROFILES
from .scoring import METRICS, AcceptanceRule
from .store import control, db, queries, reports, schedules
from .store.tables import RunStatus, utcnow

# The metrics shown in the report table (all of them are in --json), by column title.
HEADLINE = {
    "exact_match": "EM",
    "es_fuzz": "ES",
    "identifier_f1": "id F1",
    "parses_after_insert": "parses",
    "length_ratio": "len",
}

console = Console(soft_wrap=True)  # messages stay on one line; tables fit the width
errors = Console(stderr=True, soft_wrap=True)


def _sessions(settings: Settings) -> sessionmaker[Session]:
    """Migrate the database to the current schema, then open it."""
    db.upgrade(settings.db_url)
    return db.session_factory(db.make_engine(settings.db_url))


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class AixauditGroup(click.Group):
    """Shows an AixauditError as one line and exit status 1, not as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AixauditError as error:
            errors.print(f"[red]error:[/red] {error}", highlight=False)
            raise SystemExit(1) from None


@click.group(cls=AixauditGroup)
@click.version_option(package_name="aixaudit")
def main() -> None:
    """Audit a code-completion model served by Triton, repository by repository."""


_AUDIT_OPTIONS = (
    click.option(
        "--profile",
        type=click.Choice(sorted(PROFILES)),
        help="Prompt format. Default: l2r on the embedded CPU model, aixcoder on a configured "
        "server.",
    ),
    click.option(
        "--seed", default=0, show_default=True, help="Sampling seed: same seed, same points."
    ),
    click.option("--per-file", default=3, show_default=True, help="Points per file at most."),
    click.option("--max-points", default=40, show_default=True, help="Points per run at most."),
    click.option(
        "--max-new-tokens", default=32, show_default=True, help="Tokens the model may add."
    ),
    click.option("--prompt-budget", default=768, show_default=True, help="Prompt tokens at most."),
    click.option(
        "--accept-metric",
        default="es_fuzz",
        show_default=True,
        type=click.Choice(sorted(METRICS)),
        help="Metric that decides acceptance (an exact match always counts as accepted).",
    ),
    click.option(
        "--accept-threshold", default=0.8, show_default=True, help="Acceptance threshold."
    ),
    click.option(
        "--accept-without-parse",
        is_flag=True,
        help="Accept even when the file no longer parses with the suggestion in it.",
    ),
)


def _audit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a run, shared by `audit` and `schedule add`."""
    for option in reversed(_AUDIT_OPTIONS):
        command = option(command)
    return command


def _audit_request(
    settings: Settings, choices: dict[str, Any]
) -> tuple[audit.AuditOptions, AcceptanceRule]:
    """AuditOptions and AcceptanceRule from the values of `_audit_options`."""
    options = audit.AuditOptions(
        profile=choices["profile"]
        or audit.default_profile(configured_server=bool(settings.triton_url)),
        seed=choices["seed"],
        per_file=choices["per_file"],
        max_points=choices["max_points"],
        max_new_tokens=choices["max_new_tokens"],
        prompt_budget=choices["prompt_budget"],
    )
    rule = AcceptanceRule(
        metric=choices["accept_metric"],
        threshold=choices["accept_threshold"],
        require_parse=not choices["accept_without_parse"],
    )
    return options, rule


@main.command("audit")
@click.argument("location")
@click.option("--ref", help="Branch, tag or commit to audit when LOCATION is a git URL.")
@_audit_options
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
    from .serving import model_access  # pulls in the launcher only for commands that need it

    settings = get_settings()
    if triton_url:
        settings = settings.model_copy(update={"triton_url": triton_url})
    options, rule = _audit_request(settings, choices)
    sessions = _sessions(settings)
    checkout = sources.checkout(location, ref=ref, cache_dir=settings.repos_dir)
    run_id = audit.plan_run(sessions, checkout=checkout, options=options, rule=rule)
    with sessions() as session:
        points = queries.get_run(session, run_id=run_id).points_total
    errors.print(f"run {run_id}: {points} points to complete in {checkout.origin}")
    started = time.monotonic()
    with model_access(settings) as access, _progress_bar("completing") as progress:
        status = audit.execute_run(
            sessions,
            run_id=run_id,
            completer=access.completer(settings),
            counter=access.counter,
            progress=progress,
        )
    errors.print(f"run {run_id} {status.value} in {time.monotonic() - started:.1f} s")
    _show_report(sessions, run_id, as_json)


@main.command("report")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report_command(run_id: int, as_json: bool) -> None:
    """Show a run's totals and its breakdowns by language and span kind."""
    _show_report(_sessions(get_settings()), run_id, as_json)


@main.command("runs")
@click.option("--limit", default=20, show_default=True, help="How many of the latest runs.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs_command(limit: int, as_json: bool) -> None:
    """List the latest runs."""
    with _sessions(get_settings())() as session:
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
            _percent(run.acceptance_rate),
            _regression(run.regression),
            run.created_at[:19],
        )
    console.print(table)


# -- distributed audits (Celery workers; see workers/) ---------------------------------------

POLL_S = 0.5  # how often `status` and `--wait` read a run's progress


def _worker_sessions() -> tuple[Settings, sessionmaker[Session]]:
    settings = get_settings()
    return settings, _sessions(settings)


def _audit_distributed(
    location: str, ref: str | None, choices: dict[str, Any], *, wait: bool, as_json: bool
) -> None:
    """Plan here (this machine has the checkout; file texts go to the database, so any worker
    can answer) and enqueue the points for the workers."""
    from workers.tasks import dispatch_run

    settings, sessions = _worker_sessions()
    options, rule = _audit_request(settings, choices)
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
    _show_report(sessions, run_id, as_json)


def _follow(sessions: sessionmaker[Session], run_id: int) -> control.RunProgress:
    """A live progress bar of a run's stored results until the run is final."""
    with _progress_bar(f"run {run_id}") as update:
        while True:
            with sessions() as session:
                progress = control.run_progress(session, run_id=run_id)
            update(progress.answered, progress.points_total)
            if progress.finished:
                return progress
            time.sleep(POLL_S)


@main.command("status")
@click.argument("run_id", type=int)
def status_command(run_id: int) -> None:
    """Follow a run with a live progress bar until it is final."""
    progress = _follow(_sessions(get_settings()), run_id)
    console.print(
        f"run {run_id} [bold]{progress.status}[/bold]: {progress.answered}/{progress.points_total}"
        f" points answered, {progress.failed} failed, {progress.reused} reused"
        + (f" ({progress.error})" if progress.error else "")
    )


@main.command("resume")
@click.argument("run_id", type=int)
@click.option("--wait", is_flag=True, help="Follow the run until it is final.")
def resume_command(run_id: int, wait: bool) -> None:
    """Enqueue again the points of a run that have no result (after a lost worker, a cancel
    or failed requests); safe to repeat, results are stored once per point."""
    from workers.tasks import resume

    _, sessions = _worker_sessions()
    status, pending = resume(sessions, run_id=run_id)
    if status.is_final:
        errors.print(f"run {run_id} is {status.value}: no point is missing a result")
        return
    errors.print(f"run {run_id}: {pending} points without a result enqueued again")
    if wait:
        _follow(sessions, run_id)


@main.command("cancel")
@click.argument("run_id", type=int)
def cancel_command(run_id: int) -> None:
    """Cancel a pending or running run: workers skip its remaining chunks. Safe to repeat;
    `resume` continues it."""
    with _sessions(get_settings()).begin() as session:
        status = control.cancel_run(session, run_id=run_id)
    if status is RunStatus.CANCELLED:
        console.print(f"run {run_id} cancelled")
    else:
        console.print(f"run {run_id} is {status.value} already; nothing to cancel")


@main.group("schedule")
def schedule_group() -> None:
    """Nightly incremental audits, started by `celery -A workers beat`."""


@schedule_group.command("add")
@click.argument("location")
@click.option("--ref", help="Branch, tag or commit to audit (default: the default branch).")
@click.option("--at", "at", default="02:00", show_default=True, help="Time of day, HH:MM UTC.")
@_audit_options
def schedule_add_command(location: str, ref: str | None, at: str, **choices: Any) -> None:
    """Audit LOCATION (a git URL, or a directory the workers can read) every night at --at.

    Each nightly run reuses the results of files unchanged since the previous run with the
    same options and model, and is compared with the previous run of the repository.
    """
    settings = get_settings()
    options, rule = _audit_request(settings, choices)
    origin = location if sources.is_git_url(location) else str(Path(location).resolve())
    with _sessions(settings).begin() as session:
        schedule = schedules.add_schedule(
            session,
            origin=origin,
            ref=ref,
            at=at,
            options=options.model_dump(mode="json"),
            acceptance_rule=rule.to_dict(),
            now=utcnow(),
        )
        console.print(f"schedule {schedule.id}: {origin} every night at {schedule.at} UTC")


@schedule_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def schedule_list_command(as_json: bool) -> None:
    """List the nightly audits."""
    with _sessions(get_settings())() as session:
        rows = [
            {
                "id": s.id,
                "origin": s.origin,
                "ref": s.ref,
                "at": s.at,
                "options": s.options,
                "acceptance_rule": s.acceptance_rule,
                "last_started_on": s.last_started_on.isoformat() if s.last_started_on else None,
            }
            for s in schedules.list_schedules(session)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "repository", "ref", "at (UTC)", "profile", "points", "last started")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["origin"],
            row["ref"] or "",
            row["at"],
            row["options"]["profile"],
            str(row["options"]["max_points"]),
            row["last_started_on"] or "never",
        )
    console.print(table)


@schedule_group.command("remove")
@click.argument("schedule_id", type=int)
def schedule_remove_command(schedule_id: int) -> None:
    """Stop auditing a repository nightly (its runs are kept)."""
    with _sessions(get_settings()).begin() as session:
        schedules.remove_schedule(session, schedule_id=schedule_id)
    console.print(f"schedule {schedule_id} removed")


@schedule_group.command("run")
@click.argument("schedule_id", type=int)
def schedule_run_command(schedule_id: int) -> None:
    """Start a schedule's incremental audit now, on the workers."""
    from workers.tasks import start_schedule

    _, sessions = _worker_sessions()
    with sessions() as session:
        task_id = start_schedule(session, schedule_id=schedule_id)
    console.print(f"schedule {schedule_id}: audit enqueued (task {task_id})")


@main.command("serve")
def serve_command() -> None:
    """Serve the CPU model with the bundled tritonserver on loopback until interrupted."""
    from .server import serve_cpu_model

    server = serve_cpu_model(get_settings())
    try:
        console.print(f"serving: grpc://{server.grpc_url}  http://{server.http_url}")
        console.print(f"use it:  export AIXAUDIT_TRITON_URL=grpc://{server.grpc_url}")
        while server.running:
            time.sleep(1)
        raise AixauditError(f"tritonserver exited; its log is {server.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
def api_command(host: str, port: int) -> None:
    """Serve the HTTP API (/api, described at /openapi.json) and the dashboard (/) until Ctrl-C.

    Migrates the database first, like the other commands.
    """
    import uvicorn

    db.upgrade(get_settings().db_url)
    uvicorn.run("api.main:app", host=host, port=port)


@main.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
def db_upgrade_command() -> None:
    """Migrate the database to the current schema (creates it if needed)."""
    settings = get_settings()
    db.upgrade(settings.db_url)
    shown = make_url(settings.db_url).render_as_string(hide_password=True)
    console.print(f"database at the current schema: {shown}")


@main.group("model-repo")
def model_repo_group() -> None:
    """Triton model repositories."""


@model_repo_group.command("render")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--tokenizer-dir",
    required=True,
    help="Tokenizer folder (with tokenizer.json), as an absolute path on the server.",
)
@click.option(
    "--engine-dir",
    required=True,
    help="TensorRT-LLM engine folder built by trtllm-build, as an absolute path on the server.",
)
@click.option(
    "--max-batch-size",
    default=64,
    show_default=True,
    help="max_batch_size of all four models; keep it equal to the engine's --max_batch_size.",
)
@click.option(
    "--decoupled/--no-decoupled",
    default=False,
    show_default=True,
    help="Streaming mode; aixaudit sends plain requests, so leave it off.",
)
@click.option(
    "--max-queue-delay-us",
    default=1000,
    show_default=True,
    help="Microseconds a request may wait so that requests arriving together share a batch.",
)
@click.option(
    "--kv-cache-reuse/--no-kv-cache-reuse",
    default=True,
    show_default=True,
    help="Reuse KV-cache blocks of shared prompt prefixes (engine built with paged context FMHA).",
)
@click.option(
    "--kv-cache-fraction",
    default=0.9,
    show_default=True,
    help="Share of free GPU memory, after the weights, given to the KV cache.",
)
@click.option(
    "--scheduler-policy",
    type=click.Choice(SCHEDULER_POLICIES),
    default=SCHEDULER_POLICIES[0],
    show_default=True,
    help="TensorRT-LLM batch scheduler policy.",
)
@click.option(
    "--preprocessing-instances", default=2, show_default=True, help="Tokeniser processes."
)
@click.option(
    "--postprocessing-instances", default=2, show_default=True, help="Detokeniser processes."
)
@click.option("--force", is_flag=True, help="Replace OUT if it is not empty.")
def model_repo_render_command(
    out: Path,
    tokenizer_dir: str,
    engine_dir: str,
    max_batch_size: int,
    decoupled: bool,
    max_queue_delay_us: int,
    kv_cache_reuse: bool,
    kv_cache_fraction: float,
    scheduler_policy: str,
    preprocessing_instances: int,
    postprocessing_instances: int,
    force: bool,
) -> None:
    """Render the TensorRT-LLM (aiXcoder-7B) repository into OUT, ready for tritonserver."""
    rendered = render_trtllm(
        out,
        tokenizer_dir=tokenizer_dir,
        engine_dir=engine_dir,
        max_batch_size=max_batch_size,
        decoupled=decoupled,
        max_queue_delay_us=max_queue_delay_us,
        kv_cache_reuse=kv_cache_reuse,
        kv_cache_free_gpu_mem_fraction=kv_cache_fraction,
        batch_scheduler_policy=scheduler_policy,
        preprocessing_instances=preprocessing_instances,
        postprocessing_instances=postprocessing_instances,
        force=force,
    )
    console.print(f"rendered {rendered}; serve it with: tritonserver --model-repository={rendered}")


def _show_report(sessions: sessionmaker[Session], run_id: int, as_json: bool) -> None:
    with sessions() as session:
        report = reports.run_report(session, run_id=run_id)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    run = report.run
    console.print(
        f"[bold]run {run.id}[/bold] {run.name} {run.ref or ''} {(run.commit or '')[:12]}  "
        f"status [bold]{run.status}[/bold]  profile {run.profile}  "
        f"files {report.files} (skipped: {_skips(report.skipped)})"
    )
    table = Table(title_justify="left")
    # points, answered (a suggestion came back), failed requests, accepted, acceptance rate
    for column in ("", "pts", "ok", "err", "acc", "rate", *HEADLINE.values()):
        table.add_column(
            column, justify="right" if column else "left", min_width=None if column else 12
        )
    for heading, rows in (
        ("", [report.totals]),
        ("by language", report.by_language),
        ("by span kind", report.by_kind),
    ):
        if heading:
            table.add_row(f"[dim]{heading}[/dim]")
        for row in rows:
            table.add_row(
                row.key,
                str(row.points),
                str(row.suggestions),
                str(row.errors),
                str(row.accepted),
                _percent(row.acceptance_rate),
                *(_number(row.metrics.get(name)) for name in HEADLINE),
            )
        table.add_section()
    console.print(table)
    for info in report.metrics:
        console.print(f"[dim]{info.name} v{info.version}: {info.definition}[/dim]")
    console.print(f"[dim]accepted when: {json.dumps(report.acceptance_rule)}[/dim]")


def _regression(flag: bool | None) -> str:
    return {None: "-", False: "no", True: "[red]yes[/red]"}[flag]


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _skips(skipped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in skipped.items()) or "none"
