"""Change capture rules every stream's walk follows, whatever its source (the cursors' policy).

* **Overlap.** A walk starts ``overlap`` before the moment the previous complete walk began
  (or at the cursor, if that is earlier): a change that became visible late (a transaction
  that committed after its change time, a search index that lags) is still read. What was
  already seen is recognised by the stored side values and costs only the read.
* **Never past now.** A change time later than the moment of the read never moves a cursor
  past that moment: the record is processed, and read again by the next walk until the clock
  catches up (dropped then as unchanged). One later than now + ``clock_skew`` is a *future
  time*: a warning names it and ``syncd status`` shows it (a wrong clock or a bad import would
  otherwise stop change detection for good).
* **Unreadable records** are quarantined alone (a dead letter with the id and the reason);
  the walk goes past them. A fixed record, read fine later, resolves its dead letter.
* **Untracked rows** (no change time, or one that is not a time) are counted and reported.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Iterable

import structlog
from sqlalchemy import Connection, and_, delete, insert, select

from ..model import Contact, Cursor, Unreadable, Untracked
from ..store.tables import StreamAlert
from .ingest import quarantine

__all__ = ["walk_start", "clamped", "FutureTimes", "quarantine_unreadable", "report_untracked",
           "set_alert", "clear_alert", "alerts", "ALERT"]

log = structlog.get_logger()
ALERT = StreamAlert.__table__
SAMPLE = 20


#: A change time this close to a read may still be given to a row written after the read
#: (whole-second timestamps: a row written later in the same second carries the same time,
#: even the same row edited again), so every walk reads at least this much again.
OPEN_TIME = timedelta(seconds=1)


def walk_start(position: Cursor, last_walk_began: datetime | None, overlap: timedelta) -> Cursor:
    """Where a walk starts: ``position`` (the stored cursor), or the re-read window's start
    when the position lies inside it (then without a tie id: everything from that time on).

    The window is ``overlap`` before the last walk began, and never less than
    :data:`OPEN_TIME`. Before any walk completed, the cursor's own (whole) second is read
    again: a row of that second may have been edited since within the same second."""
    if position.updated_at is None:
        return position
    if last_walk_began is None:
        return Cursor(position.updated_at, None)
    reread = last_walk_began - max(overlap, OPEN_TIME)
    if position.updated_at <= reread:
        return position
    return Cursor(reread, None)


def clamped(position: Cursor, read_at: datetime) -> Cursor:
    """The position a cursor may store: never past ``read_at`` (the local time of the read)."""
    if position.updated_at is not None and position.updated_at > read_at:
        return Cursor(read_at, None)
    return position


class FutureTimes:
    """Records of one walk whose change time is later than the read + ``skew``."""

    def __init__(self, stream: str, skew: timedelta) -> None:
        self.stream, self.skew = stream, skew
        self.found: list[tuple[str, datetime]] = []

    def check(self, records: Iterable[Contact], read_at: datetime) -> None:
        limit = read_at + self.skew
        for r in records:
            at = r.updated_at
            if isinstance(at, datetime) and at.tzinfo is not None and at > limit:
                if len(self.found) < 1000:
                    self.found.append((r.id, at))
                log.warning("change_time_in_future", stream=self.stream, record_id=r.id,
                            updated_at=at.isoformat(), read_at=read_at.isoformat(),
                            hint="the record is synced, but its change time is ahead of this "
                                 "host's clock by more than clock_skew: check the clocks or "
                                 "the data")

    def store(self, conn: Connection, now: datetime) -> None:
        """After a complete walk: the alert is what this walk found (none clears it)."""
        if self.found:
            set_alert(conn, self.stream, "future_time", len(self.found),
                      [f"{i} at {at.isoformat()}" for i, at in self.found[:SAMPLE]], now)
        else:
            clear_alert(conn, self.stream, "future_time")


def quarantine_unreadable(conn: Connection, side: str, records: Iterable[Unreadable],
                          now: datetime) -> int:
    """A dead letter per unreadable record (idempotent per record and version)."""
    n = 0
    for u in records:
        stamp = u.updated_at.isoformat() if isinstance(u.updated_at, datetime) else \
            hashlib.sha1(repr(sorted(u.raw.items())).encode("utf-8", "backslashreplace")).hexdigest()[:16]
        quarantine(conn, side=side, record_id=u.id, reason=u.reason, payload=u.raw, now=now,
                   stamp=stamp)
        n += 1
    return n


def report_untracked(conn: Connection, stream: str, side: str, found: Untracked, now: datetime) -> None:
    """Store and log what change detection cannot see; quarantine the unreadable times."""
    if found.null:
        set_alert(conn, stream, "untracked_null", found.null, [], now)
        log.warning("rows_without_change_time", stream=stream, count=found.null,
                    hint="rows whose change time is NULL are never read by change detection; "
                         "the application must set it on every change")
    else:
        clear_alert(conn, stream, "untracked_null")
    if found.unreadable_total:
        set_alert(conn, stream, "unreadable_time", found.unreadable_total,
                  [f"{u.id}: {u.reason}" for u in found.unreadable[:SAMPLE]], now)
        quarantine_unreadable(conn, side, found.unreadable, now)
    else:
        clear_alert(conn, stream, "unreadable_time")


def set_alert(conn: Connection, stream: str, kind: str, count: int, sample: list[str],
              now: datetime) -> None:
    clear_alert(conn, stream, kind)
    conn.execute(insert(ALERT).values(stream=stream, kind=kind, count=int(count),
                                      sample=[str(s)[:300] for s in sample[:SAMPLE]], at=now))


def clear_alert(conn: Connection, stream: str, kind: str) -> None:
    conn.execute(delete(ALERT).where(and_(ALERT.c.stream == stream, ALERT.c.kind == kind)))


def alerts(conn: Connection) -> list[dict[str, Any]]:
    """Every open alert, by stream and kind."""
    return [dict(r._mapping) for r in conn.execute(select(ALERT).order_by(ALERT.c.stream, ALERT.c.kind))]
