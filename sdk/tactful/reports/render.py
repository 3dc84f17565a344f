"""Render a report's sections as Markdown or as one self-contained HTML page."""

from __future__ import annotations

from html import escape

from tactful.reports.layout import Chart, Section, Table, sections
from tactful.reports.model import Report

TITLE = "Compliance audit report"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    """The report as Markdown: the same sections and tables as the HTML page, no charts."""
    lines = [f"# {TITLE}: {report.records.controller.name}", ""]
    for s in sections(report):
        lines += [f"## {s.title}", ""]
        for block in s.blocks:
            if isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
                lines.append("|" + "---|" * len(block.headers))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            elif isinstance(block, Chart):
                continue
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


CSS = """
:root { --ink: #1d2329; --muted: #5b6670; --line: #d6dbe0; --band: #f4f6f8; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); max-width: 980px; margin: 0 auto; padding: 24px 28px 48px; }
header { border-bottom: 3px solid var(--ink); margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
header p { color: var(--muted); margin: 0 0 12px; }
nav { font-size: 13px; margin: 8px 0 16px; }
nav a { color: var(--muted); margin-right: 12px; text-decoration: none; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; width: 100%; margin: 10px 0 14px; font-size: 13.5px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
figure { margin: 8px 0 18px; }
figcaption { font-size: 12.5px; color: var(--muted); }
svg.chart { max-width: 640px; display: block; }
svg.chart text { font: 11px system-ui, sans-serif; fill: var(--ink); }
svg.chart .axis { stroke: var(--muted); stroke-width: 1; }
svg.chart .legend { font-size: 11px; }
.marker { color: #8a5a00; }
footer { margin-top: 36px; font-size: 12px; color: var(--muted); }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  nav { display: none; }
  h2 { break-after: avoid; }
  table, figure { break-inside: avoid; }
  th { background: none; border-bottom: 1.5px solid #000; }
  a { color: inherit; text-decoration: none; }
  @page { margin: 16mm 14mm; }
}
"""


def _html_block(block: str | Table | Chart) -> str:
    if isinstance(block, Table):
        head = "".join(f"<th scope=col>{escape(h)}</th>" for h in block.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Chart):
        return f"<figure>{block.svg}<figcaption>{escape(block.alt)}</figcaption></figure>"
    cls = ' class="marker"' if "Not available in this store" in block else ""
    return f"<p{cls}>{escape(block)}</p>"


def _html_section(s: Section) -> str:
    inner = "".join(_html_block(b) for b in s.blocks)
    return f'<section id="{s.id}"><h2>{escape(s.title)}</h2>{inner}</section>'


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no script or fetch."""
    parts = sections(report)
    nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in parts)
    controller = escape(report.records.controller.name)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{TITLE}: {controller}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{TITLE}</h1><p>{controller} · policy pack "
        f"{escape(report.policy_pack.name)} {escape(report.policy_pack.version)} · generated "
        f"{escape(report.generated_at.strftime('%Y-%m-%d %H:%M UTC'))}</p></header>"
        f"<nav>{nav}</nav>"
        + "".join(_html_section(s) for s in parts)
        + f"<footer>{escape(report.format)} · tactful {escape(report.tactful_version)} · "
        f"policy pack SHA-256 {escape(report.policy_pack.hash)}</footer></body></html>\n"
    )
