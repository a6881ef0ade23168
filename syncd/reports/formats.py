"""Writing a :class:`~syncd.reports.query.Report` as a terminal table, CSV, JSON or XLSX.

Every writer consumes the rows one at a time, so an export of a million journal rows holds
one batch in memory, not the journal. XLSX goes through openpyxl's write-only workbook
(rows are streamed to a temporary file); a sheet holds at most Excel's 1,048,576 rows, so a
bigger export continues on further sheets.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import IO, Any, Iterable

from .query import Report

__all__ = ["write_table", "write_csv", "write_json", "write_xlsx", "cell"]

XLSX_ROWS = 1_048_576 - 1     # one header row per sheet
_WIDTH = {"time": 26, "started_at": 26, "error": 60, "errors": 60, "counts": 40, "records": 40}


def cell(value: Any) -> Any:
    """A value as exports show it: times in ISO 8601 UTC, None as empty."""
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def write_table(report: Report, out: IO[str]) -> int:
    """Aligned columns for a terminal; long text is cut to its column. Returns the row count."""
    widths = [_WIDTH.get(c, max(len(c), 12)) for c in report.columns]

    def line(values: Iterable[Any]) -> str:
        parts = []
        for value, width in zip(values, widths):
            text = str(cell(value)).replace("\n", " ")
            parts.append((text[:width - 1] + "…") if len(text) > width else text.ljust(width))
        return "  ".join(parts).rstrip()

    out.write(line(report.columns) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    n = 0
    for row in report.rows:
        out.write(line(row) + "\n")
        n += 1
    out.write(f"({n} row{'s' if n != 1 else ''})\n")
    return n


def write_csv(report: Report, out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(report.columns)
    n = 0
    for row in report.rows:
        writer.writerow([_csv_cell(v) for v in row])
        n += 1
    return n


def _csv_cell(value: Any) -> Any:
    value = cell(value)
    # A remote's error text is not ours: never let a spreadsheet run it as a formula.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_json(report: Report, out: IO[str]) -> int:
    """A JSON array of objects, written element by element."""
    out.write("[")
    n = 0
    for row in report.rows:
        out.write(("," if n else "") + "\n  " + json.dumps(
            {c: (v.isoformat() if isinstance(v, datetime) else v) for c, v in zip(report.columns, row)},
            ensure_ascii=False, default=str))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


def write_xlsx(report: Report, path: str) -> int:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet, on_sheet, n = None, XLSX_ROWS, 0
    for row in report.rows:
        if on_sheet >= XLSX_ROWS:
            sheet = book.create_sheet(title=f"{report.title[:24]} {len(book.worksheets) + 1}"
                                      if book.worksheets else report.title[:31])
            sheet.append(report.columns)
            on_sheet = 0
        sheet.append([_xlsx_cell(v) for v in row])
        on_sheet += 1
        n += 1
    if sheet is None:
        book.create_sheet(title=report.title[:31]).append(report.columns)
    book.save(path)
    return n


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)   # Excel has no zones; the columns say UTC
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] == "=":
        return "'" + value                  # openpyxl would store it as a formula
    return value
