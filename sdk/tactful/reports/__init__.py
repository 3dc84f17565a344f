"""The compliance audit report: collect the store's own facts, render JSON, Markdown, HTML, CSV.

`collect` gathers aggregates (never personal data) into a `Report` (pydantic; its JSON Schema
is docs/report-schema.json); `AuditReport` renders it. See docs/reports.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tactful.reports.collect import check_period, collect, tactful_version
from tactful.reports.model import FORMAT, Report, Unavailable
from tactful.reports.records import records_csv
from tactful.reports.render import to_html, to_markdown


@dataclass(frozen=True)
class AuditReport:
    """A compliance audit report; `report` is the typed model, `data` its JSON-ready dict.

    Render it with `to_json`, `to_markdown`, `to_html` (self-contained page with inline SVG
    charts) or `to_csv` (the Art. 30 records, one row per processing activity).
    """

    report: Report

    @cached_property
    def data(self) -> dict[str, Any]:
        """The report as plain JSON types (what `to_json` writes)."""
        dumped: dict[str, Any] = self.report.model_dump(mode="json")
        return dumped

    def to_json(self) -> str:
        """The report as indented JSON, valid against docs/report-schema.json."""
        return json.dumps(self.data, indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        """The report as Markdown a person can read."""
        return to_markdown(self.report)

    def to_html(self) -> str:
        """The report as one self-contained HTML page with charts; prints well."""
        return to_html(self.report)

    def to_csv(self) -> str:
        """The records of processing activities (GDPR Art. 30) as CSV."""
        return records_csv(self.report.records)


def schema() -> dict[str, Any]:
    """The JSON Schema of a report (what docs/report-schema.json holds)."""
    out: dict[str, Any] = Report.model_json_schema(mode="serialization")
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = FORMAT
    return out


__all__ = [
    "AuditReport",
    "Report",
    "Unavailable",
    "check_period",
    "collect",
    "schema",
    "tactful_version",
    "to_html",
    "to_markdown",
]
