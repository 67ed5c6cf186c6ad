"""The `aixaudit` command line: each command composes core functions and renders the result.

runs.py      audit, report, runs, status, resume, cancel
execute.py   execute a run's suggestions against the repository's own tests
compare.py   compare two runs on their shared points
schedule.py  nightly audits
admin.py     serve, api, db, model-repo
shared.py    consoles, database, progress bars, run options, report rendering
"""

from __future__ import annotations

import click

from . import admin, compare, execute, runs, schedule
from .shared import AixauditGroup


@click.group(cls=AixauditGroup)
@click.version_option(package_name="aixaudit")
def main() -> None:
    """Audit a code-completion model served by Triton, repository by repository."""


for command in (
    runs.audit_command,
    runs.report_command,
    runs.runs_command,
    runs.status_command,
    runs.resume_command,
    runs.cancel_command,
    execute.execute_command,
    compare.compare_command,
    schedule.schedule_group,
    admin.serve_command,
    admin.api_command,
    admin.db_group,
    admin.model_repo_group,
):
    main.add_command(command)
