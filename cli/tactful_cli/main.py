"""`tactful`: set up a store, run the demo, answer export/erasure requests, verify, report."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from tactful import Tactful, TactfulError

app = typer.Typer(
    name="tactful",
    help="Privacy-first, consent-aware personalization: operator commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
report_app = typer.Typer(help="Compliance reports.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")

out = Console()
err = Console(stderr=True)


class _Options:
    home: str | None = None
    db: str | None = None
    key_file: str | None = None
    policies: str | None = None


opts = _Options()


def _open() -> Tactful:
    return Tactful.open(
        db_url=opts.db, key_file=opts.key_file, policies=opts.policies, home=opts.home
    )


@app.callback()
def main(
    home: Annotated[
        str | None,
        typer.Option("--home", envvar="TACTFUL_HOME", help="Store directory (default ./.tactful)."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="TACTFUL_DB_URL",
            help="Database URL (default: SQLite in --home; or postgresql://host/db).",
        ),
    ] = None,
    key_file: Annotated[
        str | None,
        typer.Option(
            "--key-file",
            envvar="TACTFUL_KEY_FILE",
            help="Master key file (default HOME/master.key).",
        ),
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option(
            "--policies",
            envvar="TACTFUL_POLICIES",
            help="Policy pack directory (default: shipped pack).",
        ),
    ] = None,
) -> None:
    """Privacy-first, consent-aware personalization: operator commands."""
    opts.home, opts.db, opts.key_file, opts.policies = home, db, key_file, policies


@app.command()
def init() -> None:
    """Create the store and its master key (mode 0600) if they do not exist.

    Example: tactful --home /srv/tactful init
    """
    with _open() as tf:
        out.print(
            f"[green]store ready[/green] ({tf!r}); policy pack "
            f"{tf.pack.meta.name} {tf.pack.meta.version}"
        )
        out.print(
            "Back up the master key file separately from the database: without it "
            "nothing can be read."
        )


@app.command()
def demo(
    users: Annotated[int, typer.Option(help="How many synthetic users.", min=10, max=5000)] = 300,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic data.")] = 7,
) -> None:
    """Run the end-to-end demo on a fresh store (a temporary one unless --home is given).

    Example: tactful demo
    """
    from tactful_cli.demo import run_demo

    run_demo(out, home=opts.home, db_url=opts.db, users=users, seed=seed, policies=opts.policies)


@app.command()
def export(
    user: Annotated[str, typer.Argument(help="The app's user id.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write JSON here (default stdout).")
    ] = None,
) -> None:
    """Export everything held about USER as JSON (GDPR Art. 15 / 20).

    Example: tactful export alice --out alice.json
    """
    with _open() as tf:
        document = tf.rights.export(user)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if out_file is None:
        sys.stdout.write(text + "\n")
    else:
        out_file.write_text(text + "\n", encoding="utf-8")
        err.print(f"exported to {out_file}")


@app.command()
def erase(
    user: Annotated[str, typer.Argument(help="The app's user id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase USER: delete their data, shred their key, unlearn them (GDPR Art. 17).

    Example: tactful erase alice --yes
    """
    if not yes and not typer.confirm("Erase this user for good? This cannot be undone"):
        raise typer.Exit(1)
    with _open() as tf:
        receipt = tf.rights.erase(user)
    out.print_json(receipt.model_dump_json())


@audit_app.command("verify")
def audit_verify() -> None:
    """Verify the audit hash chain; exit 3 and name the first bad entry if it is broken.

    Example: tactful audit verify
    """
    with _open() as tf:
        verdict = tf.audit.verify()
    if verdict.ok:
        out.print(f"[green]{verdict.summary()}[/green]")
    else:
        err.print(f"[red]{verdict.summary()}[/red]")
        raise typer.Exit(3)


@report_app.command("audit")
def report_audit(
    fmt: Annotated[Literal["json", "md"], typer.Option("--format", help="json or md.")] = "md",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here (default stdout).")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="Period start (ISO date).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Period end (ISO date).")] = None,
) -> None:
    """The compliance audit report: purposes, consent, decisions, requests, integrity.

    Example: tactful report audit --format md --out report.md
    """
    with _open() as tf:
        report = tf.report(since=_aware(since), until=_aware(until))
    text = report.to_json() if fmt == "json" else report.to_markdown()
    if out_file is None:
        sys.stdout.write(text + "\n")
    else:
        out_file.write_text(text + "\n", encoding="utf-8")
        err.print(f"report written to {out_file}")


def _aware(moment: datetime | None) -> datetime | None:
    from datetime import UTC

    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def run(argv: list[str] | None = None) -> None:
    """Entry point: an expected error is one line on stderr and its exit code, no traceback."""
    try:
        app(args=argv)
    except TactfulError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
