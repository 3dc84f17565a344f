"""Experiments in the compliance report and in the `tactful experiments` CLI, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tactful import Tactful
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES, REPO

PURPOSE = "improve.models"


def _run(tf: Tactful, users: int) -> None:
    tf.experiments.declare(
        "home", variants={"control": 1, "treatment": 1}, purpose=PURPOSE, metrics=["click"]
    )
    for i in range(users):
        tf.consent.grant(f"u{i}", [PURPOSE])
        tf.experiments.assign("home", f"u{i}")
        if i % 2:
            tf.experiments.convert("home", f"u{i}", "click")


def test_report_lists_experiments_with_budget_and_releases(tf: Tactful) -> None:
    _run(tf, 6)
    tf.aggregates.grant("experiment.home", 2.0, operator="dpo")
    tf.experiments.results("home", epsilon=0.5)
    report = tf.report()
    (facts,) = report.report.experiments.experiments  # type: ignore[union-attr]
    assert (facts.experiment, facts.purpose, facts.status) == ("home", PURPOSE, "running")
    assert facts.variants == {"control": 1.0, "treatment": 1.0} and facts.control == "control"
    assert (facts.exposed, facts.releases) == (6, 1)
    assert (facts.epsilon_granted, facts.epsilon_spent) == (2.0, 0.5)
    schema = json.loads((REPO / "docs" / "report-schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(report.to_json()))
    markdown = report.to_markdown()
    assert "## Experiments" in markdown and "| home | improve.models | running |" in markdown
    assert 'id="experiments"' in report.to_html()


def test_public_report_withholds_exact_exposure_counts(tf: Tactful) -> None:
    _run(tf, 3)
    tf.aggregates.grant("reports", 1.0, operator="dpo")
    (facts,) = tf.report(public=True).report.experiments.experiments  # type: ignore[union-attr]
    assert facts.exposed is None


def test_withdrawn_users_rows_are_pruned_by_the_next_release(tf: Tactful) -> None:
    _run(tf, 4)
    tf.consent.withdraw("u1", PURPOSE)
    assert tf.report().report.experiments.experiments[0].exposed == 4  # type: ignore[union-attr]
    tf.aggregates.grant("experiment.home", 1.0, operator="dpo")
    tf.experiments.results("home", epsilon=1.0)
    assert tf.report().report.experiments.experiments[0].exposed == 3  # type: ignore[union-attr]


def test_cli_declares_lists_and_reports_as_table_and_json(db_url: str, tmp_path: Path) -> None:
    assert tactful("init", db=db_url, home=tmp_path).returncode == 0
    declared = tactful(
        "experiments",
        "declare",
        "home",
        "--variant",
        "control",
        "--variant",
        "treatment=2",
        "--purpose",
        PURPOSE,
        "--metric",
        "click",
        db=db_url,
        home=tmp_path,
    )
    assert declared.returncode == 0, declared.stderr
    listed = json.loads(tactful("experiments", "list", "--json", db=db_url, home=tmp_path).stdout)
    assert [(v["name"], v["weight"]) for v in listed[0]["variants"]] == [
        ("control", 1.0),
        ("treatment", 2.0),
    ]
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        for i in range(8):
            tf.consent.grant(f"u{i}", [PURPOSE])
            tf.experiments.assign("home", f"u{i}")
    refused = tactful("experiments", "report", "home", db=db_url, home=tmp_path)
    assert refused.returncode == 1 and "experiment.home" in refused.stderr
    assert "Traceback" not in refused.stderr
    grant = ("budget", "grant", "experiment.home", "2", "--operator", "dpo", "--yes")
    assert tactful(*grant, db=db_url, home=tmp_path).returncode == 0
    shown = tactful("experiments", "report", "home", "--epsilon", "0.5", db=db_url, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "treatment" in shown.stdout and "rate" in shown.stdout
    as_json = tactful(
        "experiments", "report", "home", "--epsilon", "0.5", "--json", db=db_url, home=tmp_path
    )
    released = json.loads(as_json.stdout)
    assert [v["variant"] for v in released["variants"]] == ["control", "treatment"]
    assert released["differences"][0]["versus"] == "control"
    again = tactful("experiments", "report", "home", "--last", "--json", db=db_url, home=tmp_path)
    assert json.loads(again.stdout) == released
    budget = json.loads(
        tactful("budget", "show", "experiment.home", "--json", db=db_url, home=tmp_path).stdout
    )
    assert budget[0]["spent"] == 1.0
