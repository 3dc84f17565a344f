"""`tactful retention run`: delete what is kept longer than its category's retention."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

retention_app = typer.Typer(help="Retention of personal data.", no_args_is_help=True)
out = Console()


@retention_app.command("run")
def run(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Delete profile fields and events past their retention (fields.yaml); audit-logged.

    Example: tactful retention run
    """
    from tactful_cli.main import _open

    with _open() as tf:
        report = tf.retention.run()
    if as_json:
        doc = {
            "ran_at": report.ran_at.isoformat(),
            "events": report.events,
            "profile_fields": report.profile_fields,
            "total": report.total,
        }
        out.print_json(json.dumps(doc))
        return
    out.print(f"retention run at {report.ran_at:%Y-%m-%d %H:%M} UTC: {report.total} rows deleted")
    for category, n in report.events.items():
        out.print(f"  events of {category}: {n}")
    for field, n in report.profile_fields.items():
        out.print(f"  profile field {field}: {n}")
