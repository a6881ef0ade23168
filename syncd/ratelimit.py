"""The rate limiter every remote system's requests share (one per system per process).

A token bucket (``per_minute`` with a small burst) that also never lets more than
``per_minute`` requests start in any sliding :data:`WINDOW`, and that every caller, on every
thread, waits behind after a ``Retry-After`` (:meth:`RateLimiter.block_for`). The push's
request workers and the daemon's jobs all take their turns here (docs/architecture.md,
"Requests in flight").
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

__all__ = ["WINDOW", "RateLimiter", "limiter_for"]

WINDOW = 60.5   # seconds: a sliding minute, with a margin for the time a request takes to arrive


class RateLimiter:
    """Token bucket: ``per_minute`` requests a minute with a burst of ``burst``; thread-safe.

    The bucket alone would allow ``burst`` more than ``per_minute`` in a minute of full use, which
    a remote counting a sliding minute (Oki-Toki's sandbox, most APIs) answers with 429; so no
    more than ``per_minute`` requests start in any :data:`WINDOW` either. ``block_for`` (after a
    429) makes every caller, on every thread, wait until the remote allows requests again.
    """

    def __init__(self, per_minute: float | None, burst: int = 5, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._blocked_until = 0.0
        self._started: deque[float] = deque()   # start times of the last per_minute requests

    def reconfigure(self, per_minute: float | None, burst: int) -> None:
        """A new rate (configuration reloaded): the minute counted so far was another regime."""
        with self._lock:
            if per_minute != self.per_minute:
                self._started.clear()
            self.per_minute, self.burst = per_minute, max(1, burst)

    def block_for(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def acquire(self) -> float:
        """Wait until a request may go out; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                delay = self._blocked_until - now
                if delay <= 0 and self.per_minute:
                    rate = self.per_minute / 60.0
                    self._tokens = min(self.burst, self._tokens + (now - self._stamp) * rate)
                    self._stamp = now
                    started = self._started
                    while started and started[0] <= now - WINDOW:
                        started.popleft()
                    if len(started) >= self.per_minute:
                        delay = started[0] + WINDOW - now
                    elif self._tokens >= 1:
                        self._tokens -= 1
                        started.append(now)
                        return waited
                    else:
                        delay = (1 - self._tokens) / rate
                elif delay <= 0:
                    return waited
            self._sleep(delay)
            waited += delay


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(system: str, per_minute: float | None, burst: int = 5) -> RateLimiter:
    """The process-wide limiter of ``system`` (created on first use, rate updated after)."""
    with _limiters_lock:
        limiter = _limiters.get(system)
        if limiter is None:
            limiter = _limiters[system] = RateLimiter(per_minute, burst)
        else:
            limiter.reconfigure(per_minute, burst)
        return limiter
