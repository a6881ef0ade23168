"""``syncd verify``: compare both sides with the state database, report drift, heal it.

A periodic full comparison, so a record change detection missed becomes a reported (and,
with ``repair``, healed) drift instead of a silent loss. In order:

1. a full walk of the CRM (``changed_contacts`` from a fresh ``Cursor()`` until ``more`` is
   False; the stream cursors are never read or moved), page by page (:mod:`.verify_sides`);
2. a full export of Oki-Toki's contacts (tombstones included), in batches;
3. a sweep over every link: records gone from a side, dialer tasks (:mod:`.verify_links`);
4. the call log of the last ``[verify] calls_days`` days, up to where the calls stream has
   read for good, against the ``call`` table.

It spends requests like the backfill lane: before each page it stops when a system's daily
budget is below the share at which the low lanes pause, and reports what it covered
(``complete`` False, with the reason). Memory stays flat: one page at a time, and the ids a
walk met kept as 64-bit hashes. Repairs go through the normal paths (record the side's
record, mark links dirty, record calls), so the next push writes them through the outbox.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import islice
from typing import Any, Callable, Iterator

from sqlalchemy import select

from ..errors import BudgetExhausted, RetriableRemoteError
from ..model import Call, Cursor
from ..redact import redact
from ..store import acquire_lease, release_lease
from ..store.tables import CallRow
from . import cursors
from .context import Context
from .mapping import Side
from .drift import DriftReport, save_report
from .outbox import LOW_BUDGET_SHARE
from .cursors import EPOCH
from .verify_links import sweep_links
from .verify_sides import SeenIds, check_page

__all__ = ["verify", "record_missed_calls", "LEASE"]

CALL = CallRow.__table__
LEASE = "verify"
CALLS_STREAM = "okitoki:calls"
Progress = Callable[[str, int], None]


def verify(ctx: Context, *, repair: bool, progress: Progress | None = None,
           lease_ttl: timedelta = timedelta(hours=1)) -> DriftReport:
    """One full comparison; the report is stored (``verify_report``) and logged per kind.

    Only one instance verifies at a time (lease ``verify``); another gets a report that is
    not ``complete`` and says so. A low budget, a lost lease or a remote that stays down
    ends the walk early with a partial report; only a refusal (401/403/...) raises.
    """
    report = DriftReport(started_at=ctx.now(), repair=repair)
    if not _hold_lease(ctx, lease_ttl):
        report.stop("another instance is verifying now")
        report.finished_at = ctx.now()
        return report
    spent = _spent(ctx)
    try:
        _run(ctx, report, repair=repair, progress=progress, lease_ttl=lease_ttl)
    except BudgetExhausted as exc:
        report.stop(f"{exc.system or 'a system'} daily budget spent")
    except RetriableRemoteError as exc:   # throttled past its retries, or the remote is down
        report.stop(redact(f"stopped by the remote: {exc}")[:300])
    finally:
        release_lease(ctx.store, LEASE, ctx.instance_id)
    after = _spent(ctx)
    report.requests = {k: max(0, after[k] - spent.get(k, 0)) for k in after}
    report.finished_at = ctx.now()
    if not ctx.dry_run:
        save_report(ctx.store, report)
    report.log_lines()
    return report


def _run(ctx: Context, report: DriftReport, *, repair: bool, progress: Progress | None,
         lease_ttl: timedelta) -> None:
    def low(*systems: str) -> str | None:
        """Why verifying must stop now: shutdown, the lease lost, or a system's budget low."""
        if ctx.stopping():
            return "the daemon is stopping"
        if not _hold_lease(ctx, lease_ttl):
            return "another instance took over verifying"
        return next((why for s in systems if (why := _low(ctx, s))), None)

    walk_began = ctx.now()
    seen: dict[Side, SeenIds | None] = {"crm": _walk_crm(ctx, report, repair, progress, low),
                                       "okitoki": _walk_okitoki(ctx, report, repair, progress, low)}
    sweep_links(ctx, report, seen, walk_began=walk_began, repair=repair, progress=progress,
                should_stop=lambda: low("okitoki", "crm"))
    _check_calls(ctx, report, repair, progress, low)


def _hold_lease(ctx: Context, ttl: timedelta) -> bool:
    """Take or renew the ``verify`` lease (renewed before each page: a long walk keeps it)."""
    return acquire_lease(ctx.store, LEASE, ctx.instance_id, ttl=ttl, now=ctx.now())


def _spent(ctx: Context) -> dict[str, int]:
    budget = ctx.budget
    return {s: budget.used(s) for s in ("crm", "okitoki")} if budget is not None else {}


