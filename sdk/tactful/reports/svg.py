"""Inline SVG charts for the HTML report: stacked bars and lines, no script, no external asset.

Each chart is an `<svg class="chart" data-chart=NAME role="img">` with a `<title>` (read by
screen readers) and a legend; colors are also told apart by order and label, and print well.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 640
LABEL_W = 170
BAR_H = 18
GAP = 8
PALETTE = ("#2f6f4f", "#d08c2e", "#b23b3b", "#4a6fa5", "#7b5ea7", "#6b7b8c")


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _open(name: str, title: str, height: int) -> list[str]:
    return [
        f'<svg class="chart" data-chart="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
    ]


def _legend(series: Sequence[tuple[str, str]], y: int) -> list[str]:
    out, x = [], LABEL_W
    for label, color in series:
        out.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="{y + 9}" class="legend">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    return out


def stacked_bars(
    name: str,
    title: str,
    rows: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[str],
) -> str:
    """Horizontal stacked bars: one row per label, one segment per series, totals at the end."""
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    height = 26 + len(rows) * (BAR_H + GAP) + 4
    top = max((sum(v) for _, v in rows), default=0) or 1
    span = WIDTH - LABEL_W - 70
    out = _open(name, title, height)
    out += _legend(list(zip(series, colors, strict=True)), 4)
    for i, (label, values) in enumerate(rows):
        y = 26 + i * (BAR_H + GAP)
        out.append(
            f'<text x="{LABEL_W - 6}" y="{y + 13}" text-anchor="end" class="label">'
            f"{escape(label)}</text>"
        )
        x = float(LABEL_W)
        for value, color, part in zip(values, colors, series, strict=True):
            w = span * max(value, 0) / top
            if w > 0:
                out.append(
                    f'<rect class="bar" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR_H}" '
                    f'fill="{color}"><title>{escape(label)}: {escape(part)} {_num(value)}'
                    "</title></rect>"
                )
            x += w
        out.append(f'<text x="{x + 4:.1f}" y="{y + 13}" class="value">{_num(sum(values))}</text>')
    out.append("</svg>")
    return "".join(out)


def lines(
    name: str,
    title: str,
    buckets: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
) -> str:
    """A line chart over the period's buckets (first and last bucket labelled on the axis)."""
    height, left, right, top_pad, bottom = 220, 50, 16, 26, 30
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    peak = max((max(v, default=0) for _, v in series), default=0) or 1
    n = max(len(buckets) - 1, 1)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    out = _open(name, title, height)
    out += _legend([(label, c) for (label, _), c in zip(series, colors, strict=True)], 4)
    base = top_pad + plot_h
    out.append(
        f'<line class="axis" x1="{left}" y1="{base}" x2="{WIDTH - right}" y2="{base}"/>'
        f'<line class="axis" x1="{left}" y1="{top_pad}" x2="{left}" y2="{base}"/>'
        f'<text x="{left - 4}" y="{top_pad + 8}" text-anchor="end" class="label">'
        f"{_num(peak)}</text>"
        f'<text x="{left - 4}" y="{base}" text-anchor="end" class="label">0</text>'
    )
    if buckets:
        out.append(
            f'<text x="{left}" y="{height - 10}" class="label">{escape(buckets[0])}</text>'
            f'<text x="{WIDTH - right}" y="{height - 10}" text-anchor="end" class="label">'
            f"{escape(buckets[-1])}</text>"
        )
    for (label, values), color in zip(series, colors, strict=True):
        pts = " ".join(
            f"{left + plot_w * i / n:.1f},{base - plot_h * v / peak:.1f}"
            for i, v in enumerate(values)
        )
        if len(values) == 1:
            pts += f" {left + plot_w:.1f},{base - plot_h * values[0] / peak:.1f}"
        out.append(
            f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" '
            f'points="{pts}"><title>{escape(label)}: {_num(sum(values))} in the period'
            "</title></polyline>"
        )
    out.append("</svg>")
    return "".join(out)
