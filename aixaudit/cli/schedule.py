"""`aixaudit schedule`: nightly incremental audits, stored in the database, started by beat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from aixaudit import jobs, sources
from aixaudit.config import get_settings
from aixaudit.store import schedules
from aixaudit.store.tables import utcnow

from .execute import execution_options, options_from
from .shared import audit_options, audit_request, console, sessions_for


@click.group("schedule")
def schedule_group() -> None:
    """Nightly incremental audits, started by `celery -A workers beat`."""


@schedule_group.command("add")
@click.argument("location")
@click.option("--ref", help="Branch, tag or commit to audit (default: the default branch).")
@click.option("--at", "at", default="02:00", show_default=True, help="Time of day, HH:MM UTC.")
@audit_options
@click.option("--execute", is_flag=True, help="Then run the repository's tests on each run.")
@execution_options
def schedule_add_command(
    location: str, ref: str | None, at: str, execute: bool, **choices: Any
) -> None:
    """Audit LOCATION (a git URL, or a directory the workers can read) every night at --at.

    Each nightly run reuses the results of files unchanged since the previous run with the
    same options and model, and is compared with the previous run of the repository; with
    --execute, the execution workers then run the repository's tests on its suggestions.
    """
    settings = get_settings()
    execution = options_from(choices)  # takes its choices out of the audit's
    options, rule = audit_request(settings, choices)
    sources.check_location(location, settings.allowed_roots)  # the workers will check it out
    origin = location if sources.is_git_url(location) else str(Path(location).resolve())
    with sessions_for(settings).begin() as session:
        schedule = schedules.add_schedule(
            session,
            origin=origin,
            ref=ref,
            at=at,
            options=options.model_dump(mode="json"),
            acceptance_rule=rule.to_dict(),
            now=utcnow(),
            execution=execution.model_dump(mode="json") if execute else None,
        )
        console.print(f"schedule {schedule.id}: {origin} every night at {schedule.at} UTC")


@schedule_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def schedule_list_command(as_json: bool) -> None:
    """List the nightly audits."""
    with sessions_for(get_settings())() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": s.id,
                "origin": s.origin,
                "ref": s.ref,
                "at": s.at,
                "options": s.options,
                "acceptance_rule": s.acceptance_rule,
                "execution": s.execution,
                "last_started_on": s.last_started_on.isoformat() if s.last_started_on else None,
            }
            for s in schedules.list_schedules(session)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "id", "repository", "ref", "at (UTC)", "profile", "points", "executed", "last started"
    )
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["origin"],
            row["ref"] or "",
            row["at"],
            row["options"]["profile"],
            str(row["options"]["max_points"]),
            "no" if row["execution"] is None else f"{row['execution']['max_points']} points",
            row["last_started_on"] or "never",
        )
    console.print(table)


@schedule_group.command("remove")
@click.argument("schedule_id", type=int)
def schedule_remove_command(schedule_id: int) -> None:
    """Stop auditing a repository nightly (its runs are kept)."""
    with sessions_for(get_settings()).begin() as session:
        schedules.remove_schedule(session, schedule_id=schedule_id)
    console.print(f"schedule {schedule_id} removed")


@schedule_group.command("run")
@click.argument("schedule_id", type=int)
def schedule_run_command(schedule_id: int) -> None:
    """Start a schedule's incremental audit now, on the workers."""
    sessions = sessions_for(get_settings())
    with sessions() as session:
        task_id = jobs.schedule(session, schedule_id=schedule_id)
    console.print(f"schedule {schedule_id}: audit enqueued (task {task_id})")
