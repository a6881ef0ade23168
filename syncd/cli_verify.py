"""``syncd verify [--repair] [--json]``: compare both sides with the state database.

Exit codes: 0 no drift; 1 drift found (whether or not ``--repair`` queued the repairs: a
script watching the exit code learns that something had drifted); 75 (EX_TEMPFAIL) the walk
stopped early (daily budget low, another instance verifying) and found no drift in the part it
covered; 78 a configuration problem (handled by :func:`syncd.cli.main`).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from .engine.drift import KINDS

__all__ = ["main", "run_verify", "render_report", "terminal_progress", "EX_TEMPFAIL"]

EX_TEMPFAIL = 75
PHASES = {"crm": "CRM contacts", "okitoki": "Oki-Toki contacts", "links": "links", "calls": "calls"}


def terminal_progress(stream: Any = None, every: float = 0.5) -> Callable[[str, int], None] | None:
    """A progress callback writing one updating line to a terminal (None when not a TTY)."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    last = [0.0]

    def show(phase: str, done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            stream.write(f"\rverify: {done:,} {PHASES.get(phase, phase)} checked\x1b[K")
            stream.flush()
    return show


def render_report(report: dict[str, Any]) -> list[str]:
    """The report as a table a person reads (kind, records, repaired, sample ids)."""
    state = "complete" if report["complete"] else "INCOMPLETE"
    mode = "with repair" if report["repair"] else "report only"
    lines = [f"verify ({mode}): {state}, {report['drift']} record(s) in drift",
             f"{'kind':<18} {'records':>8} {'repaired':>9}  sample"]
    repairs, samples = report.get("repairs") or {}, report.get("samples") or {}
    for kind in KINDS:
        sample = ", ".join(samples.get(kind, [])[:3])
        more = len(samples.get(kind, [])) > 3 or report["counts"][kind] > len(samples.get(kind, []))
        lines.append(f"{kind:<18} {report['counts'][kind]:>8} {repairs.get(kind, 0):>9}  "
                     f"{sample}{' ...' if sample and more else ''}")
    read = ", ".join(f"{k}={v}" for k, v in sorted((report.get("read") or {}).items()))
    spent = ", ".join(f"{k}={v}" for k, v in sorted((report.get("requests") or {}).items()))
    lines.append(f"read: {read or 'nothing'}; requests: {spent or 'not counted'}")
    lines += [f"note: {n}" for n in report.get("notes") or []]
    if report["repair"] and report["drift"]:
        lines.append("repairs are queued in the outbox: the daemon's next push writes them "
                     "(or run `syncd once`)")
    elif report["drift"]:
        lines.append("run `syncd verify --repair` to heal it (the daemon does on its own schedule)")
    return lines


def run_verify(syncer: Any, *, repair: bool) -> tuple[dict[str, Any], int]:
    """Run verify on ``syncer``; (the report as a dict, the exit code)."""
    progress = terminal_progress()
    try:
        run = syncer.verify(repair=repair, progress=progress)
    finally:
        if progress is not None:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
    report = run.drift.as_dict()
    if report["drift"]:
        return report, 1
    return report, 0 if report["complete"] else EX_TEMPFAIL


def main(args: Any) -> int:
    """``syncd verify``: build the syncer from the configuration, verify, print, exit code."""
    from .cli_common import build_syncer, emit, load, out
    from .logs import configure_logging
    from .store import check_schema

    config = load(args)
    configure_logging(config.daemon.log_format, "error")   # the report printed says it all
    check_schema(config.daemon.state_url)
    syncer = build_syncer(config)
    try:
        report, code = run_verify(syncer, repair=args.repair)
    finally:
        syncer.close()
    if args.json:
        emit(report, True)
    else:
        for line in render_report(report):
            out(line)
    return code
