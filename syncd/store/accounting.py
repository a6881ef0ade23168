"""Persistent request budget, the API call journal, job runs and leases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Callable

from sqlalchemy import and_, delete, insert, or_, select, update

from ..errors import BudgetExhausted
from ..http import JournalEntry
from ..redact import redact
from .database import Store
from .outbox import insert_ignore
from .tables import ApiCall, BudgetRow, Lease, Run

__all__ = ["StoreBudget", "StoreJournal", "record_run", "acquire_lease", "release_lease",
           "lease_holders", "drop_leases"]

BUDGET, JOURNAL, LEASE, RUN = BudgetRow.__table__, ApiCall.__table__, Lease.__table__, Run.__table__
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StoreBudget:
    """:class:`syncd.http.RequestBudget` kept in the state database, per system per UTC day.

    Shared by every instance on the same database. ``limits`` maps system → requests a day
    (None: unlimited, still counted).
    """

    def __init__(self, store: Store, limits: dict[str, int | None], *, clock: Clock = _utcnow) -> None:
        self.store, self.limits, self.clock = store, dict(limits), clock
        self._lock = threading.Lock()

    def _day(self) -> str:
        return self.clock().astimezone(UTC).date().isoformat()

    def spend(self, system: str, n: int = 1) -> None:
        limit, day = self.limits.get(system), self._day()
        c = BUDGET.c
        with self._lock, self.store.begin() as conn:
            insert_ignore(conn, BUDGET, [{"system": system, "day": day, "used": 0}], ["system", "day"])
            cond = and_(c.system == system, c.day == day)
            if limit is not None:
                cond = and_(cond, c.used + n <= limit)
            done = conn.execute(update(BUDGET).where(cond)
                                .values(used=c.used + n, daily_limit=limit)).rowcount
        if not done:
            raise BudgetExhausted(f"daily request budget of {limit} is spent", system=system)

    def used(self, system: str) -> int:
        c = BUDGET.c
        with self.store.begin() as conn:
            value = conn.execute(select(c.used).where(and_(c.system == system, c.day == self._day()))).scalar()
        return int(value or 0)

    def remaining(self, system: str) -> int | None:
        limit = self.limits.get(system)
        if limit is None:
            return None
        return max(0, limit - self.used(system))


class StoreJournal:
    """The API journal hook (:data:`syncd.http.Journal`): one row per request attempt."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, entry: JournalEntry) -> None:
        with self.store.begin() as conn:
            conn.execute(insert(JOURNAL).values(
                at=entry.at, system=entry.system, operation=entry.operation[:64],
                method=entry.method[:8], status=entry.status, duration_ms=entry.duration_ms,
                attempt=entry.attempt, error=redact(entry.error)[:1000] if entry.error else None))


def record_run(store: Store, *, job: str, instance: str | None, started_at: datetime,
               duration_ms: int, counts: dict, errors: list[str]) -> None:
    with store.begin() as conn:
        conn.execute(insert(RUN).values(job=job, instance=instance, started_at=started_at,
                                        duration_ms=duration_ms, counts=counts,
                                        errors=[redact(e)[:500] for e in errors[:50]]))


def acquire_lease(store: Store, name: str, holder: str, *, ttl: timedelta, now: datetime) -> bool:
    """Take or renew the lease ``name``; True if ``holder`` holds it until ``now + ttl``."""
    c = LEASE.c
    with store.begin() as conn:
        insert_ignore(conn, LEASE, [{"name": name, "holder": holder, "expires_at": now + ttl}], ["name"])
        got = conn.execute(update(LEASE).where(and_(
            c.name == name, or_(c.holder == holder, c.expires_at < now)))
            .values(holder=holder, expires_at=now + ttl)).rowcount
    return bool(got)


def release_lease(store: Store, name: str, holder: str) -> None:
    with store.begin() as conn:
        conn.execute(delete(LEASE).where(and_(LEASE.c.name == name, LEASE.c.holder == holder)))


def lease_holders(store: Store) -> list[str]:
    """Who holds leases now (instance ids)."""
    with store.begin() as conn:
        return [r[0] for r in conn.execute(select(LEASE.c.holder).distinct())]


def drop_leases(store: Store, holders: list[str]) -> int:
    """Forget the leases of dead ``holders`` (another instance may take them at once)."""
    if not holders:
        return 0
    with store.begin() as conn:
        return conn.execute(delete(LEASE).where(LEASE.c.holder.in_(holders))).rowcount or 0
