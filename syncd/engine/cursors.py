"""Stream cursors (invariant 1: nothing lost).

A cursor is the server time a stream has been read up to, the id that broke the tie at that
time, and the ids already seen at that exact time (the boundary). It is only ever written
through :func:`advance`, which takes the *same connection* that records what was read, so the
cursor and the records it covers commit or roll back together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select, update

from ..store.outbox import insert_ignore
from ..store.tables import CursorRow

__all__ = ["StreamCursor", "load", "advance", "window_start", "EPOCH", "OKITOKI_OVERLAP"]

#: Where a stream without a cursor starts reading.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: Oki-Toki's contact export is second-resolution; late commits land in this re-read window.
OKITOKI_OVERLAP = timedelta(seconds=30)

CURSOR = CursorRow.__table__


@dataclass(frozen=True)
class StreamCursor:
    stream: str
    value: datetime | None = None       # server time (UTC) read up to
    last_id: str | None = None          # tie-break id at ``value`` (ordered streams)
    boundary_ids: frozenset[str] = field(default_factory=frozenset)  # ids seen at ``value``


def load(conn: Connection, stream: str) -> StreamCursor:
    row = conn.execute(select(CURSOR).where(CURSOR.c.stream == stream)).first()
    if row is None:
        return StreamCursor(stream)
    return StreamCursor(stream, row.value, row.last_id, frozenset(row.boundary_ids or ()))


def advance(conn: Connection, cursor: StreamCursor, *, now: datetime) -> None:
    """Store ``cursor`` in the transaction of ``conn`` (which must also hold what it covers).

    A cursor never moves backwards: an older value than the stored one is ignored.
    """
    insert_ignore(conn, CURSOR, [{"stream": cursor.stream}], ["stream"])
    cond = CURSOR.c.stream == cursor.stream
    if cursor.value is not None:
        cond = cond & ((CURSOR.c.value.is_(None)) | (CURSOR.c.value <= cursor.value))
    conn.execute(update(CURSOR).where(cond).values(
        value=cursor.value, last_id=cursor.last_id,
        boundary_ids=sorted(cursor.boundary_ids), updated_at=now))


def window_start(cursor: StreamCursor, overlap: timedelta, *, initial: datetime) -> datetime:
    """Where the next time-window read starts: the cursor minus the overlap (or ``initial``)."""
    return (cursor.value - overlap) if cursor.value is not None else initial
