"""Persistent request budget, the API call journal, job runs and leases."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Callable

from sqlalchemy import and_, delete, insert, or_, select, update

from ..apirecords import render
from ..clock import Clock, utcnow
from ..errors import BudgetExhausted
from ..model import JournalEntry
from ..redact import redact
from .database import Store
from .outbox import insert_ignore
from .tables import ApiCall, BudgetRow, Lease, Run

__all__ = ["StoreBudget", "StoreJournal", "record_run", "acquire_lease", "release_lease",
           "lease_holders", "drop_leases"]

BUDGET, JOURNAL, LEASE, RUN = BudgetRow.__table__, ApiCall.__table__, Lease.__table__, Run.__table__


class StoreBudget:
    """:class:`syncd.http.RequestBudget` kept in the state database, per system per UTC day.

    Shared by every instance on the same database. ``limits`` maps system → requests a day
    (None: unlimited, still counted). To keep a database commit off every request, requests
    are taken from the database in small reservations of ``reserve`` at a time (never past the
    limit); :meth:`release` gives the unspent part back (at shutdown). A crash loses at most one
    unspent reservation per system: the budget is then under-used, never exceeded.

    While requests go out fast (a reservation spent within ``GROW_WITHIN`` seconds) the next
    reservation doubles, up to ``max_reserve`` and 1 % of the daily limit, so a push of
    hundreds of requests a second does not queue its request threads behind a commit every 20
    requests; a slower pace takes ``reserve`` again.
    """

    GROW_WITHIN = 1.0   # seconds

    def __init__(self, store: Store, limits: dict[str, int | None], *, clock: Clock = utcnow,
                 reserve: int = 20, max_reserve: int = 1000) -> None:
        self.store, self.limits, self.clock = store, dict(limits), clock
        self.reserve = max(1, reserve)
        self.max_reserve = max(self.reserve, max_reserve)
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, int]] = {}   # system → (day, reserved but unspent)
        self._pace: dict[str, tuple[float, int]] = {}  # system → (monotonic time of the last take, its size)

    def _day(self) -> str:
        return self.clock().astimezone(UTC).date().isoformat()

    def spend(self, system: str, n: int = 1) -> None:
        limit, day = self.limits.get(system), self._day()
        with self._lock:
            held_day, held = self._held.get(system, (day, 0))
            if held_day != day:
                held = 0                       # yesterday's reservation is simply spent
            if held < n:
                held += self._take(system, day, limit, n - held)
            if held < n:
                self._held[system] = (day, held)
                raise BudgetExhausted(f"daily request budget of {limit} is spent", system=system)
            self._held[system] = (day, held - n)

    def _take(self, system: str, day: str, limit: int | None, need: int) -> int:
        """Reserve at least ``need`` (up to ``reserve``) requests in the database; how many."""
        c = BUDGET.c
        want = max(need, self._next_reserve(system, limit))
        with self.store.begin() as conn:
            insert_ignore(conn, BUDGET, [{"system": system, "day": day, "used": 0}], ["system", "day"])
            cond = and_(c.system == system, c.day == day)
            used = conn.execute(select(c.used).where(cond)).scalar() or 0
            if limit is not None:
                want = min(want, max(0, limit - used))
                if want < need:
                    return 0
                cond = and_(cond, c.used + want <= limit)
            done = conn.execute(update(BUDGET).where(cond)
                                .values(used=c.used + want, daily_limit=limit)).rowcount
        return want if done else 0

    def _next_reserve(self, system: str, limit: int | None) -> int:
        """``reserve``, doubled while the previous reservation lasted under ``GROW_WITHIN``."""
        now = time.monotonic()
        last_at, last = self._pace.get(system, (float("-inf"), 0))
        size = self.reserve
        if now - last_at < self.GROW_WITHIN and last:
            cap = self.max_reserve if limit is None else min(self.max_reserve, max(self.reserve, limit // 100))
            size = max(self.reserve, min(cap, 2 * last))
        self._pace[system] = (now, size)
        return size

    def release(self) -> None:
        """Give the unspent reservations back (called when the syncer closes)."""
        c = BUDGET.c
        with self._lock:
            held, self._held = self._held, {}
            for system, (day, unspent) in held.items():
                if unspent:
                    with self.store.begin() as conn:
                        conn.execute(update(BUDGET).where(and_(c.system == system, c.day == day))
                                     .values(used=c.used - unspent))

    def used(self, system: str) -> int:
        """Requests spent today (reserved but unspent ones of this process not counted)."""
        c = BUDGET.c
        day = self._day()
        with self.store.begin() as conn:
            value = conn.execute(select(c.used).where(and_(c.system == system, c.day == day))).scalar()
        held_day, held = self._held.get(system, (day, 0))
        return max(0, int(value or 0) - (held if held_day == day else 0))

    def remaining(self, system: str) -> int | None:
        limit = self.limits.get(system)
        if limit is None:
            return None
        return max(0, limit - self.used(system))


class StoreJournal:
    """The API journal hook (:data:`syncd.http.Journal`): one row per request attempt, with
    the ids of the records it was for (phone-free, see :mod:`syncd.apirecords`).

    Rows are buffered and written together (every ``batch`` rows, at most ``interval`` seconds
    apart, and on :meth:`flush`, which the syncer calls after each job): one commit per batch
    instead of per request. A crash loses at most the unflushed rows of this journal.
    """

    def __init__(self, store: Store, *, batch: int = 200, interval: float = 2.0) -> None:
        self.store, self.batch, self.interval = store, batch, interval
        # also told of every entry at once (the daemon's /metrics counters); never raise
        self.listeners: list[Callable[[JournalEntry], None]] = []
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def __call__(self, entry: JournalEntry) -> None:
        row = dict(at=entry.at, system=entry.system, operation=entry.operation[:64],
                   method=entry.method[:8], status=entry.status, duration_ms=entry.duration_ms,
                   attempt=entry.attempt, error=redact(entry.error)[:1000] if entry.error else None,
                   records=render(entry.records))
        for listen in self.listeners:
            try:
                listen(entry)
            except Exception:  # noqa: BLE001 - metrics must never fail a request
                pass
        with self._lock:
            self._rows.append(row)
            due = len(self._rows) >= self.batch or time.monotonic() - self._last >= self.interval
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows now."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._last = time.monotonic()
        if rows:
            with self.store.begin() as conn:
                conn.execute(insert(JOURNAL), rows)


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
