"""`aixaudit compare A B`: run B against run A on the points both answered."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from aixaudit import compare
from aixaudit.config import get_settings

from .shared import TITLES, console, figure, percent, report_table, sessions_for, whole_percent

TEXT_WIDTH = 66  # a suggestion's text on one line, after its 12-character label


@click.command("compare")
@click.argument("run_a", type=int)
@click.argument("run_b", type=int)
@click.option("--top", default=5, show_default=True, help="Pairs that disagree most to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_command(run_a: int, run_b: int, top: int, as_json: bool) -> None:
    """Compare run B with run A on the points both answered: per metric, overall, by language
    and by span kind, B - A with its 95% interval, and McNemar's exact test for acceptance."""
    with sessions_for(get_settings())() as session:
        result = compare.compare_runs(session, run_a=run_a, run_b=run_b, top=top)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    console.print(
        f"[bold]run {run_b}[/bold] (B) against [bold]run {run_a}[/bold] (A): "
        f"{result.pairs} points paired; left out {result.left_out_a} of A, "
        f"{result.left_out_b} of B"
    )
    table = report_table("metric", "n", "A", "B", "B-A", "95% interval", "p")
    table.columns[1].justify = "left"
    shown = {compare.ACCEPTANCE: "accept", **TITLES}
    grouping = "all"
    for group in result.groups:
        if group.grouping != grouping:
            table.add_section()
            grouping = group.grouping
            table.add_row(f"[dim]by {grouping}[/dim]")
        found = {metric.metric: metric for metric in group.metrics}
        label = group.key
        for name in (name for name in shown if name in found):
            metric, rate = found[name], name == compare.ACCEPTANCE
            value = percent if rate else figure
            interval = metric.interval
            table.add_row(
                label,
                shown[name],
                str(metric.n),
                value(metric.a),
                value(metric.b),
                signed(metric.difference, rate),
                "-"
                if interval is None
                else f"{signed(interval.low, rate)}..{signed(interval.high, rate)}",
                f"{group.mcnemar_p:.2g}" if rate else "",
            )
            label = ""
    console.print(table)
    console.print(
        "[dim]B-A: mean of per-point differences; 95% interval: bootstrap over files (none "
        "within a single file); p: McNemar's exact test on the points accepted by one run "
        "only[/dim]"
    )
    if result.disagreements:
        console.print(f"\nwhere the runs disagree most ({result.disagreement_metric}):")
    for pair in result.disagreements:
        console.print(
            f"[bold]{pair.path}:{pair.start_line}-{pair.end_line}[/bold]  "
            f"A {figure(pair.score_a)}  B {figure(pair.score_b)}",
            highlight=False,
        )
        for label, text in (("reference", pair.reference), ("A", pair.text_a), ("B", pair.text_b)):
            console.print(f"  {label:<10}{one_line(text)}", highlight=False, markup=False)


def signed(value: float, rate: bool) -> str:
    return f"{whole_percent(value):+d}%" if rate else f"{value:+.2f}"


def one_line(text: str | None) -> str:
    """A text on one line, newlines shown as ⏎, cut to TEXT_WIDTH characters."""
    if text is None:
        return "(no suggestion)"
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= TEXT_WIDTH else flat[: TEXT_WIDTH - 1] + "…"
