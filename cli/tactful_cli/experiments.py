"""`tactful experiments`: declare, list, stop experiments and report their DP results."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tactful import ExperimentResults, ValidationError

experiments_app = typer.Typer(
    help="Consent-aware experiments: declare, list, stop, and report results with DP.",
    no_args_is_help=True,
)
out = Console()


def _weights(variants: list[str]) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for spec in variants:
        name, _, weight = spec.partition("=")
        try:
            parsed[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValidationError(
                f"--variant {spec!r}: write NAME or NAME=WEIGHT (e.g. treatment=1)"
            ) from None
    return parsed


@experiments_app.command("declare")
def declare(
    experiment_id: Annotated[str, typer.Argument(help="The experiment id, e.g. homepage-blend.")],
    variant: Annotated[
        list[str],
        typer.Option("--variant", help="NAME or NAME=WEIGHT; repeat it (the first is control)."),
    ],
    purpose: Annotated[
        str, typer.Option("--purpose", help="The declared purpose it serves (improve.models).")
    ],
    metric: Annotated[
        list[str], typer.Option("--metric", help="An event kind that counts as a conversion.")
    ],
    description: Annotated[str, typer.Option("--description", help="What it tests.")] = "",
) -> None:
    """Declare an experiment (audit-logged); a declaration never changes afterwards.

    Example: tactful experiments declare homepage --variant control --variant blend=1
    --purpose improve.models --metric click
    """
    from tactful_cli.main import _open

    with _open() as tf:
        exp = tf.experiments.declare(
            experiment_id,
            variants=_weights(variant),
            purpose=purpose,
            metrics=metric,
            description=description,
        )
    out.print(
        f"experiment {exp.id} declared: variants {', '.join(v.name for v in exp.variants)}; "
        f"grant its budget with `tactful budget grant {exp.dataset} EPSILON --operator NAME`",
        highlight=False,
    )


@experiments_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List declared experiments: purpose, variants and weights, metrics, status."""
    from tactful_cli.main import _open

    with _open() as tf:
        found = tf.experiments.list()
    if as_json:
        sys.stdout.write(json.dumps([e.model_dump(mode="json") for e in found]) + "\n")
        return
    if not found:
        out.print("no experiments declared yet (tactful experiments declare ...)")
        return
    table = Table("experiment", "purpose", "variants (weight)", "metrics", "status")
    for e in found:
        table.add_row(
            e.id,
            e.purpose,
            ", ".join(f"{v.name} ({v.weight:g})" for v in e.variants),
            ", ".join(e.metrics),
            e.status,
        )
    out.print(table)


@experiments_app.command("stop")
def stop(
    experiment_id: Annotated[str, typer.Argument(help="The experiment id.")],
) -> None:
    """Stop an experiment: everyone gets the control from now on (audit-logged)."""
    from tactful_cli.main import _open

    with _open() as tf:
        exp = tf.experiments.stop(experiment_id)
    out.print(f"experiment {exp.id}: {exp.status}")


@experiments_app.command("report")
def report(
    experiment_id: Annotated[str, typer.Argument(help="The experiment id.")],
    epsilon: Annotated[
        float,
        typer.Option("--epsilon", help="Epsilon to spend on this release (from experiment.ID)."),
    ] = 1.0,
    last: Annotated[
        bool, typer.Option("--last", help="Show the latest release again; spends nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Release the experiment's results with differential privacy and show them.

    Per variant: exposed and converted users (noisy, 95% intervals), the conversion rate and
    its difference to the control with a 95% interval. Spends --epsilon from the budget of
    dataset experiment.ID (refused, spending nothing, if too little is left).

    Example: tactful experiments report homepage --epsilon 0.5 --json
    """
    from tactful_cli.main import _open

    with _open() as tf:
        if last:
            found = tf.experiments.last_results(experiment_id)
            if found is None:
                raise ValidationError(
                    f"experiment {experiment_id!r} has no released results yet; run "
                    "`tactful experiments report ID --epsilon E` to release them"
                )
            results = found
        else:
            results = tf.experiments.results(experiment_id, epsilon=epsilon)
    if as_json:
        sys.stdout.write(results.model_dump_json() + "\n")
        return
    _print(results)


def _print(r: ExperimentResults) -> None:
    table = Table(
        "variant",
        "exposed",
        "converted",
        "rate (95% CI)",
        "vs control (95% CI)",
        title=f"experiment {r.experiment}: ε {r.epsilon:g} from {r.dataset}",
    )
    diffs = {d.variant: d for d in r.differences}
    for v in r.variants:
        d = diffs.get(v.variant)
        table.add_row(
            v.variant,
            f"{v.exposed.value:.0f} [{v.exposed.low:.0f}, {v.exposed.high:.0f}]",
            f"{v.converted.value:.0f} [{v.converted.low:.0f}, {v.converted.high:.0f}]",
            f"{v.rate.value:.1%} [{v.rate.low:.1%}, {v.rate.high:.1%}]",
            "control"
            if d is None
            else f"{d.value:+.1%} [{d.low:+.1%}, {d.high:+.1%}]" + (" *" if d.significant else ""),
        )
    out.print(table)
    out.print(
        f"release {r.release_id} at {r.released_at:%Y-%m-%d %H:%M} UTC; * = interval excludes "
        "0. Counts are of consenting users only, with differential-privacy noise.",
        highlight=False,
    )
