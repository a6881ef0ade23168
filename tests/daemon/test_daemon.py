"""The daemon: jobs on the scheduler, failures contained, sd_notify, clean shutdown."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from fakesyncer import FakeSyncer, Report, fast_config, wait_for
from syncd.daemon import JOBS, Daemon
from syncd.errors import AuthenticationError, ConfigError, TransientError
from syncd.logs import redact_processor
from syncd.notify import Notifier
from syncd.redact import register_secret


class Running:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.daemon.run()

    def stop(self, timeout: float = 10) -> int | None:
        self.daemon.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "daemon did not stop"
        return self.code


def _daemon(syncer, notify_socket=None, **kw) -> Daemon:
    notifier = Notifier(notify_socket.path) if notify_socket else Notifier(None)
    return Daemon(syncer, kw.pop("config", None) or fast_config(), notifier=notifier,
                  tick=kw.pop("tick", 0.05), **kw)


def test_every_job_runs_on_its_interval():
    syncer = FakeSyncer()
    run = Running(_daemon(syncer))
    wait_for(lambda: all(syncer.count(job) >= 2 for job in JOBS))
    assert run.stop() == 0
    assert syncer.closed


def test_a_slow_job_never_overlaps_itself():
    syncer = FakeSyncer()
    syncer.behaviour["push"] = lambda: time.sleep(0.3)
    run = Running(_daemon(syncer))
    wait_for(lambda: syncer.count("push") >= 3)
    run.stop()
    assert syncer.max_running["push"] == 1


def test_a_failing_job_is_logged_redacted_and_the_daemon_goes_on():
    register_secret("tok-in-error-1234")

    def boom():
        raise RuntimeError("database said no to tok-in-error-1234")

    syncer = FakeSyncer()
    syncer.behaviour["housekeeping"] = boom
    with capture_logs(processors=[redact_processor]) as logs:
        run = Running(_daemon(syncer))
        wait_for(lambda: syncer.count("housekeeping") >= 2 and syncer.count("push") >= 3)
        assert run.stop() == 0
    failed = [e for e in logs if e["event"] == "job_failed"]
    assert failed and all("tok-in-error-1234" not in str(e) for e in failed)
    assert "database said no to ***" in failed[0]["error"]


def test_a_fatal_auth_error_is_logged_loudly_every_time(notify_socket):
    def refused():
        raise AuthenticationError("token refused", system="okitoki", operation="call_log", status=401)

    syncer = FakeSyncer()
    syncer.behaviour["pull:okitoki:calls"] = refused
    daemon = _daemon(syncer, notify_socket)
    daemon.status_every = 0
    with capture_logs() as logs:
        run = Running(daemon)
        wait_for(lambda: syncer.count("pull:okitoki:calls") >= 3)
        wait_for(lambda: any("ACTION NEEDED" in f.get("STATUS", "") for f in notify_socket.fields()))
        run.stop()
    loud = [e for e in logs if e["event"] == "ACTION_NEEDED"]
    assert len(loud) >= 3 and loud[0]["log_level"] == "error"
    assert "HTTP 401" in loud[0]["error"]


def test_ready_status_and_stopping_are_sent(notify_socket):
    syncer = FakeSyncer()
    daemon = _daemon(syncer, notify_socket)
    daemon.status_every = 0
    run = Running(daemon)
    wait_for(lambda: syncer.count("push") >= 2)
    wait_for(lambda: any("STATUS" in f and "READY" not in f for f in notify_socket.fields()))
    run.stop()
    fields = notify_socket.fields()
    assert fields[0]["READY"] == "1"
    assert any("job runs" in f.get("STATUS", "") for f in fields)
    assert fields[-1]["STOPPING"] == "1"
    assert "WATCHDOG" not in "".join(notify_socket.drain())  # no WatchdogSec, no pings


def test_watchdog_is_pinged_only_while_jobs_make_progress(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")            # WatchdogSec=1s: ping within 0.5s
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    release = threading.Event()
    syncer = FakeSyncer()
    daemon = _daemon(syncer, notify_socket, clock=lambda: now[0])
    for job in JOBS:                                          # progress once, then hang
        syncer.behaviour[job] = (lambda j=job: (release.wait() if syncer.count(j) > 1 else None))
    run = Running(daemon)
    wait_for(lambda: all(syncer.count(j) >= 2 for j in JOBS))  # second runs are now hanging
    wait_for(lambda: "WATCHDOG=1" in notify_socket.drain())
    now[0] += timedelta(seconds=2)                             # no progress for 2s > 0.5s
    time.sleep(0.2)
    notify_socket.drain()
    mark = time.monotonic()
    time.sleep(0.4)
    late = [m for t, m in notify_socket.messages if t > mark]
    notify_socket.drain()
    late += [m for t, m in notify_socket.messages if t > mark]
    assert not any("WATCHDOG=1" in m for m in late)
    release.set()                                              # jobs progress again
    wait_for(lambda: "WATCHDOG=1" in [m for t, m in notify_socket.messages if t > mark] + notify_socket.drain()[-1:])
    assert run.stop() == 0


def test_transient_errors_count_as_progress_but_are_logged():
    def outage():
        raise TransientError("HTTP 503", system="okitoki", operation="call_log", status=503)

    syncer = FakeSyncer()
    for job in JOBS:
        syncer.behaviour[job] = outage
    daemon = _daemon(syncer)
    with capture_logs() as logs:
        run = Running(daemon)
        wait_for(lambda: syncer.count("push") >= 2)
        assert daemon.progress.last_progress is not None
        run.stop()
    assert any(e["event"] == "job_deferred" for e in logs)


def test_stop_sets_the_event_push_sees_and_waits_for_the_batch():
    syncer = FakeSyncer()
    finished = threading.Event()

    def long_push():
        syncer.stop.wait(10)        # a real push checks the event between batches
        time.sleep(0.2)             # ... and commits the batch in flight
        finished.set()
        return Report("push", {"sent": 5})

    syncer.behaviour["push"] = long_push
    daemon = _daemon(syncer)
    run = Running(daemon)
    wait_for(lambda: syncer.count("push") >= 1)
    started = time.monotonic()
    assert run.stop() == 0
    assert finished.is_set() and syncer.closed and daemon.unfinished_jobs == 0
    assert time.monotonic() - started < 3


def test_a_job_ignoring_stop_is_abandoned_after_shutdown_timeout():
    syncer = FakeSyncer()
    syncer.behaviour["housekeeping"] = lambda: time.sleep(1.5)
    daemon = _daemon(syncer, config=fast_config(shutdown_timeout="300ms"))
    run = Running(daemon)
    wait_for(lambda: syncer.count("housekeeping") >= 1)
    started = time.monotonic()
    assert run.stop() == 0
    assert time.monotonic() - started < 2
    assert daemon.unfinished_jobs == 1 and syncer.closed


def test_a_call_hint_pulls_calls_now():
    syncer = FakeSyncer()
    daemon = _daemon(syncer, config=fast_config())
    run = Running(daemon)
    wait_for(lambda: syncer.count("pull:okitoki:calls") >= 1)
    daemon._scheduler.reschedule_job("pull:okitoki:calls", trigger="interval", hours=1)
    before = syncer.count("pull:okitoki:calls")
    daemon.hint_call("9001")
    wait_for(lambda: syncer.count("pull:okitoki:calls") > before, timeout=2)
    run.stop()
    assert syncer.hints == ["9001"]


def test_startup_config_error_exits_78_and_other_failures_exit_1(notify_socket):
    class Broken(FakeSyncer):
        def __init__(self, exc):
            super().__init__()
            self.exc = exc

        def startup(self):
            raise self.exc

    assert _daemon(Broken(ConfigError("daemon.state_url: needs syncd migrate"))).run() == 78
    assert _daemon(Broken(OSError("disk gone")), notify_socket).run() == 1
    assert "startup failed" in notify_socket.fields()[-1]["STATUS"]


def test_a_refused_token_at_startup_is_loud_but_the_daemon_still_becomes_ready(notify_socket):
    def refuse():
        raise AuthenticationError("token refused", system="okitoki", operation="dialers", status=401)

    syncer = FakeSyncer()
    syncer.okitoki = type("Side", (), {"health_check": staticmethod(refuse)})()
    syncer.crm = type("Side", (), {"health_check": staticmethod(lambda: None)})()
    with capture_logs() as logs:
        run = Running(_daemon(syncer, notify_socket))
        wait_for(lambda: syncer.count("push") >= 1)
        assert run.stop() == 0
    ready = notify_socket.fields()[0]
    assert ready["READY"] == "1" and "ACTION NEEDED (health:okitoki)" in ready["STATUS"]
    assert any(e["event"] == "ACTION_NEEDED" and e["system"] == "okitoki" for e in logs)


def test_a_configuration_problem_found_by_the_first_health_check_exits_78():
    def gone():
        raise ConfigError('crm.options: table "contacts" no longer exists')

    syncer = FakeSyncer()
    syncer.crm = type("Side", (), {"health_check": staticmethod(gone)})()
    assert _daemon(syncer).run() == 78
    assert syncer.calls == []


def test_the_fake_syncer_has_every_member_the_daemon_calls():
    # the daemon calls a DaemonSyncer's members without probing: a fake missing one fails
    # here, not as an AttributeError in a job thread (mypy checks the engine's Syncer)
    from syncd.engine.seam import DaemonSyncer

    assert isinstance(FakeSyncer(), DaemonSyncer)
