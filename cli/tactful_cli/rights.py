"""Data subject rights commands: export, erase (one or in bulk), rectify, restrict, object.

Exit codes: 0 done, 1 user error (unknown user, bad value, refused confirmation), 2 usage,
3 integrity problem (a ciphertext or key that does not verify).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tactful import RequestInfo

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RequestOpt = Annotated[
    str | None,
    typer.Option("--request", help="Fulfil this open request (default: open and close a new one)."),
]
UserArg = Annotated[str, typer.Argument(help="The app's user id.")]


def export(
    user: UserArg,
    fmt: Annotated[
        Literal["json", "csv"],
        typer.Option("--format", help="json (one document) or csv (a zip of CSV files)."),
    ] = "json",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here (default stdout; json only).")
    ] = None,
    request: RequestOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export everything held about USER (GDPR Art. 15 access / Art. 20 portability).

    Streams: memory stays flat however long the history. With --out, --json prints a summary.

    Example: tactful export alice --format csv --out alice.zip
    """
    from tactful_cli.main import _open

    if fmt == "csv" and out_file is None:
        raise typer.BadParameter("a zip of CSV files needs --out PATH", param_hint="--out")
    with _open() as tf:
        if out_file is None:
            tf.rights.export_to(user, sys.stdout.buffer, format=fmt, request_id=request)
            sys.stdout.flush()
            return
        result = tf.rights.export_to(user, out_file, format=fmt, request_id=request)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        err.print(
            f"exported to {out_file} ({result.events} events, {result.decisions} decisions; "
            f"request {result.request_id})",
            highlight=False,
        )


def erase(
    user: Annotated[
        str | None, typer.Argument(help="The app's user id (or use --from-file).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    request: RequestOpt = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            help="CSV file of user ids (first column; a 'user'/'user_id' header is skipped).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --from-file: count, erase nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Erase USER for good: key shredded, consents withdrawn, models unlearned, rows purged later.

    Prints the receipt (JSON): request_id, completed_at, counts per kind (events,
    profile_fields, settings: null above 1,000, then counted by the purge), consent_records,
    consents_withdrawn, objections, data_key_shredded. From then on nothing of the user can be
    read; purge_pending says the unreadable rows wait for `tactful retention run`, which adds
    purged_at to the request's receipt (`tactful requests show ID`). Interrupted? Run the same
    command again: it completes the erasure (resumed: true). Bulk: --from-file users.csv (one
    transaction and receipt per user, with a progress bar and a summary); --dry-run shows how
    many would be erased.

    Example: tactful erase alice --yes
    Example: tactful erase --from-file users.csv --dry-run
    """
    from tactful_cli.main import _open

    if (user is None) == (from_file is None):
        raise typer.BadParameter("give either USER or --from-file FILE", param_hint="USER")
    if request is not None and from_file is not None:
        raise typer.BadParameter("--request applies to one user only", param_hint="--request")
    if dry_run and from_file is None:
        raise typer.BadParameter("--dry-run applies to --from-file", param_hint="--dry-run")
    if from_file is not None:
        _erase_bulk(from_file, yes=yes, dry_run=dry_run, as_json=as_json)
        return
    assert user is not None
    if not yes and not typer.confirm("Erase this user for good? This cannot be undone"):
        err.print("nothing erased")
        raise typer.Exit(1)
    with _open() as tf:
        receipt = tf.rights.erase(user, request_id=request)
    out.print_json(receipt.model_dump_json())


def _read_users(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [r[0].strip() for r in csv.reader(fh) if r and r[0].strip()]
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"error: cannot read {path}: {type(exc).__name__}", highlight=False)
        raise typer.Exit(1) from exc
    if rows and rows[0].lower() in ("user", "user_id", "userid", "id"):
        rows = rows[1:]
    return list(dict.fromkeys(rows))  # each user once, in file order


def _erase_bulk(path: Path, *, yes: bool, dry_run: bool, as_json: bool) -> None:
    from tactful_cli.main import _open

    users = _read_users(path)
    if not users:
        err.print(f"error: {path} lists no user ids", highlight=False)
        raise typer.Exit(1)
    if (
        not dry_run
        and not yes
        and not typer.confirm(f"Erase {len(users)} users for good? This cannot be undone")
    ):
        err.print("nothing erased")
        raise typer.Exit(1)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with _open() as tf, Progress(*columns, console=err, transient=as_json) as bar:
        task = bar.add_task("checking" if dry_run else "erasing", total=len(users))
        summary = tf.rights.erase_many(
            users, dry_run=dry_run, progress=lambda n: bar.update(task, completed=n)
        )
    if as_json:
        out.print_json(summary.model_dump_json())
        return
    verb = "would be erased" if dry_run else "erased"
    out.print(
        f"{summary.erased} {verb}, {summary.not_found} not found (no data held) "
        f"of {len(users)} user ids in {path}",
        highlight=False,
    )


def rectify(
    user: UserArg,
    field: Annotated[str, typer.Argument(help="A profile field declared in fields.yaml.")],
    value: Annotated[
        str, typer.Argument(help="New value, parsed by the field's type ('' deletes it).")
    ],
    request: RequestOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Correct one profile field of USER (GDPR Art. 16). Lists take JSON or a,b,c.

    Example: tactful rectify alice country FR
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.rectify(user, field, value, request_id=request)
    _done(info, f"field {field!r} rectified", as_json)


def restrict(user: UserArg, request: RequestOpt = None, as_json: JsonOpt = False) -> None:
    """Restrict processing of USER (GDPR Art. 18): nothing but storage until lifted.

    Example: tactful restrict alice
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.restrict(user, request_id=request)
    _done(info, "processing restricted: the gate denies everything but storage", as_json)


def unrestrict(user: UserArg, as_json: JsonOpt = False) -> None:
    """Lift the restriction of USER's processing.

    Example: tactful unrestrict alice
    """
    from tactful_cli.main import _open

    with _open() as tf:
        changed = tf.rights.unrestrict(user)
    if as_json:
        out.print_json(json.dumps({"unrestricted": changed}))
    else:
        out.print("restriction lifted" if changed else "was not restricted: nothing changed")


def object_(
    user: UserArg,
    purpose: Annotated[str, typer.Option("--purpose", help="A purpose id from purposes.yaml.")],
    lift: Annotated[bool, typer.Option("--lift", help="Lift the objection instead.")] = False,
    request: RequestOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record USER's objection to a purpose (GDPR Art. 21): that processing stops.

    Objecting to profiling stops personalization; a direct-marketing objection is absolute.

    Example: tactful object alice --purpose marketing.email
    """
    from tactful_cli.main import _open

    with _open() as tf:
        if lift:
            lifted = tf.rights.lift_objection(user, purpose)
            if as_json:
                out.print_json(json.dumps({"lifted": lifted, "purpose": purpose}))
            else:
                out.print("objection lifted" if lifted else "no objection to lift", highlight=False)
            return
        info = tf.rights.object(user, purpose, request_id=request)
    _done(info, f"objection to {purpose!r} recorded", as_json)


def _done(info: RequestInfo, message: str, as_json: bool) -> None:
    if as_json:
        out.print_json(info.model_dump_json())
    else:
        out.print(f"{message} (request {info.id})", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the rights commands to the top-level `tactful` app."""
    app.command()(export)
    app.command()(erase)
    app.command()(rectify)
    app.command()(restrict)
    app.command()(unrestrict)
    app.command("object")(object_)
