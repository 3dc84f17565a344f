"""`tactful requests`: the register of data subject requests and their deadlines.

Exit codes: 0 done, 1 user error (unknown request id, bad extension), 2 usage.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from tactful import RequestInfo

requests_app = typer.Typer(
    help="Data subject requests: deadlines, extensions, identity pauses, completion.",
    no_args_is_help=True,
)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
IdArg = Annotated[str, typer.Argument(help="The request id.")]
Kind = Literal["access", "portability", "erasure", "rectification", "restriction", "objection"]


def _show(info: RequestInfo, as_json: bool, message: str | None = None) -> None:
    if as_json:
        out.print_json(info.model_dump_json())
        return
    if message:
        out.print(message, highlight=False, soft_wrap=True)
    table = Table(show_header=False, box=None)
    for key, value in info.model_dump(mode="json").items():
        if value not in (None, 0, "") or key in ("status", "overdue"):
            shown = json.dumps(value) if isinstance(value, dict) else str(value)
            table.add_row(f"[bold]{key}[/bold]", shown)
    out.print(table)


@requests_app.command("list")
def list_(
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open requests past their deadline.")
    ] = False,
    status: Annotated[
        Literal["open", "paused", "completed"] | None,
        typer.Option("--status", help="Only requests in this status."),
    ] = None,
    kind: Annotated[Kind | None, typer.Option("--type", help="Only requests of this type.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List requests, oldest first, with their deadlines.

    Example: tactful requests list --overdue
    """
    from tactful_cli.main import _open

    with _open() as tf:
        found = tf.rights.requests.list(status=status, kind=kind, overdue=overdue)
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in found]))
        return
    table = Table(title=f"{len(found)} request(s)", box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True, min_width=32)  # ids are for copying: never cut
    for col in ("type", "status", "due", "overdue"):
        table.add_column(col, no_wrap=True)
    for r in found:
        table.add_row(
            r.id,
            r.kind,
            r.status,
            f"{r.due_at.date().isoformat()} ({r.profile})",
            "[red]yes[/red]" if r.overdue else "no",
        )
    out.print(table)


@requests_app.command("show")
def show(request_id: IdArg, as_json: JsonOpt = False) -> None:
    """Show one request: deadline, extension and its reason, pause, receipt.

    Example: tactful requests show 3f2a9c...
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.requests.show(request_id)
    _show(info, as_json)


@requests_app.command("open")
def open_(
    kind: Annotated[Kind, typer.Argument(help="The request type.")],
    user: Annotated[str, typer.Argument(help="The app's user id.")],
    ccpa: Annotated[
        bool,
        typer.Option("--ccpa", help="CCPA deadlines: acknowledge in 10 days, respond in 45."),
    ] = False,
    unverified: Annotated[
        bool,
        typer.Option("--unverified", help="Identity not verified yet: the clock is paused."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a request received now: due one calendar month later (GDPR Art. 12(3)).

    Example: tactful requests open erasure alice --unverified
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.requests.open(
            kind, user, profile="ccpa" if ccpa else "gdpr", identity_verified=not unverified
        )
    _show(info, as_json, f"request {info.id} opened")


@requests_app.command("extend")
def extend(
    request_id: IdArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (told to the requester; no personal data).")
    ],
    by: Annotated[
        int | None,
        typer.Option("--by", help="Months (GDPR, 1-2) or days (CCPA); default the most allowed."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Extend a request's deadline, recording the reason (GDPR: up to two more months).

    Example: tactful requests extend 3f2a9c... --reason "complex: 14 linked accounts"
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.requests.extend(request_id, reason, by=by)
    _show(info, as_json, f"request {info.id} extended")


@requests_app.command("pause")
def pause(request_id: IdArg, as_json: JsonOpt = False) -> None:
    """Pause a request's clock while the requester's identity is being verified.

    Example: tactful requests pause 3f2a9c...
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.requests.pause(request_id)
    _show(info, as_json, f"request {info.id} paused")


@requests_app.command("resume")
def resume(request_id: IdArg, as_json: JsonOpt = False) -> None:
    """Identity verified: restart the clock (the deadline moves by the time paused).

    Example: tactful requests resume 3f2a9c...
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.requests.resume(request_id)
    _show(info, as_json, f"request {info.id} resumed")


@requests_app.command("acknowledge")
def acknowledge(request_id: IdArg, as_json: JsonOpt = False) -> None:
    """Record that the requester was told their request arrived (CCPA: within 10 days).

    Example: tactful requests acknowledge 3f2a9c...
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.requests.acknowledge(request_id)
    _show(info, as_json, f"request {info.id} acknowledged")


@requests_app.command("complete")
def complete(
    request_id: IdArg,
    note: Annotated[
        str | None, typer.Option("--note", help="What was done (no personal data).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a request that was handled outside tactful (export/erase close their own).

    Example: tactful requests complete 3f2a9c... --note "answered by letter"
    """
    from tactful_cli.main import _open

    with _open() as tf:
        info = tf.rights.requests.complete(request_id, note)
    _show(info, as_json, f"request {info.id} completed")
