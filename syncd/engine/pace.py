"""How many requests to one remote system run at once (see :class:`Pace`)."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

import structlog

__all__ = ["Pace", "cpu_demand"]

log = structlog.get_logger()

_TASKS = "/proc/self/task"


class _Demand:
    """Seconds this process's threads have run or waited to run, as a running total (Linux:
    the first two fields of each thread's ``schedstat``: on a CPU, and runnable in the run
    queue). Each reading adds what every thread gained since the last one, so a thread that
    ends loses only its last moments instead of taking its whole history out of the total."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._total = 0

    def __call__(self) -> float:
        with self._lock:
            now: dict[str, int] = {}
            for tid in os.listdir(_TASKS):
                try:
                    with open(f"{_TASKS}/{tid}/schedstat", "rb") as f:
                        ran, waited = f.read().split()[:2]
                except (OSError, ValueError):
                    continue                       # a thread that just ended
                now[tid] = int(ran) + int(waited)
            self._total += sum(max(0, v - self._last.get(tid, 0)) for tid, v in now.items())
            self._last = now
            return self._total / 1e9


def _demand_meter() -> Callable[[], float]:
    try:
        meter = _Demand()
        meter()
        if os.path.exists(f"{_TASKS}/{threading.get_native_id()}/schedstat"):
            return meter
    except (OSError, ValueError):
        pass
    return time.process_time


#: The process's demand for CPU in seconds: time on a CPU plus, where Linux tells it, time
#: runnable but waiting for one, so that a saturated process on a host whose cores are busy
#: with other work still reads as saturated. Elsewhere its CPU time.
cpu_demand: Callable[[], float] = _demand_meter()


class Pace:
    """How many requests to one remote system run at once: ``cap`` (``max_in_flight``) at most,
    and fewer while this process's CPU is saturated.

    Requests in flight pay off while they wait on the network; a worker that only waits for
    the interpreter lock (the remote answers in a millisecond, our own work is the bottleneck)
    adds contention and CPU, not throughput: on loopback 8 workers cost 30 % more CPU than 2 and
    finish later. After every piece of work, once per :attr:`WINDOW` of wall time, the share of
    that window the process spent on CPU or waiting for one (:data:`cpu_demand`) decides: at or
    above :attr:`BUSY`, half the workers (never under two, so our work still overlaps the
    remote's); below :attr:`IDLE`, one more.
    The rate limiter is unaffected: workers waiting for its tokens use no CPU, so a limited
    system keeps every worker. One per remote system, kept across pushes; thread-safe.
    """

    WINDOW = 0.25
    BUSY = 0.85
    IDLE = 0.5

    def __init__(self, system: str, *, cpu: Callable[[], float] = cpu_demand,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.system = system
        self.limit = 0            # 0: not measured yet; the first run starts at its cap
        self.cap = 1
        self._cpu, self._clock = cpu, clock
        self._cond = threading.Condition()
        self._active = 0
        self._window = (0.0, 0.0)              # (wall, CPU) when the window started
        self._last_release = float("-inf")     # when a worker last finished a piece

    def begin(self, cap: int) -> int:
        """A run of at most ``cap`` workers starts; returns how many may run now.

        The window goes on across runs that follow each other (a push's batches, each often
        shorter than a window on a fast remote); after a pause longer than a window (the
        daemon idle between pushes) it starts again, so idle time never reads as spare CPU."""
        with self._cond:
            self.cap = max(1, cap)
            self.limit = self.cap if self.limit <= 0 else max(self._floor(), min(self.limit, self.cap))
            now = self._clock()
            if now - self._last_release > self.WINDOW:
                self._window = (now, self._cpu())
            return self.limit

    def _floor(self) -> int:
        return min(2, self.cap)

    def acquire(self) -> None:
        with self._cond:
            while self._active >= self.limit:
                self._cond.wait()
            self._active += 1

    def release(self) -> None:
        with self._cond:
            self._active -= 1
            self._last_release = self._decide()
            self._cond.notify_all()

    def _decide(self) -> float:
        """Judge the window if it is long enough; returns the time of the call."""
        started, cpu_then = self._window
        now = self._clock()
        if now - started < self.WINDOW:
            return now
        cpu_now = self._cpu()
        share = max(0.0, cpu_now - cpu_then) / (now - started)
        before = self.limit
        if share >= self.BUSY:
            self.limit = max(self._floor(), self.limit // 2)
        elif share < self.IDLE:
            self.limit = min(self.cap, self.limit + 1)
        self._window = (now, cpu_now)
        if self.limit != before:
            log.debug("in_flight_changed", system=self.system, limit=self.limit,
                      cpu_share=round(share, 2))
        return now
