"""What the commands share: the consoles, the database, progress bars, run options, report
rendering, and the group that turns an AixauditError into one line."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, NoReturn, cast

import annotated_types
import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, lifecycle, sources
from aixaudit.config import Settings
from aixaudit.context import ContextStrategy
from aixaudit.errors import AixauditError, ConfigError
from aixaudit.processes import Interrupted, stop_signals_raise
from aixaudit.prompts import PROFILES
from aixaudit.scoring import METRICS, AcceptanceRule
from aixaudit.stats import Interval
from aixaudit.store import db, queries, reports
from aixaudit.store.tables import RunStatus

# The metrics shown in the report tables (all of them are in --json), by column title.
TITLES = {
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


# Exit statuses besides 0 (done), 1 (an error, shown in one line) and 2 (click's usage errors);
# a stop signal exits with 128 + its number (130 for SIGINT, 143 for SIGTERM).
EXIT_RUN_NOT_DONE = 3  # the run ended `failed` or `partial`
UNFINISHED = (RunStatus.FAILED, RunStatus.PARTIAL)


def exit_for(status: RunStatus | str) -> None:
    """Exit EXIT_RUN_NOT_DONE when a run ended failed or partial (scripts and schedulers see it)."""
    if RunStatus(status) in UNFINISHED:
        raise SystemExit(EXIT_RUN_NOT_DONE)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip() or type(error).__name__
    return text.splitlines()[0].strip().rstrip(".")


class AixauditGroup(click.Group):
    """Shows an AixauditError or a database error as one line and exit status 1, not as a
    traceback; SIGTERM and SIGINT unwind every command (its `finally`s stop what it started)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with stop_signals_raise():
                return super().invoke(ctx)
        except AixauditError as error:
            fail(str(error))
        except SQLAlchemyError as error:
            fail(f"The database cannot be used: {_first_line(error)}.")
        except Interrupted as interrupted:
            fail(f"{interrupted}.", code=interrupted.exit_code)


