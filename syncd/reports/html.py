"""A journal as one self-contained HTML file: a chart of requests per hour by operation and
status, then the table. No scripts, fonts or images from anywhere: the chart is inline SVG,
the styles inline CSS, so the file opens the same offline, attached to a ticket or a bill.

The chart comes from a grouped query (a few hundred rows at most); the table is streamed row
by row, so a million-row journal is written in bounded memory.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from html import escape
from typing import IO

from .formats import cell
from .query import Report

__all__ = ["write_html", "chart_svg"]

PALETTE = ["#2b6cb0", "#2f855a", "#b7791f", "#805ad5", "#c05621", "#2c7a7b", "#b83280",
           "#4a5568", "#718096", "#d69e2e", "#38a169", "#3182ce"]
# errors stand out whatever the operation
STATUS_COLOUR = {"429": "#e53e3e", "5xx": "#9b2c2c", "4xx": "#dd6b20", "no answer": "#1a202c"}
MAX_BARS = 24 * 31

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1a202c}
h1{font-size:20px;margin:0 0 4px} .meta{color:#4a5568;margin-bottom:16px}
table{border-collapse:collapse;width:100%;font-size:12px} th,td{border:1px solid #e2e8f0;
padding:3px 6px;text-align:left;vertical-align:top} th{background:#edf2f7;position:sticky;top:0}
tr:nth-child(even) td{background:#f7fafc} .legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
figure{margin:0 0 20px} figcaption{color:#4a5568;font-size:12px}
"""


def _series_colour(operation: str, status: str, operations: list[str]) -> str:
    if status in STATUS_COLOUR:
        return STATUS_COLOUR[status]
    return PALETTE[operations.index(operation) % len(PALETTE)]


def chart_svg(hourly: list[tuple[str, str, str, int]], width: int = 960, height: int = 260) -> str:
    """Stacked bars: one per hour (per day past a month of hours), one band per operation and
    status (errors in their own colours). Empty input draws an axis with "no requests"."""
    buckets: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    by_day = len({h for h, *_ in hourly}) > MAX_BARS
    for hour, operation, status, n in hourly:
        key = hour[:10] if by_day else hour
        buckets[key][(operation, status if status in STATUS_COLOUR else "ok")] += int(n)
    labels = sorted(buckets)
    operations = sorted({op for _, op, _, _ in hourly})
    series = sorted({s for b in buckets.values() for s in b})
    top = max((sum(b.values()) for b in buckets.values()), default=0)
    left, bottom, plot_h = 48, 40, height - 60
    plot_w = width - left - 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" aria-label="requests per '
             f'{"day" if by_day else "hour"}">',
             f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" stroke="#4a5568"/>',
             f'<line x1="{left}" y1="10" x2="{left}" y2="{10 + plot_h}" stroke="#4a5568"/>']
    if not labels:
        parts.append(f'<text x="{left + 10}" y="{height // 2}" fill="#4a5568">no requests</text></svg>')
        return "".join(parts)
    for frac in (0.5, 1.0):
        y = 10 + plot_h - plot_h * frac
        parts.append(f'<text x="{left - 6}" y="{y + 4:.0f}" text-anchor="end" font-size="11">'
                     f'{round(top * frac)}</text>')
    step = plot_w / len(labels)
    bar = max(1.0, step * 0.8)
    for i, label in enumerate(labels):
        x, y = left + i * step + (step - bar) / 2, 10 + plot_h
        for key in series:
            n = buckets[label].get(key, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            operation, status = key
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{_series_colour(operation, status, operations)}">'
                         f'<title>{escape(label)} {escape(operation)} {escape(status)}: {n}</title></rect>')
        if len(labels) <= 24 or i % max(1, len(labels) // 12) == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 24}" font-size="10" '
                         f'text-anchor="middle">{escape(label[-5:] if not by_day else label[5:])}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{_series_colour(op, st, operations)}"></i>'
                     f'{escape(op)}{"" if st == "ok" else " " + escape(st)}</span>' for op, st in series)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def write_html(report: Report, out: IO[str], *, hourly: list[tuple[str, str, str, int]] | None,
               subtitle: str = "") -> int:
    made = datetime.now(UTC).replace(microsecond=0).isoformat()
    out.write(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
              f'{escape(report.title)}</title><style>{_CSS}</style></head><body>'
              f'<h1>{escape(report.title)}</h1><div class="meta">{escape(subtitle)} '
              f'· made {made} · times in UTC</div>')
    if hourly is not None:
        out.write(f'<figure>{chart_svg(hourly)}<figcaption>Requests per hour by operation; '
                  f'throttled (429), refused (4xx), failed (5xx) and unanswered requests in '
                  f'their own colours.</figcaption></figure>')
    out.write('<table><thead><tr>' + "".join(f"<th>{escape(c)}</th>" for c in report.columns)
              + "</tr></thead><tbody>\n")
    n = 0
    for row in report.rows:
        out.write("<tr>" + "".join(f"<td>{escape(str(cell(v)))}</td>" for v in row) + "</tr>\n")
        n += 1
    out.write(f'</tbody></table><p class="meta">{n} row{"s" if n != 1 else ""}</p></body></html>\n')
    return n