def _low(ctx: Context, system: str) -> str | None:
    """Why ``system`` must not be spent on verifying now (None: it may)."""
    budget = ctx.budget
    limit = budget.limits.get(system) if budget is not None else None
    if budget is None or limit is None:
        return None
    left = budget.remaining(system)
    if left is not None and left <= limit * LOW_BUDGET_SHARE:
        return f"{system} budget low: {left} of {limit} requests left today"
    return None


def _walk_crm(ctx: Context, report: DriftReport, repair: bool, progress: Progress | None,
              low: Callable[..., str | None]) -> SeenIds | None:
    """Every CRM contact, page by page; the ids met (None if the walk did not finish)."""
    seen = SeenIds()
    after = Cursor()
    limit = ctx.crm_capabilities.read_batch_size or 100
    while True:
        why = low("crm")
        if why:
            report.stop(why)
            return None
        fetched_at = ctx.now()
        page = ctx.crm.changed_contacts(after, limit)
        for u in page.unreadable:   # there, only not readable (the pulls quarantine it): not gone
            if u.id:
                seen.add(u.id)
        with ctx.store.begin() as conn:
            check_page(ctx, conn, "crm", page.contacts, report, seen, repair=repair, fetched_at=fetched_at)
        if progress is not None:
            progress("crm", len(seen))
        if not page.more or page.next == after:
            return seen
        after = page.next


def _walk_okitoki(ctx: Context, report: DriftReport, repair: bool, progress: Progress | None,
                  low: Callable[..., str | None]) -> SeenIds | None:
    """Every Oki-Toki contact (the export since 2000, tombstones included)."""
    seen = SeenIds()
    fetched_at = ctx.now()
    why = low("okitoki")
    if why:
        report.stop(why)
        return None
    def unreadable(u: Any) -> None:   # exported but not readable: there, so not gone
        if u.id:
            seen.add(u.id)

    for batch in _batches(ctx.okitoki.export_contacts(EPOCH, on_unreadable=unreadable), ctx.batch_size):
        with ctx.store.begin() as conn:
            check_page(ctx, conn, "okitoki", batch, report, seen, repair=repair, fetched_at=fetched_at)
        if progress is not None:
            progress("okitoki", len(seen))
        why = low("okitoki")
        if why:
            report.stop(why)
            return None
    return seen


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch


def _check_calls(ctx: Context, report: DriftReport, repair: bool, progress: Progress | None,
                 low: Callable[..., str | None]) -> None:
    """Calls of the last ``calls_days`` days that ended before the calls stream's last
    completed sweep (every call visible by then has been read) and have no ``call`` row: the
    stream missed them (a call longer than the sweep window, an outage, a bug)."""
    days = ctx.config.verify.calls_days
    if not days:
        return
    from .calls import SWEEP

    with ctx.store.begin() as conn:
        cur = cursors.load(conn, CALLS_STREAM)
        sweep = cursors.load(conn, SWEEP)
    read_to = sweep.value or cur.value
    if read_to is None:
        report.notes.append("call log not checked: the calls stream has not read it yet")
        return
    now = ctx.now()
    start = now - timedelta(days=days)
    end = min(now, read_to) - ctx.config.calls.settle_delay
    if end <= start:
        return
    why = low("okitoki")
    if why:
        report.stop(why)
        return
    for batch in _batches(ctx.okitoki.call_log(start, end), ctx.batch_size):
        report.read["calls"] += len(batch)
        with ctx.store.begin() as conn:
            known = {r[0] for r in conn.execute(select(CALL.c.session_id).where(
                CALL.c.session_id.in_([c.session_id for c in batch])))}
            missing = [c for c in batch if c.session_id not in known
                       and c.started_at + timedelta(seconds=max(0, c.duration_s)) < end]
            for call in missing:
                report.add("call_missing", f"session {call.session_id}")
            if repair and missing:
                got = record_missed_calls(ctx, conn, missing)
                report.repairs["call_missing"] += len(missing) - int(got.get("waiting_for_crm", 0))
        if progress is not None:
            progress("calls", report.read["calls"])


def record_missed_calls(ctx: Context, conn: Any, calls: list[Call]) -> Counter[str]:
    """Record calls the calls stream missed, exactly as it records the ones it reads.

    The one seam into :mod:`.calls` (its internals are its own): a call to a number no link
    knows yet is held back there as it would be in the stream."""
    from . import calls as calls_flow

    caught_up = cursors.load(conn, calls_flow.CRM_CAUGHT_UP).value
    counts, _held = calls_flow.record_calls(ctx, conn, calls, caught_up)
    return counts