def fail(message: str, *, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise SystemExit(code)


@contextmanager
def finishing(sessions: sessionmaker[Session], run_id: int, *, threshold: float) -> Iterator[None]:
    """A run that is still open when the block fails or is interrupted is finished with the
    reason (`partial` or `failed`, error "interrupted by SIGTERM"), never left `running`."""
    try:
        yield
    except BaseException as error:
        with sessions() as session:
            open_ = not RunStatus(queries.get_run(session, run_id=run_id).status).is_final
        if open_:
            reason = str(error) or type(error).__name__
            lifecycle.finish(sessions, run_id=run_id, threshold=threshold, error=reason)
        raise


def option_of(field: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A --option for an AuditOptions field: its default and its bounds are the model's."""
    info = audit.AuditOptions.model_fields[field]
    low: int | None = None
    high: int | None = None
    for bound in info.metadata:
        if isinstance(bound, annotated_types.Ge):
            low = cast(int, bound.ge)
        elif isinstance(bound, annotated_types.Le):
            high = cast(int, bound.le)
    return click.option(
        f"--{field.replace('_', '-')}",
        type=click.IntRange(low, high),
        default=info.default,
        show_default=True,
        help=help,
    )


_AUDIT_OPTIONS = (
    click.option(
        "--profile",
        type=click.Choice(sorted(PROFILES)),
        help="Prompt format. Default: the one the configured server declares, else aixcoder "
        "there; l2r on the embedded CPU model.",
    ),
    option_of("seed", "Sampling seed: same seed, same points."),
    option_of("per_file", "Points per file at most."),
    option_of("max_points", "Points per run at most."),
    option_of(
        "max_new_tokens",
        "Cap on the tokens a point may ask; each asks min(cap, ceil(reference tokens * 1.5) + 8). "
        "Default: the profile's (512 for aixcoder, 128 for l2r).",
    ),
    option_of(
        "prompt_budget",
        "Prompt tokens at most. Default: the profile's context less its new-token cap (16384 - "
        "512 for aixcoder, split evenly between prefix and suffix; 8192 - 128 for l2r).",
    ),
    click.option(
        "--context",
        default=audit.AuditOptions.model_fields["context"].default.value,
        show_default=True,
        callback=lambda _ctx, _param, value: context_strategies(value),
        help="Repository context before each prompt: none, imports (signatures of imported "
        "files), similar (BM25-similar windows of other files) or both. Several, comma-separated, "
        "ask the same points with each (an ablation: one run per strategy, linked as a group).",
    ),
    option_of("context_budget", "Context tokens at most."),
    click.option(
        "--roles",
        default=",".join(sources.DEFAULT_ROLES),
        show_default=True,
        callback=lambda _ctx, _param, value: file_roles(value),
        help="File roles to audit, comma-separated: source, test (tests/, test_*.py, *_test.go, "
        "*.test.ts, *Test.java, ...), example (examples/, samples/, demo/) and generated "
        "(a generated-code header or path). Reports break results down by role.",
    ),
    click.option(
        "--accept-metric",
        default=AcceptanceRule.metric,
        show_default=True,
        type=click.Choice(sorted(METRICS)),
        help="Metric that decides acceptance (an exact match always counts as accepted).",
    ),
    click.option(
        "--accept-threshold",
        type=float,
        default=AcceptanceRule.threshold,
        show_default=True,
        help="Acceptance threshold, within the metric's range: 0..1 for the similarities, "
        "at least 0 for the lengths (lower is better).",
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


def context_strategies(value: str) -> tuple[ContextStrategy, ...]:
    """`--context`'s value: one strategy, or several comma-separated, each once."""
    try:
        strategies = tuple(ContextStrategy(part.strip()) for part in value.split(","))
    except ValueError:
        known = ", ".join(ContextStrategy)
        raise click.BadParameter(f"{value!r}: choose from {known}, comma-separated.") from None
    if len(set(strategies)) < len(strategies):
        raise click.BadParameter(f"{value!r} names a strategy twice.")
    return strategies


def file_roles(value: str) -> tuple[sources.FileRole, ...]:
    """`--roles`' value: roles comma-separated, at least one."""
    try:
        return tuple(sources.FileRole(part.strip()) for part in value.split(","))
    except ValueError:
        known = ", ".join(sources.FileRole)
        raise click.BadParameter(f"{value!r}: choose from {known}, comma-separated.") from None


def audit_request(
    settings: Settings, choices: dict[str, Any], *, ablation: bool = False
) -> tuple[audit.AuditOptions, AcceptanceRule]:
    """AuditOptions and AcceptanceRule from the values of `audit_options` (the first context
    strategy; several only where `ablation` runs them all)."""
    if len(choices["context"]) > 1 and not ablation:
        raise click.UsageError("Several --context strategies are for `aixaudit audit` only.")
    from aixaudit.model_server import profile_for  # asks a configured server what it declares

    options = audit.AuditOptions(
        profile=profile_for(settings, choices["profile"]),
        seed=choices["seed"],
        per_file=choices["per_file"],
        max_points=choices["max_points"],
        max_new_tokens=choices["max_new_tokens"],
        prompt_budget=choices["prompt_budget"],
        context=choices["context"][0],
        context_budget=choices["context_budget"],
        roles=choices["roles"],
    )
    metric, threshold = choices["accept_metric"], choices["accept_threshold"]
    low, high = threshold_range(metric)
    if not low <= threshold <= high:
        raise ConfigError(
            f"--accept-threshold {threshold:g} is outside {metric}'s range {low:g}..{high:g}."
        )
    rule = AcceptanceRule(
        metric=metric, threshold=threshold, require_parse=not choices["accept_without_parse"]
    )
    return options, rule


def threshold_range(metric: str) -> tuple[float, float]:
    """Where a metric's values lie: the similarities (higher is better) in 0..1, the ratios
    (lower is better: length_pred, length_ref) from 0 up."""
    return (0.0, 1.0) if METRICS[metric].higher_is_better else (0.0, math.inf)


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
    sections = (
        ("", [report.totals]),
        ("by language", report.by_language),
        ("by span kind", report.by_kind),
        ("by file role", report.by_role),
    )
    # points, answered (a suggestion came back: the n of the rate), failed requests, accepted
    counts = report_table("pts", "ok", "err", "acc", "rate", *(TITLES[name] for name in LENGTHS))
    scores = report_table("n", *(TITLES[name] for name in TITLES if name not in LENGTHS))
    for heading, rows in sections:
        if heading:
            counts.add_row(f"[dim]{heading}[/dim]")
            scores.add_row(f"[dim]{heading}[/dim]")
        for row in rows:
            counts.add_row(
                row.key,
                *(str(n) for n in (row.points, row.suggestions, row.errors, row.accepted)),
                estimate(row.acceptance_rate, row.intervals.get("acceptance_rate"), percent),
                *(estimate(row.metrics.get(m), row.intervals.get(m), figure) for m in LENGTHS),
            )
            scores.add_row(
                row.key,
                str(row.suggestions),
                *(
                    estimate(row.metrics.get(name), row.intervals.get(name), figure)
                    for name in TITLES
                    if name not in LENGTHS
                ),
            )
        counts.add_section()
        scores.add_section()
    console.print(counts)
    console.print(scores)
    console.print(
        "[dim]under each number its 95% interval: Wilson for the rate, a bootstrap over files "
        "for the means (none within a single file); n = ok, the suggestions that came back[/dim]"
    )
    if report.retries:
        causes = ", ".join(f"{count} x {cause}" for cause, count in report.retries.items())
        console.print(f"requests sent again: {sum(report.retries.values())} ({causes})")
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


LENGTHS = ("length_pred", "length_ref")  # character means, shown beside the counts


def report_table(*columns: str) -> Table:
    """A report table that fits 80 columns: a group column, then right-aligned numbers."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("", min_width=10)
    for column in columns:
        table.add_column(column, justify="right")
    return table


def list_table(*columns: str) -> Table:
    """A list that fits 80 columns: no borders, headers never cut, long texts cut with "…"."""
    table = Table(
        box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False, show_edge=False
    )
    for column in columns:
        table.add_column(column, min_width=len(column), overflow="ellipsis", no_wrap=True)
    return table


def estimate(value: float | None, interval: Interval | None, shown: Callable[[float], str]) -> str:
    """A number with its 95% interval on the line below (numbers here are never negative)."""
    if value is None:
        return "-"
    if interval is None:
        return shown(value)
    return f"{shown(value)}\n[dim]{shown(interval.low)}–{shown(interval.high)}[/dim]"


def figure(value: float) -> str:
    """A mean in at most 4 characters: 0.42, 12.3, 123."""
    size = abs(value)
    return f"{value:.2f}" if size < 10 else f"{value:.1f}" if size < 100 else f"{value:.0f}"


def regression_mark(flag: bool | None) -> str:
    return {None: "-", False: "no", True: "[red]yes[/red]"}[flag]


def whole_percent(rate: float) -> int:
    """The one rounding rule for a rate shown as a percentage: rate * 100 rounded half up, as
    the dashboard's Math.round does, so 0.025 is 3% in both (f"{0.025:.0%}" says 2%)."""
    hundredths = rate * 100
    low = math.floor(hundredths)
    return low + (hundredths - low >= 0.5)


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{whole_percent(rate)}%"


def skips(skipped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in skipped.items()) or "none"
