"""Outbox rows in SQL: insert once per idempotency key, claim by lane, settle.

Claiming is one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` statement. On
PostgreSQL the inner select takes ``FOR UPDATE SKIP LOCKED`` so instances never claim the same
row; on SQLite the statement runs inside a ``BEGIN IMMEDIATE`` transaction (single writer).
A claim lasts until ``claimed_until``; an expired claim (its holder died) is claimable again.
``attempts`` counts tries *started* (a claim adds one; a release or a not-counted retry gives
it back), so a handler that sees ``attempts > 1`` knows an earlier try may have reached the
remote before its holder died, and looks the record up before creating it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import ColumnElement, Connection, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .database import Store
from .tables import Outbox

def _text(message: str) -> str:
    """Error text as stored: bounded, and without NUL (PostgreSQL text refuses it)."""
    return message.replace("\x00", "\\0")[:2000]


__all__ = ["PENDING", "CLAIMED", "DONE", "DEAD", "insert_ignore", "enqueue", "claim",
           "mark_done", "mark_retry", "mark_dead", "release", "claim_holders", "abandon_claims"]

PENDING, CLAIMED, DONE, DEAD = "pending", "claimed", "done", "dead"
OUTBOX = Outbox.__table__


def insert_ignore(conn: Connection, table: Any, rows: Sequence[dict], keys: Sequence[str]) -> int:
    """INSERT rows, skipping those that collide on the unique ``keys``; returns rows inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))
            .returning(table.c[keys[0]]))
    return len(conn.execute(stmt, list(rows)).all())


def enqueue(conn: Connection, ops: Iterable[dict], *, now: datetime) -> int:
    """Insert outbox rows (dicts with lane, target, operation, link_id, payload, idem_key).

    A key already present is ignored: enqueueing is idempotent.
    """
    rows = [{"status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now,
             "updated_at": now, "link_id": None, **op} for op in ops]
    return insert_ignore(conn, OUTBOX, rows, ["idem_key"])


def claim(store: Store, *, lanes: Sequence[int], limit: int, holder: str, now: datetime,
          hold: timedelta = timedelta(minutes=5), operations: Sequence[str] | None = None,
          where: ColumnElement[bool] | None = None) -> list[Any]:
    """Claim up to ``limit`` due rows of ``lanes`` (and ``operations``, and the condition
    ``where``, if given): expired claims first, then pending rows, best lane first, oldest
    first. Each half is an index range scan (status, lane, ...), so the cost does not grow with
    the settled rows the table keeps."""
    c = OUTBOX.c
    expired = and_(c.status == CLAIMED, c.lane.in_(list(lanes)), c.claimed_until < now)
    due = and_(c.status == PENDING, c.lane.in_(list(lanes)), c.next_attempt_at <= now)
    if operations:
        expired = and_(expired, c.operation.in_(list(operations)))
        due = and_(due, c.operation.in_(list(operations)))
    if where is not None:
        expired, due = and_(expired, where), and_(due, where)
    rows: list[Any] = []
    with store.begin() as conn:
        for cond, order in ((expired, (c.lane, c.id)), (due, (c.lane, c.next_attempt_at, c.id))):
            want = limit - len(rows)
            if want <= 0:
                break
            inner = select(c.id).where(cond).order_by(*order).limit(want)
            if store.is_postgres:
                inner = inner.with_for_update(skip_locked=True)
            stmt = (update(OUTBOX).where(c.id.in_(inner.scalar_subquery()))
                    .values(status=CLAIMED, claimed_by=holder, claimed_until=now + hold,
                            updated_at=now, attempts=c.attempts + 1)
                    .returning(*OUTBOX.c))
            rows += list(conn.execute(stmt))
    rows.sort(key=lambda r: (r.lane, r.id))
    return rows


def mark_done(conn: Connection, ids: Sequence[int], *, now: datetime) -> None:
    if ids:
        conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(list(ids)))
                     .values(status=DONE, claimed_by=None, claimed_until=None, updated_at=now,
                             last_error=None))


def mark_retry(conn: Connection, op_id: int, *, error: str, at: datetime, now: datetime,
               count_attempt: bool = True) -> None:
    values: dict[str, Any] = dict(status=PENDING, claimed_by=None, claimed_until=None,
                                  next_attempt_at=at, last_error=_text(error), updated_at=now)
    if not count_attempt:
        values["attempts"] = OUTBOX.c.attempts - 1
    conn.execute(update(OUTBOX).where(OUTBOX.c.id == op_id).values(**values))


def mark_dead(conn: Connection, op_id: int, *, reason: str, now: datetime) -> None:
    conn.execute(update(OUTBOX).where(OUTBOX.c.id == op_id)
                 .values(status=DEAD, claimed_by=None, claimed_until=None,
                         last_error=_text(reason), updated_at=now))


def release(store: Store, ids: Sequence[int], *, holder: str, now: datetime) -> None:
    """Give claimed rows back untouched (shutdown mid-batch)."""
    if not ids:
        return
    with store.begin() as conn:
        conn.execute(update(OUTBOX).where(and_(OUTBOX.c.id.in_(list(ids)),
                                               OUTBOX.c.status == CLAIMED,
                                               OUTBOX.c.claimed_by == holder))
                     .values(status=PENDING, claimed_by=None, claimed_until=None, updated_at=now,
                             attempts=OUTBOX.c.attempts - 1))


def claim_holders(store: Store) -> list[str]:
    """Who holds claims now (instance ids)."""
    with store.begin() as conn:
        return [r[0] for r in conn.execute(select(OUTBOX.c.claimed_by).where(
            OUTBOX.c.status == CLAIMED).distinct()) if r[0]]


def abandon_claims(store: Store, holders: Sequence[str], *, now: datetime) -> int:
    """Make the claims of dead ``holders`` claimable now. ``attempts`` is kept: the dead
    holder's try may have reached the remote, so the next one looks before it creates."""
    if not holders:
        return 0
    with store.begin() as conn:
        return conn.execute(update(OUTBOX).where(and_(OUTBOX.c.status == CLAIMED,
                                                      OUTBOX.c.claimed_by.in_(list(holders))))
                            .values(claimed_until=now)).rowcount or 0
