"""Hints from webhooks, acted on at once but never trusted.

* CRM events name contacts: :func:`read_hinted_contacts` reads them by id through the API and
  records what it finds like a pull does (``record_contacts``); a linked record the API no
  longer returns is recorded deleted, only because the API says so. The poll stays the safety
  net: a hint costs at most a read.
* Oki-Toki call events may come before the call is readable in the log (Oki-Toki writes it
  shortly after hangup). :class:`CallRetries` looks a hinted call up again after ``BACKOFF``
  (1 s, then every 2 s up to 15 s after the event: a call that becomes readable meanwhile
  reaches the CRM within about 2 s); after the last one the poll takes over. Each retry is a
  calls pull (one call-log request for every call due then, plus by-id look-ups capped by
  :class:`syncd.engine.calls.HintFetches`); retry pulls are capped per hour
  (``[okitoki] webhook_retries_per_hour``) and at most ``MAX_PENDING`` calls wait at once, so
  retries stay within the API budget.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Iterable

import structlog
from sqlalchemy import and_, select

from ..apirecords import for_records, record_ids
from ..model import Contact
from .context import LINK, Context, chunks
from .ingest import record_contacts

__all__ = ["CallRetries", "read_hinted_contacts", "BACKOFF", "MAX_PENDING"]

log = structlog.get_logger()
BACKOFF = (timedelta(seconds=1),) + (timedelta(seconds=2),) * 7   # 1, 3, 5, ... 15 s
MAX_PENDING = 100     # hinted calls waiting for a retry at once (a flood of hints is just a hint)


class CallRetries:
    """Hinted calls not yet in the log and when to look for them again (thread-safe)."""

    def __init__(self, backoff: tuple[timedelta, ...] = BACKOFF, max_pending: int = MAX_PENDING) -> None:
        self.backoff, self.max_pending = backoff, max_pending
        self._due: dict[str, tuple[int, datetime]] = {}    # session id → (tries made, next at)
        self._lock = threading.Lock()

    def missed(self, sessions: Iterable[str], now: datetime) -> int:
        """``sessions`` were hinted but not found: schedule each one's next look-up; returns
        how many gave up (the poll brings them)."""
        gave_up = 0
        with self._lock:
            for sid in sessions:
                tries = self._due.get(sid, (0, now))[0]
                if tries >= len(self.backoff) or (sid not in self._due and len(self._due) >= self.max_pending):
                    self._due.pop(sid, None)
                    gave_up += 1
                    continue
                self._due[sid] = (tries + 1, now + self.backoff[tries])
        return gave_up

    def found(self, sessions: Iterable[str]) -> None:
        with self._lock:
            for sid in sessions:
                self._due.pop(sid, None)

    def due(self, now: datetime) -> list[str]:
        """Sessions whose next look-up is due (they stay scheduled until found or missed)."""
        with self._lock:
            return sorted(s for s, (_, at) in self._due.items() if at <= now)

    def next_at(self) -> datetime | None:
        """When the next retry is due, or None."""
        with self._lock:
            return min((at for _, at in self._due.values()), default=None)

    def waiting(self) -> list[str]:
        with self._lock:
            return sorted(self._due)


def read_hinted_contacts(ctx: Context, ids: list[str]) -> Counter[str]:
    """Read the CRM contacts ``ids`` by id and record them (one ``fetch_contacts`` per batch).

    A linked contact the API does not return is recorded deleted (the engine's delete
    handling applies); an unknown one is only counted. Deletes are taken from the API's
    answer, never from the event."""
    counts: Counter[str] = Counter()
    size = ctx.crm_capabilities.read_batch_size or 100
    for part in chunks(sorted(set(ids)), size):
        fetched_at = ctx.now()
        with for_records(record_ids(crm=i) for i in part):
            found = ctx.crm.fetch_contacts(part)
        present = {c.id for c in found}
        absent = [i for i in part if i not in present]
        with ctx.store.begin() as conn:
            if absent:
                linked = {r[0] for r in conn.execute(select(LINK.c.crm_id).where(and_(
                    LINK.c.crm_id.in_(absent), LINK.c.tombstone.is_(False))))}
                found = found + [Contact(id=i, deleted=True) for i in absent if i in linked]
                counts["hinted_absent"] += len(absent) - len(linked)
            counts.update(record_contacts(ctx, conn, "crm", found, fetched_at=fetched_at))
        counts["hinted_read"] += len(part)
    return counts
