"""`tactful budget`: show and grant differential-privacy budgets (operator-only, audited)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

budget_app = typer.Typer(
    help="Differential-privacy budgets: epsilon granted and spent per dataset.",
    no_args_is_help=True,
)
out = Console()


@budget_app.command("show")
def show(
    dataset: Annotated[
        str | None, typer.Argument(help="One dataset (default: every dataset).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show epsilon granted, spent and remaining per dataset.

    Example: tactful budget show popularity --json
    """
    from tactful_cli.main import _open

    with _open() as tf:
        budgets = [tf.aggregates.budget(dataset)] if dataset else tf.aggregates.budgets()
    rows = [
        {"dataset": b.dataset, "total": b.total, "spent": b.spent, "remaining": b.remaining}
        for b in budgets
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if not rows:
        out.print("no privacy budget granted yet (tactful budget grant DATASET EPSILON ...)")
        return
    table = Table("dataset", "total ε", "spent ε", "remaining ε")
    for r in rows:
        table.add_row(
            str(r["dataset"]), f"{r['total']:g}", f"{r['spent']:g}", f"{r['remaining']:g}"
        )
    out.print(table)


@budget_app.command("grant")
def grant(
    dataset: Annotated[str, typer.Argument(help="The dataset, e.g. default or popularity.")],
    epsilon: Annotated[float, typer.Argument(help="Epsilon to add to its total (> 0).")],
    operator: Annotated[
        str,
        typer.Option("--operator", help="Who grants it (required; recorded in the audit log)."),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Add epsilon to a dataset's privacy budget (operator-only; audit-logged).

    Every release on the dataset spends from it; a spent budget is never given back, so a
    grant permanently raises what can be learned about the users in it.

    Example: tactful budget grant popularity 2 --operator alice --yes
    """
    if not yes and not typer.confirm(
        f"Grant epsilon {epsilon:g} more to dataset {dataset!r}? This cannot be taken back"
    ):
        raise typer.Exit(1)
    from tactful_cli.main import _open

    with _open() as tf:
        status = tf.aggregates.grant(dataset, epsilon, operator=operator)
    out.print(
        f"dataset {status.dataset}: total ε {status.total:g}, spent {status.spent:g}, "
        f"remaining {status.remaining:g}"
    )
