"""``syncd journal`` and ``syncd history``: the API call journal and the job runs, filtered,
grouped and exported (``--format table|csv|xlsx|html|json``, ``-o FILE``)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Callable

from ..atomic_file import replacing
from ..durations import parse_duration
from .formats import write_csv, write_json, write_table, write_xlsx
from .html import write_html
from .query import GROUPS, Filters, Report, history, history_grouped, journal, journal_grouped, journal_hourly

__all__ = ["add_arguments", "run", "parse_when"]

FORMATS = ("table", "csv", "xlsx", "html", "json")


def parse_when(value: str, now: datetime) -> datetime:
    """``24h`` (that long ago), ``2026-12-01`` or ``2026-12-01T08:00`` (UTC unless a zone is
    given) → aware UTC; ValueError with a readable message otherwise."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f'"{value}" is neither a duration ("24h", "7d") nor a date or time '
                         f'("2026-12-01", "2026-12-01T08:00")') from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("--since", default="24h", metavar="WHEN",
                        help='start: a duration ago ("24h", "7d") or a UTC date/time (default 24h)')
    parser.add_argument("--until", metavar="WHEN", help="end (exclusive), same forms; default now")
    if kind == "journal":
        parser.add_argument("--system", choices=["okitoki", "crm"])
        parser.add_argument("--operation", metavar="OP", help="one operation, e.g. create_task")
        parser.add_argument("--status", metavar="CODE",
                            help='an HTTP status, "error" (4xx, 5xx, no answer) or "none" (no answer)')
    else:
        parser.add_argument("--job", metavar="JOB", help="one job, e.g. pull:crm:contacts")
        parser.add_argument("--state", choices=["ok", "error"])
    parser.add_argument("--by", metavar="KEYS", help=f"counts per group, comma separated from: "
                        f"{', '.join(GROUPS[kind])}")
    parser.add_argument("--format", choices=FORMATS,
                        help="output format (default: from the -o file's extension, else table)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to this file (xlsx needs one)")


def _filters(args: argparse.Namespace, kind: str, now: datetime) -> Filters:
    since = parse_when(args.since, now) if args.since else None
    until = parse_when(args.until, now) if args.until else None
    if kind == "journal":
        status = args.status
        if status and status not in ("error", "none") and not (status.isdigit() and 100 <= int(status) <= 599):
            raise ValueError(f'--status: "{status}" is not an HTTP status, "error" or "none"')
        return Filters(since, until, system=args.system, operation=args.operation, status=status)
    return Filters(since, until, job=args.job, state=args.state)


def _groups(args: argparse.Namespace, kind: str) -> list[str]:
    if not args.by:
        return []
    keys = [k.strip() for k in args.by.split(",") if k.strip()]
    bad = [k for k in keys if k not in GROUPS[kind]]
    if bad or not keys:
        raise ValueError(f'--by: {", ".join(bad) or "nothing"} is not one of {", ".join(GROUPS[kind])}')
    return list(dict.fromkeys(keys))


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
    return suffix if suffix in FORMATS and suffix != "table" else "table"


def run(args: argparse.Namespace, kind: str, store: Any, price: float | None) -> int:
    """Write the report; returns the exit code (2 for a bad option, with one line saying why)."""
    now = datetime.now(UTC)
    try:
        f = _filters(args, kind, now)
        by = _groups(args, kind)
        fmt = _format(args)
        if fmt == "xlsx" and not args.output:
            raise ValueError("--format xlsx needs -o FILE (a spreadsheet is not terminal output)")
    except ValueError as exc:
        print(f"syncd {kind}: {exc}", file=sys.stderr)
        return 2
    if kind == "journal":
        report = journal_grouped(store, f, by, price) if by else journal(store, f)
    else:
        report = history_grouped(store, f, by) if by else history(store, f)
    span = f"{f.since.isoformat() if f.since else 'the beginning'} to {(f.until or now).isoformat()}"
    if fmt == "xlsx":
        return _to_file(args.output, lambda path: write_xlsx(report, path))
    writer = _writer(fmt, report, store, f, span, kind)
    if args.output:
        return _to_file(args.output, lambda path: _write_text(path, writer))
    writer(sys.stdout)
    return 0


def _writer(fmt: str, report: Report, store: Any, f: Filters, span: str, kind: str) -> Callable[[IO[str]], int]:
    if fmt == "csv":
        return lambda out: write_csv(report, out)
    if fmt == "json":
        return lambda out: write_json(report, out)
    if fmt == "html":
        hourly = journal_hourly(store, f) if kind == "journal" else None
        return lambda out: write_html(report, out, hourly=hourly, subtitle=span)
    return lambda out: write_table(report, out)


def _write_text(path: str, writer: Callable[[IO[str]], int]) -> int:
    with open(path, "w", encoding="utf-8", newline="") as out:
        return writer(out)


def _to_file(output: str, write: Callable[[str], int]) -> int:
    """Write through a temporary file beside ``output`` and rename it, so a reader never sees
    half an export; print how many rows went out."""
    target = Path(output)
    with replacing(target) as tmp:
        n = write(str(tmp))
    print(f"{n} row{'s' if n != 1 else ''} written to {target}", file=sys.stderr)
    return 0
