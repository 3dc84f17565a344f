"""`tactful retention run`: delete what is kept longer than its category's retention, and
purge the rows of erased users."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

retention_app = typer.Typer(help="Retention of personal data.", no_args_is_help=True)
out = Console()


@retention_app.command("run")
def run(
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, max=100_000, help="Rows of erased users purged per transaction."
        ),
    ] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Delete profile fields and events past their retention (fields.yaml), then purge the rows
    of erased users (unreadable since their erasure: keys shredded); audit-logged.

    Interrupted? Run it again: the purge goes on where it stopped.

    Example: tactful retention run
    """
    from tactful_cli.main import _open

    with _open() as tf:
        report = tf.retention.run(batch_size=batch_size)
    if as_json:
        doc = {
            "ran_at": report.ran_at.isoformat(),
            "events": report.events,
            "profile_fields": report.profile_fields,
            "erased_users_purged": report.erased_purged,
            "purged": report.purged,
            "total": report.total,
        }
        out.print_json(json.dumps(doc))
        return
    out.print(f"retention run at {report.ran_at:%Y-%m-%d %H:%M} UTC: {report.total} rows deleted")
    for category, n in report.events.items():
        out.print(f"  events of {category}: {n}")
    for field, n in report.profile_fields.items():
        out.print(f"  profile field {field}: {n}")
    if report.purged:
        out.print(f"  erased users' rows purged: {sum(report.purged.values())}", highlight=False)
        for table, n in report.purged.items():
            out.print(f"    {table}: {n}", highlight=False)
        out.print(f"  erased users now without any row: {report.erased_purged}", highlight=False)
