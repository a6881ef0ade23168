"""Health tells the truth: a stream that makes no progress for 3 of its intervals (failing,
deferred or hanging) turns /healthz 503 naming it, stops the watchdog pings, and shows in
``syncd status``; a success turns it green again. Injected clock; real HTTP on loopback."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fakesyncer import FakeSyncer, Report, fast_config, wait_for
from syncd.daemon import Daemon
from syncd.engine.status import status_report
from syncd.errors import BudgetExhausted
from syncd.health import StreamWatch, outcome_of, record_outcome, stream_health
from syncd.notify import Notifier
from syncd.store import open_store
from syncd.store.tables import CursorRow

OTHERS = ("pull:okitoki:contacts", "pull:okitoki:calls", "push")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Served:
    def __init__(self, syncer, notify_path=None) -> None:
        self.now = [T0]
        self.syncer = syncer
        self.daemon = Daemon(syncer, fast_config(http_listen="127.0.0.1:0"),
                             notifier=Notifier(notify_path), clock=lambda: self.now[0], tick=0.05)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.daemon.web is not None and self.daemon.web.server.started)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.daemon.web.port}", timeout=5)

    def advance(self, seconds: float) -> None:
        """Move the clock on, then let the healthy streams run once more at the new time."""
        self.now[0] += timedelta(seconds=seconds)
        before = {j: self.syncer.count(j) for j in OTHERS}
        wait_for(lambda: all(self.syncer.count(j) >= before[j] + 2 for j in OTHERS))

    def close(self) -> None:
        self.client.close()
        self.daemon.stop()
        self.thread.join(10)


@pytest.fixture
def served(request):
    made = []

    def make(syncer, notify_path=None):
        made.append(Served(syncer, notify_path))
        return made[-1]
    yield make
    for s in made:
        s.close()


def test_a_crm_pull_failing_every_run_turns_healthz_503_after_3_intervals_then_green(served):
    syncer = FakeSyncer()
    failing = [True]

    def pull():
        if failing[0]:
            raise RuntimeError("value too long for type TEXT in row 42")
        return None

    syncer.behaviour["pull:crm:contacts"] = pull
    s = served(syncer)
    wait_for(lambda: syncer.count("pull:crm:contacts") >= 2)
    s.advance(0.2)                                 # 2 intervals (100 ms each): still green
    assert s.client.get("/healthz").status_code == 200
    s.advance(0.2)                                 # 4 intervals without progress
    r = s.client.get("/healthz")
    assert r.status_code == 503, r.text
    stuck = r.json()["stuck"]
    assert [x["stream"] for x in stuck] == ["pull:crm:contacts"]
    assert "value too long for type TEXT" in stuck[0]["reason"] and stuck[0]["last_advanced"] is None
    failing[0] = False
    before = syncer.count("pull:crm:contacts")
    wait_for(lambda: syncer.count("pull:crm:contacts") > before + 1)
    assert s.client.get("/healthz").status_code == 200


def test_a_stream_deferred_forever_turns_red_too(served):
    syncer = FakeSyncer()

    def spent():
        raise BudgetExhausted("daily request budget of 20000 is spent", system="okitoki")

    syncer.behaviour["pull:okitoki:calls"] = spent
    s = served(syncer)
    wait_for(lambda: syncer.count("pull:okitoki:calls") >= 2)
    s.now[0] += timedelta(seconds=0.4)
    before = syncer.count("push")
    wait_for(lambda: syncer.count("push") >= before + 2 and syncer.count("pull:crm:contacts") >= 3)
    r = s.client.get("/healthz")
    assert r.status_code == 503
    stuck = {x["stream"]: x["reason"] for x in r.json()["stuck"]}
    assert list(stuck) == ["pull:okitoki:calls"]
    assert stuck["pull:okitoki:calls"].startswith("deferred: BudgetExhausted")


def test_watchdog_pings_stop_while_a_stream_is_stuck(served, notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")   # pings every tick while healthy
    syncer = FakeSyncer()
    failing = [True]

    def pull():
        if failing[0]:
            raise RuntimeError("boom")
        return None

    syncer.behaviour["pull:crm:contacts"] = pull
    s = served(syncer, notify_socket.path)
    s.daemon.status_every = 0
    wait_for(lambda: "WATCHDOG=1" in notify_socket.drain())
    s.advance(0.4)
    wait_for(lambda: "STUCK: pull:crm:contacts" in "".join(notify_socket.drain()))
    mark = time.monotonic()
    time.sleep(0.3)
    notify_socket.drain()
    assert not any("WATCHDOG=1" in m for t, m in notify_socket.messages if t > mark)
    failing[0] = False
    wait_for(lambda: any("WATCHDOG=1" in m for t, m in notify_socket.messages if t > mark)
             or "WATCHDOG=1" in "".join(notify_socket.drain()[-3:]))


def test_standby_runs_count_as_progress_and_a_hanging_job_does_not():
    config = fast_config()
    watch = StreamWatch(config, None, since=T0)
    for stream in ("pull:crm:contacts", "pull:okitoki:contacts", "pull:okitoki:calls", "push"):
        watch.finished(stream, T0, *outcome_of(Report(stream, {"not_leader": 1})))
    assert watch.stuck(T0 + timedelta(seconds=0.12)) == []     # push: 3 x 50 ms
    watch.started("push", T0 + timedelta(seconds=0.1))
    stuck = {x["stream"]: x["reason"] for x in watch.stuck(T0 + timedelta(seconds=1))}
    assert set(stuck) == {"pull:crm:contacts", "pull:okitoki:contacts", "pull:okitoki:calls", "push"}
    assert stuck["push"] == "running for 0s without progress"   # (0.9 s, whole seconds)
    watch.advanced("push", T0 + timedelta(seconds=0.9))    # a long push settled a batch
    assert "push" not in {x["stream"] for x in watch.stuck(T0 + timedelta(seconds=1))}


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'state.db'}", create=True)
    yield s
    s.close()


def test_status_reads_each_streams_last_advance_from_the_state_database(store):
    intervals = {"pull:crm:contacts": timedelta(seconds=30), "push": timedelta(seconds=5)}
    record_outcome(store, "pull:crm:contacts", at=T0, outcome="ok")
    record_outcome(store, "pull:crm:contacts", at=T0 + timedelta(seconds=60), outcome="failed",
                   reason="RuntimeError: bad row with api_token=tok-secret-999")
    record_outcome(store, "push", at=T0 + timedelta(seconds=95), outcome="ok")
    now = T0 + timedelta(seconds=100)
    health = {h["stream"]: h for h in stream_health(store, intervals, now)}
    crm = health["pull:crm:contacts"]
    assert crm["stuck"] and crm["advanced_at"] == T0 and crm["last_outcome"] == "failed"
    assert "bad row" in crm["reason"] and "tok-secret-999" not in crm["reason"]
    assert not health["push"]["stuck"]
    # a long walk commits pages: its cursor's updated_at is progress too
    with store.begin() as conn:
        conn.execute(CursorRow.__table__.insert().values(stream="crm:contacts", value=T0,
                                                         updated_at=now - timedelta(seconds=10)))
    assert not {h["stream"]: h for h in stream_health(store, intervals, now)}["pull:crm:contacts"]["stuck"]
    # ... but not a page committed by a run that then failed (re-reading its overlap, say)
    record_outcome(store, "pull:crm:contacts", at=now - timedelta(seconds=5), outcome="failed",
                   reason="RuntimeError: page 2")
    crm = {h["stream"]: h for h in stream_health(store, intervals, now)}["pull:crm:contacts"]
    assert crm["stuck"] and crm["advanced_at"] == T0 and crm["reason"] == "RuntimeError: page 2"
    record_outcome(store, "pull:crm:contacts", at=now - timedelta(seconds=1), outcome="ok")
    report = status_report(store, intervals=intervals, now=now)
    assert report["streams"]["pull:crm:contacts"]["advanced_at"] == (now - timedelta(seconds=1)).isoformat()
    assert report["streams"]["push"]["stuck"] is False and report["drift"] is None


def test_the_daemon_runs_verify_on_its_interval_with_repair_and_a_partial_run_is_no_progress():
    from cfgkit import ENV, base
    from syncd.config import validate_config_dict

    cfg = base()
    cfg["daemon"].update({"push_interval": "50ms", "housekeeping_interval": "1h", "jitter": "0s"})
    cfg["okitoki"]["poll_interval"] = "100ms"
    cfg["crm"]["poll_interval"] = "100ms"
    cfg["verify"] = {"interval": "100ms"}
    config = validate_config_dict(cfg, "test.toml", environ=ENV)
    seen = []

    class Verifying(FakeSyncer):
        def verify(self, repair=False, progress=None):
            seen.append(repair)
            rep = self._job("verify")
            rep.deferred = "okitoki budget low: 5 of 20000 requests left today"
            return rep

    syncer = Verifying()
    now = [T0]
    daemon = Daemon(syncer, config, notifier=Notifier(None), clock=lambda: now[0], tick=0.05)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: syncer.count("verify") >= 2)
        assert seen[0] is True                  # the daemon repairs by default
        now[0] += timedelta(seconds=0.5)
        before = syncer.count("push")
        wait_for(lambda: syncer.count("push") >= before + 2 and syncer.count("pull:crm:contacts") >= 3
                 and syncer.count("pull:okitoki:calls") >= 3 and syncer.count("pull:okitoki:contacts") >= 3)
        time.sleep(0.3)
        stuck = {x["stream"]: x["reason"] for x in daemon.stuck_streams(now[0])}
        assert list(stuck) == ["verify"]
        assert stuck["verify"] == "deferred: okitoki budget low: 5 of 20000 requests left today"
    finally:
        daemon.stop()
        thread.join(10)


def test_metrics_export_the_last_drift_report_by_kind(store):
    from types import SimpleNamespace

    from syncd.engine.drift import DriftReport, save_report
    from syncd.engine.status import metric_gauges
    from syncd.web import Metrics

    syncer = SimpleNamespace(store=store, gauges=lambda: metric_gauges(store))   # the store's gauges
    assert "syncd_drift_records" not in Metrics(syncer).render().decode()
    report = DriftReport(started_at=T0, repair=True, finished_at=T0)
    report.add("gone_crm", "crm:7")
    report.add("values_differ", "okitoki:3 (name)")
    report.add("values_differ", "crm:9 (email)")
    save_report(store, report)
    text = Metrics(syncer).render().decode()
    assert 'syncd_drift_records{kind="values_differ"} 2.0' in text
    assert 'syncd_drift_records{kind="gone_crm"} 1.0' in text
    assert 'syncd_drift_records{kind="call_missing"} 0.0' in text


def test_next_verify_follows_the_last_stored_report_so_restarts_neither_skip_nor_repeat_it(store):
    from syncd.engine.drift import DriftReport, next_run, save_report

    day = timedelta(days=1)
    assert next_run(store, day, T0) == T0 + day                      # none yet: a day from now
    save_report(store, DriftReport(started_at=T0 - timedelta(hours=20), finished_at=T0))
    assert next_run(store, day, T0) == T0 + timedelta(hours=4)
    save_report(store, DriftReport(started_at=T0 - timedelta(days=3), finished_at=T0))
    assert next_run(store, day, T0) == T0 + timedelta(minutes=1)     # overdue: soon, not at once


@pytest.mark.parametrize("off", ["0", "off", "OFF", 0, False])
def test_verify_interval_off_disables_the_job_and_its_health(off):
    from cfgkit import ENV, base
    from syncd.config import validate_config_dict
    from syncd.health import stream_intervals

    cfg = base()
    cfg["verify"] = {"interval": off}
    config = validate_config_dict(cfg, "test.toml", environ=ENV)
    assert config.verify.interval is None and "verify" not in stream_intervals(config)
    cfg["verify"] = {"interval": "12h"}
    config = validate_config_dict(cfg, "test.toml", environ=ENV)
    assert stream_intervals(config)["verify"] == timedelta(hours=12)
