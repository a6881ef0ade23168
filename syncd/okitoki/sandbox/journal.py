"""The sandbox's request journal: what Oki-Toki's "API call log" and balance would show.

Every ``/api/v1`` request is recorded with its arrival time (sandbox clock, float unix
seconds), operation, status and duration; the token is never kept (only the id of its user, if
known). For rate-limit tests the journal also remembers each 429's ``Retry-After`` and counts
requests of the same token that arrived before it expired (``early_retries``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

from ...redact import redact

#: seconds after a 429 is answered before a request of the same token counts as early (a
#: request already on the wire, or queued in a busy sandbox, cannot have heeded it)
IN_FLIGHT_GRACE = 0.25

__all__ = ["RequestJournal", "JournalRecord"]


@dataclass(slots=True)
class JournalRecord:
    at: float
    method: str
    path: str
    operation: str
    status: int = 0
    duration_ms: float = 0.0
    user_id: int | None = None
    token_hash: str = ""
    fault: str | None = None
    retry_after_until: float | None = None
    early: bool = False
    query: str = ""


class RequestJournal:
    def __init__(self, keep: int = 2000, keep_arrivals: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._keep, self._keep_arrivals = keep, keep_arrivals
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.total = 0
            self.by_operation: Counter[str] = Counter()
            self.by_status: Counter[int] = Counter()
            self.recent: deque[JournalRecord] = deque(maxlen=self._keep)
            self.arrivals: deque[float] = deque(maxlen=self._keep_arrivals)
            self.early_retries = 0
            # token → (early from, early until): the window in which a request ignored a 429
            self._blocked_until: dict[str, tuple[float, float]] = {}

    def arrive(self, record: JournalRecord) -> JournalRecord:
        """Count a request when it arrives; flags it ``early`` if its token was told to wait."""
        record.query = redact(record.query)
        with self._lock:
            self.total += 1
            self.by_operation[record.operation] += 1
            self.arrivals.append(record.at)
            since, until = self._blocked_until.get(record.token_hash, (0.0, 0.0))
            if since <= record.at < until:
                record.early = True
                self.early_retries += 1
            self.recent.append(record)
        return record

    def finish(self, record: JournalRecord, status: int, duration_ms: float,
               retry_after: float | None = None) -> None:
        with self._lock:
            record.status, record.duration_ms = status, round(duration_ms, 3)
            self.by_status[status] += 1
            if retry_after is not None:
                record.retry_after_until = record.at + retry_after
                # A request already on its way when this 429 went out could not heed it: only
                # requests arriving IN_FLIGHT_GRACE after the answer count as early.
                since = time.time() + IN_FLIGHT_GRACE
                old_since, old_until = self._blocked_until.get(record.token_hash, (since, 0.0))
                self._blocked_until[record.token_hash] = (
                    min(old_since, since) if old_until > since else since,
                    max(old_until, record.retry_after_until))

    def report(self, limit: int = 200) -> dict[str, Any]:
        with self._lock:
            per_second = Counter(int(t) for t in self.arrivals)
            recent = list(self.recent)[-limit:] if limit else []
            return {
                "total": self.total,
                "by_operation": dict(self.by_operation),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "early_retries": self.early_retries,
                "per_second": {str(k): v for k, v in sorted(per_second.items())},
                "max_per_second": max(per_second.values(), default=0),
                "max_per_minute": _max_window(self.arrivals, 60.0),
                "arrivals": list(self.arrivals)[-limit:] if limit else [],
                "recent": [asdict(r) for r in recent],
            }


def _max_window(arrivals: deque[float], width: float) -> int:
    """The most arrivals inside any sliding window of ``width`` seconds."""
    times = sorted(arrivals)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
