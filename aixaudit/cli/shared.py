"""What the commands share: the consoles, the database, progress bars, run options, report
rendering, and the group that turns an AixauditError into one line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit
from aixaudit.config import Settings
from aixaudit.errors import AixauditError
from aixaudit.prompts import PROFILES
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.store import db, reports

# The metrics shown in the report table (all of them are in --json), by column title.
HEADLINE = {
    "exact_match": "EM",
    "es_rapidfuzz": "ES",
    "identifier_f1": "id F1",
    "parses_after_insert": "parses",
    "bleu4_aixcoder": "BLEU-4",
    "length_pred": "len pred",
    "length_ref": "len ref",
}

console = Console(soft_wrap=True)  # messages stay on one line; tables fit the width
errors = Console(stderr=True, soft_wrap=True)


def sessions_for(settings: Settings) -> sessionmaker[Session]:
    """Open the database, refusing one at another schema revision (a new one is created)."""
    db.require_current(settings.db_url)
    return db.session_factory(db.make_engine(settings.db_url))


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
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
        "--max-new-tokens",
        type=click.IntRange(min=1),
        help="Cap on the tokens a point may ask; each asks min(cap, ceil(reference tokens * 1.5)"
        " + 8). Default: the profile's (512 for aixcoder, 128 for l2r).",
    ),
    click.option(
        "--prompt-budget",
        type=click.IntRange(min=16),
        help="Prompt tokens at most. Default: the profile's context less its new-token cap "
        "(16384 - 512 for aixcoder, split evenly between prefix and suffix; 8192 - 128 for l2r).",
    ),
    click.option(
        "--accept-metric",
        default="es_rapidfuzz",
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


def audit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a run, shared by `audit` and `schedule add`."""
    for option in reversed(_AUDIT_OPTIONS):
        command = option(command)
    return command


def audit_request(
    settings: Settings, choices: dict[str, Any]
) -> tuple[audit.AuditOptions, AcceptanceRule]:
    """AuditOptions and AcceptanceRule from the values of `audit_options`."""
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


def show_report(sessions: sessionmaker[Session], run_id: int, as_json: bool) -> None:
    with sessions() as session:
        report = reports.run_report(session, run_id=run_id)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    run = report.run
    console.print(
        f"[bold]run {run.id}[/bold] {run.name} {run.ref or ''} {(run.commit or '')[:12]}  "
        f"status [bold]{run.status}[/bold]  profile {run.profile}  "
        f"files {report.files} (skipped: {skips(report.skipped)})"
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
                percent(row.acceptance_rate),
                *(number(row.metrics.get(name)) for name in HEADLINE),
            )
        table.add_section()
    console.print(table)
    for info in report.metrics:
        console.print(f"[dim]{info.name} v{info.version}: {info.definition}[/dim]")
    console.print(f"[dim]accepted when: {json.dumps(report.acceptance_rule)}[/dim]")
    show_run_facts(report)


def show_run_facts(report: reports.RunReport) -> None:
    """What answered the run and how its budgets bit: the lines a reader needs to trust it."""
    served = report.served_by
    if served:
        exact = "exact" if served["tokens_exact"] else "APPROXIMATE"
        weights = served.get("weights_sha256") or served.get("engine_sha256") or "unknown"
        console.print(
            f"answered by {served['model']} v{','.join(served['versions']) or '?'} at "
            f"{served['server_url']} (weights {weights[:12]}); tokens counted with "
            f"{served['tokenizer']} ({exact})",
            highlight=False,
        )
    if report.budgets:
        console.print(
            f"prompts truncated: {report.budgets.prompts_truncated}; generations at the "
            f"new-token limit: {report.budgets.at_limit}",
            highlight=False,
        )


def regression_mark(flag: bool | None) -> str:
    return {None: "-", False: "no", True: "[red]yes[/red]"}[flag]


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def skips(skipped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in skipped.items()) or "none"
