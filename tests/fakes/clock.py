"""A clock for fakes whose every reading is one second after the previous one.

CRMs with one-second ``updated_at`` resolution (Bitrix24, Kommo) make "a change after this
cursor" need a new second; instead of sleeping, a fake driven by :class:`TickingClock` gives
each change its own second (tests that want equal seconds set them explicitly).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["TickingClock"]


class TickingClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime.now(UTC)).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=1)
            return self._now

    def timestamp(self) -> float:
        """The next reading as unix seconds (for fakes that keep ``updated_at`` as a number)."""
        return self().timestamp()
