"""``syncd run``: the scheduler loop, signals, systemd notify and watchdog, clean shutdown.

The daemon owns no sync logic. It runs the jobs of its syncer (any
:class:`syncd.engine.seam.DaemonSyncer`: the engine's ``Syncer``, or a test's fake) on
APScheduler (3.x) interval triggers with jitter, ``max_instances=1`` and ``coalesce=True`` (a
poll never overlaps itself):

==========================  ==========================  ===============================
job                         syncer method               interval
==========================  ==========================  ===============================
``pull:crm:contacts``       ``pull_crm_contacts()``     ``crm.poll_interval``
``pull:okitoki:contacts``   ``pull_okitoki_contacts()`` ``okitoki.poll_interval``
``pull:okitoki:calls``      ``pull_okitoki_calls()``    ``okitoki.poll_interval``
``push``                    ``push(stop)``              ``daemon.push_interval``
``housekeeping``            ``housekeeping()``          ``daemon.housekeeping_interval``
``pull:crm:hinted``         ``pull_crm_hinted()``       woken by a CRM event; hourly
``verify``                  ``verify(repair)``          ``verify.interval`` (unless off)
==========================  ==========================  ===============================

Each method returns a run report (``.counts``, ``.errors``, ``.deferred``). A job that raises is
logged (redacted) and the daemon goes on; a fatal remote error (401/403/...) is logged loudly
every time it happens. SIGTERM/SIGINT: stop taking work, set the stop event ``push`` watches,
wait for in-flight jobs up to ``daemon.shutdown_timeout``, ``syncer.close()``, exit 0.

"Progress" (for ``WATCHDOG=1`` and ``/healthz``) is a job that finished, or that failed only
because a remote is slow or out of budget (restarting would not help). A job that hangs or
fails with a fatal or unexpected error is not progress, so systemd's watchdog restarts a
daemon that is stuck.

Wake-ups (:mod:`syncd.wakeups`): a pull that recorded work wakes ``push`` at once; a call
event wakes the calls pull (and a hinted call not yet in the log is looked for again on a short
backoff); a CRM event wakes ``pull:crm:hinted`` (the named records read by id).

Per stream (:mod:`syncd.health`): a pull, the push or verify that has not *advanced* for 3 of
its intervals (failed, deferred, or running without committing anything) is stuck:
``/healthz`` answers 503 naming it and why, and ``WATCHDOG=1`` pings stop.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config
from .errors import BudgetExhausted, ConfigError, FatalRemoteError, RetriableRemoteError
from .engine.drift import next_run
from .engine.seam import DaemonSyncer, JobReport
from .health import StreamWatch, outcome_of
from .notify import Notifier, watchdog_interval
from .clock import Clock, utcnow
from .redact import redact
from .signals import catch_stop_signals
from .wakeups import EVENTS as WAKE_EVENTS, HINTED_CRM, Wakeups

if TYPE_CHECKING:
    from .web import Metrics, WebServer

__all__ = ["Daemon", "Progress", "JOBS"]

log = structlog.get_logger("syncd.daemon")
JOBS = ("pull:crm:contacts", "pull:okitoki:contacts", "pull:okitoki:calls", "push", "housekeeping")


@dataclass
class Progress:
    """What the jobs did so far; thread-safe. Times come from the daemon's clock (UTC)."""

    started: datetime
    last_progress: datetime | None = None
    runs: int = 0
    failures: int = 0
    last_job: str = ""
    last_error: str = ""
    fatal: dict[str, str] = field(default_factory=dict)   # job → its standing fatal error
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, job: str, at: datetime, *, progressed: bool, error: str = "",
               fatal: bool = False) -> None:
        with self._lock:
            self.runs += 1
            self.last_job = job
            if progressed:
                self.last_progress = at
            if error:
                self.failures += 1
                self.last_error = error
            if fatal:
                self.fatal[job] = error
            elif progressed:
                self.fatal.pop(job, None)

    def healthy(self, now: datetime, within: timedelta) -> bool:
        """True if a job progressed within ``within`` (or the daemon started that recently)."""
        with self._lock:
            return now - (self.last_progress or self.started) <= within

    def summary(self, now: datetime) -> str:
        """One line for ``STATUS=`` and logs."""
        with self._lock:
            ago = (f"{int((now - self.last_progress).total_seconds())}s ago"
                   if self.last_progress else "not yet")
            text = f"{self.runs} job runs, {self.failures} failed; last progress {ago}"
            if self.fatal:
                job, error = sorted(self.fatal.items())[0]
                text += f"; ACTION NEEDED ({job}): {error}"
            return text[:200]


