"""Outbox policy: lanes and their priority, idempotency keys, backoff, dead letters.

Every outbound operation is an outbox row first (invariant 2). Rows are taken lane by lane:
do-not-call, calls, statuses, dialer tasks, contacts, backfill. When a system's daily budget
runs low, the lanes that spend it and are not urgent pause (invariant 6).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from ..backoff import backoff_seconds
from ..errors import (BudgetExhausted, FatalRemoteError, InvalidRecord, InvalidRequest,
                      RemoteError, Throttled)

__all__ = ["Lane", "LANE_SYSTEMS", "URGENT_LANES", "Backoff", "Verdict", "classify",
           "payload_key", "LOW_BUDGET_SHARE"]


class Lane(IntEnum):
    """Outbox lanes; a lower number is taken first."""

    DO_NOT_CALL = 0
    CALLS = 1
    STATUSES = 2
    TASKS = 3
    CONTACTS = 4
    BACKFILL = 5


# Which remote systems the operations of a lane spend requests on.
LANE_SYSTEMS: dict[Lane, tuple[str, ...]] = {
    Lane.DO_NOT_CALL: ("okitoki",),
    Lane.CALLS: ("crm",),
    Lane.STATUSES: ("crm",),
    Lane.TASKS: ("okitoki",),
    Lane.CONTACTS: ("crm", "okitoki"),
    Lane.BACKFILL: ("crm", "okitoki"),
}
URGENT_LANES = frozenset({Lane.DO_NOT_CALL, Lane.CALLS, Lane.STATUSES})
LOW_BUDGET_SHARE = 0.10   # below this share of the daily budget, non-urgent lanes pause


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter for failed outbox rows (seconds)."""

    base: float = 5.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.2
    max_attempts: int = 10

    def delay(self, attempts: int) -> timedelta:
        """The wait after a row's ``attempts``-th failed try (0: the first)."""
        return timedelta(seconds=backoff_seconds(attempts, base=self.base, cap=self.cap,
                                                 factor=self.factor, jitter=self.jitter))


@dataclass(frozen=True)
class Verdict:
    """What to do with a row after an error: ``retry`` (at), ``dead`` (reason) or ``stop``
    (the whole system is unusable now: release the row untouched and stop the lane)."""

    action: str
    reason: str
    at: datetime | None = None
    count_attempt: bool = True


def classify(exc: BaseException, *, attempts: int, now: datetime, backoff: Backoff) -> Verdict:
    """Map an error raised for one row to a :class:`Verdict`."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, InvalidRecord):
        return Verdict("dead", reason)
    if isinstance(exc, BudgetExhausted):
        return Verdict("stop", reason)
    if isinstance(exc, InvalidRequest):
        return Verdict("dead", reason)         # the remote refused this record's content
    if isinstance(exc, FatalRemoteError):
        return Verdict("stop", reason)         # auth/permission/URL: a person must act
    if isinstance(exc, Throttled) and exc.retry_after is not None:
        return Verdict("retry", reason, now + exc.retry_after, count_attempt=False)
    if isinstance(exc, RemoteError):
        if attempts + 1 >= backoff.max_attempts:
            return Verdict("dead", f"gave up after {attempts + 1} attempts: {reason}")
        return Verdict("retry", reason, now + backoff.delay(attempts))
    # A bug or an unexpected library error: keep the row, but do not hammer.
    if attempts + 1 >= backoff.max_attempts:
        return Verdict("dead", f"gave up after {attempts + 1} attempts: {type(exc).__name__}: {reason}")
    return Verdict("retry", f"{type(exc).__name__}: {reason}", now + backoff.delay(attempts))


def payload_key(*parts: Any) -> str:
    """A short stable digest of ``parts`` for idempotency keys of content-addressed operations."""
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]
