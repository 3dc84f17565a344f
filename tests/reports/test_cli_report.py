"""`tactful report audit` in every format, with a period and --public, as a subprocess."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tactful import Tactful
from tests.cli.test_cli import tactful
from tests.conftest import POLICIES
from tests.reports.conftest import seed_report


def _seed(db_url: str, home: Path) -> None:
    with Tactful.open(db_url=db_url, key_file=home / "master.key", policies=POLICIES) as tf:
        seed_report(tf)


def test_report_command_writes_html_csv_and_a_period_json(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    page = tmp_path / "report.html"
    html = tactful(
        "report", "audit", "--format", "html", "--out", str(page), db=db_url, home=tmp_path
    )
    assert html.returncode == 0, html.stderr
    assert page.read_text().startswith("<!DOCTYPE html>") and 'data-chart="decisions"' in (
        page.read_text()
    )
    as_csv = tactful("report", "audit", "--format", "csv", db=db_url, home=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    assert len(list(csv.DictReader(io.StringIO(as_csv.stdout)))) == 7  # one per purpose
    future = tactful(
        "report", "audit", "--format", "json", "--since", "2999-01-01", db=db_url, home=tmp_path
    )
    assert future.returncode == 0, future.stderr
    document = json.loads(future.stdout)
    assert document["period"]["since"].startswith("2999-01-01T00:00:00")
    assert document["decisions"]["total"] == 0


def test_public_flag_and_a_reversed_period(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    no_budget = tactful("report", "audit", "--public", db=db_url, home=tmp_path)
    assert no_budget.returncode == 1 and "no privacy budget" in no_budget.stderr
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf:
        tf.aggregates.grant("reports", 1.0, operator="dpo")
    public = tactful(
        "report",
        "audit",
        "--format",
        "json",
        "--public",
        "--epsilon",
        "0.25",
        db=db_url,
        home=tmp_path,
    )
    assert public.returncode == 0, public.stderr
    consent = json.loads(public.stdout)["consent"]
    assert consent["public"] is True and consent["dp"]["epsilon_spent"] == 0.25
    bad = tactful(
        "report",
        "audit",
        "--since",
        "2026-02-01",
        "--until",
        "2026-01-01",
        db=db_url,
        home=tmp_path,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: the period is empty")
