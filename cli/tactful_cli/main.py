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
from tactful_cli.budget import budget_app
from tactful_cli.experiments import experiments_app
from tactful_cli.keys import keys_app
from tactful_cli.policy import policy_app
from tactful_cli.requests import requests_app
from tactful_cli.retention import retention_app
from tactful_cli.rights import register as register_rights

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
app.add_typer(keys_app, name="keys")
app.add_typer(requests_app, name="requests")
register_rights(app)
app.add_typer(retention_app, name="retention")
app.add_typer(budget_app, name="budget")
app.add_typer(policy_app, name="policy")
app.add_typer(experiments_app, name="experiments")

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


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Verify the audit hash chain and its signed checkpoints; exit 3 and name the first bad
    entry and the kind of damage (modified, deleted, reordered, truncated, forged).

    When intact, says which signed checkpoint the chain verified to: entries after it are
    covered by the hash chain alone (a tail cut off past it cannot be seen).

    Example: tactful audit verify --json
    """
    with _open() as tf:
        verdict = tf.audit.verify()
    if as_json:
        cp = verdict.checkpoint
        doc = {
            "ok": verdict.ok,
            "entries": verdict.entries,
            "head": verdict.head,
            "first_bad_seq": verdict.first_bad_seq,
            "damage": verdict.damage,
            "problem": verdict.problem,
            "checkpoints": verdict.checkpoints,
            "checkpoint": None
            if cp is None
            else {"seq": cp.seq, "head": cp.head, "signed_at": cp.signed_at.isoformat()},
            "unsigned_tail": verdict.unsigned_tail,
        }
        sys.stdout.write(json.dumps(doc) + "\n")
    elif verdict.ok:
        out.print(f"[green]{verdict.summary()}[/green]", highlight=False, soft_wrap=True)
    else:
        err.print(f"[red]{verdict.summary()}[/red]", highlight=False, soft_wrap=True)
    if not verdict.ok:
        raise typer.Exit(3)


@audit_app.command("checkpoint")
def audit_checkpoint(as_json: JsonOpt = False) -> None:
    """Sign the audit chain's current head now (HMAC under the audit key); print the entry
    it covers.

    One is also written every 100 entries. The entries since the last checkpoint are verified
    first (exit 3, nothing signed, if they do not). Take one before a backup or an export of
    the log and keep its output elsewhere: a later cut or rewrite of what it covers fails
    `tactful audit verify`.

    Example: tactful audit checkpoint --json
    """
    with _open() as tf:
        seq = tf.audit.checkpoint()
    if as_json:
        sys.stdout.write(json.dumps({"seq": seq}) + "\n")
    elif seq == 0:
        out.print("the audit log is empty: nothing to sign")
    else:
        out.print(f"[green]signed checkpoint at entry {seq}[/green]", highlight=False)


@report_app.command("audit")
def report_audit(
    fmt: Annotated[
        Literal["json", "md", "html", "csv"],
        typer.Option(
            "--format",
            help="json, md, html (self-contained page with charts) or csv (Art. 30 records).",
        ),
    ] = "md",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here (default stdout).")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="Period start (ISO date, UTC).")] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Period end, excluded (ISO date, UTC).")
    ] = None,
    public: Annotated[
        bool,
        typer.Option(
            "--public",
            help="For outside eyes: consent counts released with differential privacy.",
        ),
    ] = False,
    epsilon: Annotated[
        float,
        typer.Option(help="With --public: epsilon charged to the 'reports' privacy budget."),
    ] = 1.0,
) -> None:
    """The compliance audit report: Art. 30 records, consent, requests, decisions, budget,
    integrity.

    Example: tactful report audit --format html --since 2026-10-01 --out report.html
    """
    with _open() as tf:
        report = tf.report(since=_aware(since), until=_aware(until), public=public, epsilon=epsilon)
    render = {
        "json": report.to_json,
        "md": report.to_markdown,
        "html": report.to_html,
        "csv": report.to_csv,
    }[fmt]
    text = render()
    if out_file is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out_file.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
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
