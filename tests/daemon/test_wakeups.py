"""Wake-ups: nothing waits for another job's interval. Every interval here is an hour after
the start-up runs, so only a wake-up can make a job run within the test."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from fakesyncer import FakeSyncer, Report, fast_config, wait_for
from syncd.daemon import Daemon
from syncd.engine.hints import CallRetries
from syncd.notify import Notifier
from syncd.wakeups import HINTED_CRM

HOUR = {"push_interval": "1h", "housekeeping_interval": "1h"}


def _start(syncer: FakeSyncer) -> tuple[Daemon, threading.Thread]:
    cfg = fast_config(**HOUR)
    cfg = cfg.model_copy(update={
        "okitoki": cfg.okitoki.model_copy(update={"poll_interval": timedelta(hours=1)}),
        "crm": cfg.crm.model_copy(update={"poll_interval": timedelta(hours=1)}),
        "verify": cfg.verify.model_copy(update={"interval": None})})
    daemon = Daemon(syncer, cfg, notifier=Notifier(None), tick=0.05)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    wait_for(lambda: all(syncer.count(j) >= 1 for j in ("push", "pull:crm:contacts", "pull:okitoki:calls")))
    time.sleep(0.1)
    return daemon, thread


def _stop(daemon: Daemon, thread: threading.Thread) -> None:
    daemon.stop()
    thread.join(10)


def test_a_pull_that_recorded_changes_wakes_the_push_at_once():
    syncer = FakeSyncer()
    daemon, thread = _start(syncer)
    try:
        pushes = syncer.count("push")
        syncer.behaviour["pull:crm:contacts"] = lambda: Report("pull:crm:contacts", {"changed": 1})
        daemon.wake("pull:crm:contacts")
        wait_for(lambda: syncer.count("push") > pushes, timeout=1.0)
    finally:
        _stop(daemon, thread)


def test_a_pull_that_recorded_nothing_does_not_wake_the_push():
    syncer = FakeSyncer()
    daemon, thread = _start(syncer)
    try:
        pushes = syncer.count("push")
        syncer.behaviour["pull:okitoki:contacts"] = lambda: Report("pull:okitoki:contacts", {"read": 5, "unchanged": 5})
        calls = syncer.count("pull:okitoki:contacts")
        daemon.wake("pull:okitoki:contacts")
        wait_for(lambda: syncer.count("pull:okitoki:contacts") > calls)
        time.sleep(0.3)
        assert syncer.count("push") == pushes
    finally:
        _stop(daemon, thread)


def test_a_job_woken_while_it_runs_runs_again_right_after():
    syncer = FakeSyncer()
    daemon, thread = _start(syncer)
    try:
        gate = threading.Event()
        syncer.behaviour["push"] = lambda: (gate.wait(5), None)[1]
        pushes = syncer.count("push")
        daemon.wake("push")
        wait_for(lambda: syncer.running.get("push") == 1)
        daemon.wake("push")               # APScheduler alone would drop this one (max_instances=1)
        gate.set()
        wait_for(lambda: syncer.count("push") >= pushes + 2, timeout=2)
        assert syncer.max_running["push"] == 1
    finally:
        _stop(daemon, thread)


class HintingSyncer(FakeSyncer):
    """Records CRM hints and has a calls-retry schedule like the real syncer."""

    def __init__(self) -> None:
        super().__init__()
        self.crm_hints: list[str] = []
        self.call_retries = CallRetries(backoff=(timedelta(seconds=0.3), timedelta(seconds=0.6)))

    def hint_contacts(self, ids):
        self.crm_hints += ids
        return len(ids)

    def pull_crm_hinted(self):
        return self._job(HINTED_CRM)


def test_a_crm_hint_reads_the_record_then_wakes_the_push():
    syncer = HintingSyncer()
    daemon, thread = _start(syncer)
    try:
        pushes = syncer.count("push")
        syncer.behaviour[HINTED_CRM] = lambda: Report(HINTED_CRM, {"hinted_read": 1, "new_links": 1})
        assert daemon.hint_contacts(["42"]) == 1
        wait_for(lambda: syncer.count(HINTED_CRM) >= 1 and syncer.count("push") > pushes, timeout=1.0)
        assert syncer.crm_hints == ["42"]
    finally:
        _stop(daemon, thread)


def test_a_hinted_call_not_in_the_log_is_pulled_again_on_the_backoff_then_left_to_the_poll():
    syncer = HintingSyncer()
    daemon, thread = _start(syncer)
    at: list[float] = []

    def calls_pull():
        at.append(time.monotonic())
        now = datetime.now(UTC)
        missing = syncer.call_retries.due(now) or ["9001"]
        syncer.call_retries.missed(missing, now)
        return Report("pull:okitoki:calls", {})
    try:
        syncer.behaviour["pull:okitoki:calls"] = calls_pull
        daemon.hint_call("9001")
        wait_for(lambda: len(at) >= 3, timeout=3)
        time.sleep(1.0)
        assert len(at) == 3, "a hinted call is looked for at most len(backoff) more times"
        gaps = [b - a for a, b in zip(at, at[1:])]
        assert 0.25 <= gaps[0] <= 0.8 and 0.5 <= gaps[1] <= 1.1, gaps
        assert syncer.call_retries.waiting() == []
    finally:
        _stop(daemon, thread)


def test_call_retries_are_bounded_in_number_and_in_calls_waiting():
    retries = CallRetries(backoff=(timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)),
                          max_pending=2)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    assert retries.missed(["1"], t0) == 0 and retries.next_at() == t0 + timedelta(seconds=2)
    assert retries.due(t0 + timedelta(seconds=1)) == []
    assert retries.due(t0 + timedelta(seconds=2)) == ["1"]
    retries.missed(["1"], t0 + timedelta(seconds=2))
    assert retries.next_at() == t0 + timedelta(seconds=6)
    retries.missed(["1"], t0 + timedelta(seconds=6))
    assert retries.next_at() == t0 + timedelta(seconds=14)
    assert retries.missed(["1"], t0 + timedelta(seconds=14)) == 1      # 2, 4, 8 s: then the poll
    assert retries.waiting() == []
    assert retries.missed(["a", "b", "c"], t0) == 1                    # at most 2 waiting at once
    retries.found(["a"])
    assert retries.waiting() == ["b"]


def test_a_run_apscheduler_skipped_while_the_job_ran_is_made_up_right_after():
    syncer = FakeSyncer()
    daemon, thread = _start(syncer)
    try:
        gate = threading.Event()
        syncer.behaviour["push"] = lambda: (gate.wait(5), None)[1]
        pushes = syncer.count("push")
        daemon.wake("push")
        wait_for(lambda: syncer.running.get("push") == 1)
        # what an interval firing (or a wake-up racing the run's end) does: the scheduler
        # skips it for max_instances=1
        daemon._scheduler.modify_job("push", next_run_time=datetime.now(UTC))
        time.sleep(0.3)
        gate.set()
        wait_for(lambda: syncer.count("push") >= pushes + 2, timeout=2)
    finally:
        _stop(daemon, thread)