class Daemon:
    """Run ``syncer``'s jobs until SIGTERM/SIGINT or :meth:`stop`; see the module docstring.

    ``notifier`` defaults to a :class:`Notifier` on ``$NOTIFY_SOCKET``; ``clock`` returns an
    aware UTC datetime (tests inject one). ``web`` (``True`` by default) starts the HTTP
    listener when ``daemon.http_listen`` is set.
    """

    def __init__(self, syncer: DaemonSyncer, config: Config, *, notifier: Notifier | None = None,
                 clock: Clock | None = None, web: bool = True, tick: float = 1.0,
                 stop_event: threading.Event | None = None) -> None:
        self.syncer = syncer
        self.config = config
        self.notifier = notifier or Notifier()
        self.clock = clock or utcnow
        self.progress = Progress(started=self.clock())
        self.streams = StreamWatch(config, syncer.store, since=self.progress.started,
                                   instance=syncer.ctx.instance_id)
        # The caller may pass the event its early signal handler sets (a SIGTERM while the
        # configuration and the engine were still loading is a clean stop too).
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.unfinished_jobs = 0
        self._web_enabled = web
        self._tick = tick
        self.status_every = 5.0            # seconds between STATUS= updates at most
        self._inflight = 0
        self._inflight_cond = threading.Condition()
        self._scheduler: BackgroundScheduler | None = None
        self.metrics: Metrics | None = None
        self.web: WebServer | None = None  # the WebServer while it runs (tests read .port)
        self._watchdog = watchdog_interval()
        self.wakeups = Wakeups(lambda: self._scheduler, stopped=self.stop_event.is_set, clock=utcnow)

    # -- public -------------------------------------------------------------------------
    def intervals(self) -> dict[str, timedelta]:
        d, c = self.config.daemon, self.config
        return {"pull:crm:contacts": c.crm.poll_interval,
                "pull:okitoki:contacts": c.okitoki.poll_interval,
                "pull:okitoki:calls": c.okitoki.poll_interval,
                "push": d.push_interval,
                "housekeeping": d.housekeeping_interval}

    def health_window(self) -> timedelta:
        """How long without progress still counts as healthy (``/healthz``)."""
        if self._watchdog is not None:
            return self._watchdog / 2
        return max(2 * max(self.intervals().values()), timedelta(seconds=60))

    def stuck_streams(self, now: datetime) -> list[dict[str, Any]]:
        """Streams with no progress for 3 of their intervals, each with its ``reason``."""
        return self.streams.stuck(now)

    def stop(self) -> None:
        """Ask the daemon to stop (what SIGTERM does)."""
        self.stop_event.set()

    def hint_call(self, session_id: str) -> None:
        """A call event arrived: tell the syncer and pull calls now instead of at the next poll."""
        self.syncer.hint_call(session_id)
        self.wake("pull:okitoki:calls")

    def hint_contacts(self, ids: list[str]) -> int:
        """A CRM event named these records: read them by id now (then the push runs).
        Returns how many were not already waiting."""
        new = self.syncer.hint_contacts(ids)
        self.wake(HINTED_CRM)
        return new

    def wake(self, job: str, at: datetime | None = None) -> None:
        """Run ``job`` now (or at ``at`` if sooner than its next run); see :mod:`syncd.wakeups`."""
        self.wakeups.wake(job, at)

    def run(self) -> int:
        """Run until stopped; 0 on a clean stop, 78 on a configuration error, 1 on startup failure."""
        restore = self._install_signals()
        server = None
        try:
            if self.stop_event.is_set():
                log.info("daemon_stopped", summary="stopped before it started")
                return 0
            code = self._startup()
            if code:
                return code
            try:
                server = self._start_web()
            except OSError as exc:
                log.error("http_listen_failed", error=str(exc))
                return 1
            self._start_scheduler()
            self.notifier.ready(f"running; {self.progress.summary(self.clock())}")
            log.info("daemon_ready", jobs=list(JOBS),
                     watchdog_s=self._watchdog.total_seconds() if self._watchdog else None)
            self._loop()
            self._shutdown()
            return 0
        finally:
            if server is not None:
                server.stop()
            restore()
            self.notifier.close()

    # -- internals ----------------------------------------------------------------------
    def _startup(self) -> int:
        try:
            self.syncer.startup()
        except ConfigError as exc:
            log.error("startup_failed", error=str(exc))
            return 78
        except Exception as exc:  # noqa: BLE001 - reported, then exit non-zero
            log.error("startup_failed", error=redact(f"{type(exc).__name__}: {exc}"))
            self.notifier.status(redact(f"startup failed: {exc}"))
            return 1
        return self._first_health_check()

    def _first_health_check(self) -> int:
        """One cheap authenticated call to each side before READY=1. A refusal is logged
        loudly and shown in STATUS; the daemon still starts (jobs retry every interval).
        A configuration error found by it (e.g. a mapped table is gone) exits 78."""
        checks: tuple[tuple[str, Callable[[], None]], ...] = (
            ("okitoki", self.syncer.okitoki.health_check), ("crm", self.syncer.crm.health_check))
        for job, check in checks:
            try:
                check()
            except ConfigError as exc:
                log.error("startup_failed", system=job, error=redact(str(exc)))
                self.notifier.status(redact(f"configuration problem: {exc}"))
                return 78
            except FatalRemoteError as exc:
                error = redact(str(exc))
                log.error("ACTION_NEEDED", error=error, error_type=type(exc).__name__, system=job)
                self.progress.record(f"health:{job}", self.clock(), progressed=False,
                                     error=error, fatal=True)
            except Exception as exc:  # noqa: BLE001 - unreachable now; the jobs retry later
                log.warning("health_check_failed", system=job, error=redact(str(exc)))
        return 0

    def _start_web(self) -> WebServer | None:
        if not (self._web_enabled and self.config.daemon.http_listen):
            return None
        from .web import Metrics, WebServer

        self.metrics = Metrics(self.syncer)
        journal = self.syncer.api_journal
        if journal is not None:
            journal.listeners.append(self.metrics.observe_api)
        self.syncer.ctx.latency_listener = self.metrics.observe_latency
        server = WebServer(self, self.config.daemon.http_listen, self.metrics)
        server.start()
        self.web = server
        return server

    def _start_scheduler(self) -> None:
        jitter = self.config.daemon.jitter.total_seconds()
        sched = BackgroundScheduler(timezone=UTC, job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        methods: dict[str, Callable[[], JobReport]] = {
            "pull:crm:contacts": self.syncer.pull_crm_contacts,
            "pull:okitoki:contacts": self.syncer.pull_okitoki_contacts,
            "pull:okitoki:calls": self.syncer.pull_okitoki_calls,
            "push": lambda: self.syncer.push(self.stop_event),
            "housekeeping": self.syncer.housekeeping,
        }
        for name, interval in self.intervals().items():
            sched.add_job(self._run_job, IntervalTrigger(seconds=interval.total_seconds(),
                                                         jitter=jitter or None),
                          args=(name, methods[name]), id=name, name=name,
                          next_run_time=utcnow())
        sched.add_job(self._run_job, IntervalTrigger(hours=1), args=(HINTED_CRM, self.syncer.pull_crm_hinted),
                      id=HINTED_CRM, name=HINTED_CRM)
        every = self.config.verify.interval
        if every is not None:
            repair = self.config.verify.repair
            sched.add_job(self._run_job, IntervalTrigger(seconds=every.total_seconds(), jitter=jitter or None),
                          args=("verify", lambda: self.syncer.verify(repair=repair)), id="verify",
                          name="verify", next_run_time=next_run(self.syncer.store, every, utcnow()))
        # the push reports each settled batch: a long drain is progress
        self.syncer.ctx.heartbeat = lambda stream: self.streams.advanced(stream, self.clock())
        sched.add_listener(self.wakeups.on_event, WAKE_EVENTS)
        sched.start()
        self._scheduler = sched

    def _run_job(self, name: str, method: Callable[[], JobReport]) -> None:
        if self.stop_event.is_set():
            return
        with self._inflight_cond:
            self._inflight += 1
        run_id = uuid.uuid4().hex[:12]
        structlog.contextvars.bind_contextvars(run_id=run_id, job=name)
        started = self.wakeups.started(name)
        report: JobReport | None = None
        ok, fatal, error = True, False, ""
        outcome: tuple[str, str] = ("ok", "")
        self.streams.started(name, self.clock())
        try:
            report = method()
            outcome = outcome_of(report)
            counts, errors = dict(report.counts), list(report.errors)
            log.info("job_finished", counts=counts, errors=len(errors),
                     duration_ms=int((time.monotonic() - started) * 1000))
            for line in errors[:5]:
                log.warning("job_error", error=str(line))
            if self.metrics is not None:
                self.metrics.observe_run(name, "ok", len(errors))
        except FatalRemoteError as exc:
            outcome = outcome_of(exc=exc)
            ok, fatal, error = False, True, redact(str(exc))
            log.error("ACTION_NEEDED", error=error, error_type=type(exc).__name__,
                      hint="fix the token, its rights or the URL; the job retries each interval")
        except (RetriableRemoteError, BudgetExhausted) as exc:
            outcome = outcome_of(exc=exc)
            error = redact(str(exc))
            log.warning("job_deferred", error=error, error_type=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the daemon
            outcome = outcome_of(exc=exc)
            ok, error = False, redact(f"{type(exc).__name__}: {exc}")
            log.exception("job_failed", error=error)
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "job")
            try:
                self.wakeups.finished(name, started, report, self.syncer)
            except Exception as exc:  # noqa: BLE001 - a wake-up must not break the job loop
                log.warning("wake_failed", error=redact(str(exc)))
            with self._inflight_cond:
                self._inflight -= 1
                self._inflight_cond.notify_all()
        self.progress.record(name, self.clock(), progressed=ok, error=error, fatal=fatal)
        self.streams.finished(name, self.clock(), *outcome)
        if error and self.metrics is not None:
            self.metrics.observe_run(name, "fatal" if fatal else "failed" if not ok else "deferred", 1)

    def _loop(self) -> None:
        last_status, last_sent = "", 0.0
        while not self.stop_event.wait(self._tick):
            now = self.clock()
            stuck = self.stuck_streams(now)
            if self._watchdog is not None and not stuck and self.progress.healthy(now, self._watchdog / 2):
                self.notifier.watchdog()
            status = self.progress.summary(now)
            if stuck:
                status = ("STUCK: " + ", ".join(f"{j['stream']} ({j['reason']})" for j in stuck))[:200]
            if status != last_status and time.monotonic() - last_sent >= self.status_every:
                self.notifier.status(status)
                last_status, last_sent = status, time.monotonic()

    def _shutdown(self) -> None:
        timeout = self.config.daemon.shutdown_timeout.total_seconds()
        self.notifier.stopping("stopping: finishing in-flight jobs")
        log.info("daemon_stopping", shutdown_timeout_s=timeout)
        if self._scheduler is not None:
            self._scheduler.pause()
        deadline = time.monotonic() + timeout
        with self._inflight_cond:
            while self._inflight and (left := deadline - time.monotonic()) > 0:
                self._inflight_cond.wait(left)
            self.unfinished_jobs = self._inflight
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self.unfinished_jobs:
            log.warning("shutdown_timeout_reached", unfinished_jobs=self.unfinished_jobs)
        try:
            self.syncer.close()
        except Exception as exc:  # noqa: BLE001
            log.error("close_failed", error=redact(str(exc)))
        log.info("daemon_stopped", summary=self.progress.summary(self.clock()))

    def _install_signals(self) -> Callable[[], None]:
        return catch_stop_signals(
            self.stop_event, lambda name: log.info("signal_received", signal=name))
