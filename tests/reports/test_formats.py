"""The report's formats: JSON valid against docs/report-schema.json, Markdown, CSV, HTML.

The HTML test renders the page in headless Chromium (Debian's `chromium`, which .ci/run
installs); on a machine without it the test fails and says how to install it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import jsonschema
import pytest

from tactful import AuditReport, Tactful
from tactful.reports import schema
from tests.conftest import REPO
from tests.reports.conftest import Truth

SCHEMA_FILE = REPO / "docs" / "report-schema.json"
CHARTS = {
    "consent-states",
    "consent-trend",
    "requests",
    "decisions",
    "categories",
    "decisions-trend",
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_docs_schema_is_the_one_generated_from_the_model() -> None:
    on_disk = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert on_disk == schema(), (
        'docs/report-schema.json is stale; regenerate it: python -c "import json; from '
        'tactful.reports import schema; print(json.dumps(schema(), indent=2, sort_keys=True))"'
        " > docs/report-schema.json"
    )


def test_json_report_validates_against_the_schema(seeded: tuple[Tactful, Truth]) -> None:
    tf, truth = seeded
    tf.aggregates.grant("reports", 1.0, operator="dpo")
    for report in (tf.report(since=truth.since, until=truth.until), tf.report(public=True)):
        document = json.loads(report.to_json())
        jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(document)
        assert document["format"] == "tactful-audit-report/3"


def test_schema_rejects_a_report_missing_a_section(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    document = json.loads(tf.report().to_json())
    del document["integrity"]
    with pytest.raises(jsonschema.ValidationError, match="integrity"):
        jsonschema.validate(document, json.loads(SCHEMA_FILE.read_text()))


def test_markdown_has_every_section_and_the_numbers(seeded: tuple[Tactful, Truth]) -> None:
    tf, truth = seeded
    md = tf.report(since=truth.since, until=truth.until).to_markdown()
    for title in (
        "Period and scope",
        "Records of processing activities (GDPR Art. 30)",
        "Consent",
        "Data subject requests",
        "Gate decisions",
        "Privacy budget",
        "Integrity",
    ):
        assert f"\n## {title}\n" in md
    assert "| personalization | 2 | 1 | 1 | 1 | 3 | 1 | 1 |" in md  # given..refused, trend
    assert "| access | 3 | 2 | 1 | 1 | 14.50 | 1 |" in md
    assert "9 decisions in the period" in md


def test_csv_has_one_art30_row_per_purpose(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    rows = list(csv.DictReader(io.StringIO(tf.report().to_csv())))
    assert [r["purpose"] for r in rows] == tf.pack.purposes.ids()
    email = next(r for r in rows if r["purpose"] == "marketing.email")
    assert email["recipients"] == "e-mail delivery processor"
    assert email["retention_days"] == "730" and email["lawful_basis"] == "consent"
    assert all(r["controller"] == tf.pack.meta.controller.name for r in rows)
    assert "AES-256-GCM" in rows[0]["security_measures"]


def test_html_is_self_contained(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    page = tf.report().to_html()
    assert "<script" not in page and "@import" not in page
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page)
    assert all(ref.startswith("#") for ref in refs), refs
    assert "url(" not in page
    assert "@media print" in page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "headless Chromium is needed to test the HTML report and is not installed: "
            "run `apt-get install -y chromium` (Debian/Ubuntu; .ci/run does it)"
        )
    return found


def _render(report: AuditReport, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    page = tmp_path / "report.html"
    page.write_text(report.to_html(), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_html_renders_in_chromium_with_its_charts(
    seeded: tuple[Tactful, Truth], tmp_path: Path
) -> None:
    tf, truth = seeded
    report = tf.report(since=truth.since, until=truth.until)
    dom = _render(report, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    charts = set(re.findall(r'<svg class="chart" data-chart="([a-z-]+)"', dom.stdout))
    assert charts == CHARTS
    assert dom.stdout.count('<rect class="bar"') >= 5
    assert "<polyline" in dom.stdout
    pdf = tmp_path / "report.pdf"
    printed = _render(report, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000
