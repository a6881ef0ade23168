"""Wake-ups: a job runs as soon as something gives it work, not at its next interval.

* A pull that recorded work for the push (a ``PUSH_WORK`` count in its run report) wakes
  ``push``; ``pull:crm:hinted`` (CRM webhook records read by id) is a pull too.
* An Oki-Toki call event wakes ``pull:okitoki:calls``; a hinted call not yet in the log is
  looked for again when the syncer's :class:`syncd.engine.hints.CallRetries` says.
* A CRM event wakes ``pull:crm:hinted``.

APScheduler's ``max_instances=1`` drops a run asked for while the job runs (it counts the
run until its executor has finished with it, a moment after the job function returned), and
that run's reads may have come before what woke it; so a job woken while it runs runs again
right after, from the scheduler's job-finished event (:meth:`Wakeups.on_event`), when
APScheduler no longer counts it. A run APScheduler skipped for ``max_instances`` counts as a
wake-up too. A wake-up that lands between the scheduler starting a run and the run starting
is harmless: the run begins after the change was committed.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Callable

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES

if TYPE_CHECKING:
    from .engine.seam import DaemonSyncer, JobReport

__all__ = ["Wakeups", "PUSH_WORK", "HINTED_CRM"]

HINTED_CRM = "pull:crm:hinted"
EVENTS = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES   # for add_listener
# Run-report counts that mean a pull left work for the push (merge or outbox rows).
PUSH_WORK = frozenset({"changed", "new_links", "linked", "deleted", "queued_calls", "queued_updates"})


class Wakeups:
    """Wake-ups of the jobs of one APScheduler ``scheduler()`` (None before it starts)."""

    def __init__(self, scheduler: Callable[[], Any], *, stopped: Callable[[], bool] = lambda: False,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.scheduler, self.stopped, self.clock = scheduler, stopped, clock
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}   # job → monotonic start of its run in flight
        self._woken: dict[str, float] = {}     # job → monotonic time of its last wake-up

    def wake(self, job: str, at: datetime | None = None) -> None:
        """Run ``job`` now, or at ``at`` if that is sooner than its next run."""
        if at is not None:
            self._schedule(job, at)
            return
        with self._lock:
            self._woken[job] = time.monotonic()
            if job in self._running:
                return            # on_event() runs it again when this run is over
        self._schedule(job, self.clock())

    def started(self, job: str) -> float:
        now = time.monotonic()
        with self._lock:
            self._running[job] = now
        return now

    def on_event(self, event: Any) -> None:
        """APScheduler listener (``EVENTS``): a run is over, or one was skipped because the
        job was running; either way a wake-up that came during the run runs the job now."""
        job = getattr(event, "job_id", None)
        if job is None:
            return
        with self._lock:
            if event.code == EVENT_JOB_MAX_INSTANCES:
                self._woken[job] = time.monotonic()
                if job in self._running:
                    return
                again = True
            else:
                started = self._running.pop(job, None)
                again = started is not None and self._woken.get(job, float("-inf")) >= started
        if again:
            self._schedule(job, self.clock())

    def finished(self, job: str, started: float, report: JobReport | None,
                 syncer: DaemonSyncer) -> None:
        """A run's body ended (``report`` None: it raised): wake what its report calls for
        (the job's own rerun, if it was woken meanwhile, waits for :meth:`on_event`)."""
        counts = report.counts if report is not None else {}
        if job != "push" and any(counts.get(k) for k in PUSH_WORK):
            self.wake("push")
        if job == "pull:okitoki:calls":
            due = syncer.call_retries.next_at()
            if due is not None:
                self.wake(job, at=due)

    def _schedule(self, job: str, at: datetime) -> None:
        sched = self.scheduler()
        if sched is None or self.stopped():
            return
        try:
            current = sched.get_job(job)
            if current is not None and (current.next_run_time is None or at < current.next_run_time):
                sched.modify_job(job, next_run_time=at)
        except Exception:  # noqa: BLE001 - the job may be gone during shutdown
            pass
