"""`tactful keys`: master key versions, rotation without downtime, orphaned data keys."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

keys_app = typer.Typer(help="Master keys and data keys.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@keys_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the master key versions, the current one, and how many data keys each wraps.

    Example: tactful keys status
    """
    from tactful_cli.main import _open

    with _open() as tf:
        st = tf.keys.status()
    if as_json:
        doc = {
            "provider": st.provider,
            "keystore": st.keystore,
            "current": st.current,
            "versions": {str(v): n for v, n in st.versions.items()},
            "unused_old_versions": list(st.retired_candidates),
        }
        out.print_json(json.dumps(doc))
        return
    table = Table(title=f"master keys ({st.provider}); data keys in {st.keystore}")
    table.add_column("version", justify="right")
    table.add_column("data keys", justify="right")
    table.add_column("state")
    for version, count in st.versions.items():
        state = "current" if version == st.current else ("unused" if not count else "in use")
        table.add_row(str(version), str(count), state)
    out.print(table)


@keys_app.command("rotate")
def rotate(
    batch_size: Annotated[
        int, typer.Option(help="Data keys rewrapped per transaction.", min=1, max=100_000)
    ] = 1000,
) -> None:
    """Make a new master key version and rewrap every data key under it (no downtime).

    Data is not re-encrypted. Interrupted? Run it again: it resumes without making another
    version. Old versions leave the key file once no data key uses them.

    Example: tactful keys rotate --batch-size 5000
    """
    from tactful_cli.main import _open

    with _open() as tf:
        report = tf.keys.rotate(
            batch_size=batch_size, progress=lambda n: err.print(f"rewrapped {n} data keys")
        )
    verb = "resumed rotation to" if report.resumed else "rotated to"
    out.print(
        f"[green]{verb} master key version {report.version}[/green]: "
        f"{report.rewrapped} data keys rewrapped; retired versions: "
        f"{', '.join(map(str, report.retired)) or 'none'}"
    )


@keys_app.command("gc")
def collect() -> None:
    """Delete data keys that no live user has (left by rolled-back writes), older than 1 hour.

    Example: tactful keys gc
    """
    from tactful_cli.main import _open

    with _open() as tf:
        n = tf.keys.collect_orphans()
    out.print(f"removed {n} orphaned data keys")
