"""`tactful policy`: validate a policy pack, explain a decision, run the pack's tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tactful import ValidationError, check_policies, test_policies

policy_app = typer.Typer(
    help="Policy packs: validate, explain decisions, run the pack's own tests.",
    no_args_is_help=True,
)
out = Console()

DirArg = Annotated[
    Path | None,
    typer.Argument(help="The policy pack directory (default: --policies, else the shipped pack)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _dir(directory: Path | None) -> Path | None:
    from tactful_cli.main import opts

    if directory is not None:
        return directory
    return Path(opts.policies) if opts.policies else None


@policy_app.command("check")
def check(directory: DirArg = None, as_json: AsJson = False) -> None:
    """Validate and compile a pack; an error names the file, the line and key, and the problem.

    Example: tactful policy check ./policies
    """
    summary = check_policies(_dir(directory))
    if as_json:
        sys.stdout.write(summary.model_dump_json() + "\n")
        return
    out.print(
        f"[green]valid[/green]: {summary.name} {summary.version} "
        f"(hash {summary.content_hash[:12]}), {len(summary.rules)} rules, "
        f"{len(summary.purposes)} purposes, {len(summary.context_fields)} context fields",
        highlight=False,
    )


@policy_app.command("explain")
def explain(
    user: Annotated[str, typer.Argument(help="The app's user id.")],
    purpose: Annotated[
        str, typer.Option("--purpose", "-p", help="The purpose, from purposes.yaml.")
    ] = "personalization",
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="A request-context field KEY=VALUE (repeatable)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Show the decision tf.recommend would get now for USER, and the rules behind it.

    Nothing is recommended or recorded.

    Example: tactful policy explain alice --purpose personalization -c device=mobile
    """
    ctx: dict[str, str] = {}
    for pair in context or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--context takes KEY=VALUE, got {pair!r}")
        ctx[key] = value
    from tactful_cli.main import _open

    with _open() as tf:
        result = tf.policy.explain(user, purpose, ctx)
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
        return
    out.print(f"[bold]{result.outcome}[/bold] for purpose {result.purpose}", highlight=False)
    out.print(result.explanation, highlight=False)
    table = Table("rule", "why")
    for r in result.reasons:
        table.add_row(r.id, r.description)
    out.print(table)
    out.print(f"may read: {', '.join(result.categories_allowed) or '(nothing)'}", highlight=False)
    out.print(f"context shown: {', '.join(result.context_fields) or '(none)'}", highlight=False)
    if result.excluded_item_categories:
        out.print(f"excluded items: {', '.join(result.excluded_item_categories)}")
    if result.diversity_floor:
        out.print(f"diversity floor: {result.diversity_floor:g}")
    if result.dp_aggregate:
        out.print("non-personalized list: differentially private release only")
    out.print(f"policy {result.policy_version} (hash {result.policy_hash[:12]})", highlight=False)


@policy_app.command("test")
def run_tests(directory: DirArg = None, as_json: AsJson = False) -> None:
    """Run the pack's tests/*.yaml cases; exit code 1 if any fails or there are none.

    Example: tactful policy test ./policies
    """
    report = test_policies(_dir(directory))
    if as_json:
        sys.stdout.write(report.model_dump_json() + "\n")
    else:
        for r in report.results:
            mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            out.print(f"{mark} {r.file}: {r.name}", highlight=False)
            for f in r.failures:
                out.print(f"     {f}", highlight=False, markup=False)
        if not report.results:
            out.print(f"no test cases in {report.directory}/tests/*.yaml", highlight=False)
        out.print(f"{report.passed} passed, {report.failed} failed")
    if not report.ok:
        raise typer.Exit(1)
