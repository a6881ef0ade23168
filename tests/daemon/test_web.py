"""The HTTP listener over loopback: /healthz, /metrics, /events/okitoki."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fakesyncer import FakeSyncer, fast_config, wait_for
from syncd.daemon import Daemon
from syncd.model import JournalEntry
from syncd.notify import Notifier

TOKEN = "hook-token-xyz"


@pytest.fixture
def served():
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    syncer = FakeSyncer()
    daemon = Daemon(syncer, fast_config(http_listen="127.0.0.1:0"), notifier=Notifier(None),
                    clock=lambda: now[0], tick=0.05)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    wait_for(lambda: daemon.web is not None and daemon.web.server.started)
    base = f"http://127.0.0.1:{daemon.web.port}"
    with httpx.Client(base_url=base, timeout=5) as client:
        yield client, daemon, syncer, now
    daemon.stop()
    thread.join(10)


def test_healthz_is_200_while_jobs_progress_and_503_when_they_stall(served):
    client, daemon, syncer, now = served
    wait_for(lambda: syncer.count("push") >= 1)
    assert client.get("/healthz").status_code == 200
    release = threading.Event()
    for job in ("push", "pull:crm:contacts", "pull:okitoki:contacts", "pull:okitoki:calls",
                "housekeeping"):
        syncer.behaviour[job] = lambda: release.wait(30)              # every job hangs
    try:
        wait_for(lambda: syncer.running.get("push", 0) == 1)
        now[0] += daemon.health_window() + timedelta(seconds=1)
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "stalled"
    finally:
        release.set()


def test_metrics_expose_runs_outbox_depth_and_api_requests(served):
    client, daemon, syncer, _ = served
    wait_for(lambda: syncer.count("push") >= 2)
    daemon.metrics.observe_api(JournalEntry(at=datetime.now(UTC), system="okitoki",
                                            operation="call_log", method="GET", status=200,
                                            duration_ms=12, attempt=1))
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'syncd_job_runs_total{job="push",result="ok"}' in text
    assert 'syncd_outbox_depth{lane="contacts"} 12.0' in text
    assert 'syncd_api_requests_total{operation="call_log",status="200",system="okitoki"} 1.0' in text


@pytest.mark.parametrize("how", ["get", "form", "json", "bearer"])
def test_call_event_with_the_token_hints_the_syncer(served, how):
    client, _, syncer, _ = served
    params = {"event": "call_finished", "session_id": "555", "phone": "+380501234567"}
    if how == "get":
        r = client.get("/events/okitoki", params={**params, "token": TOKEN})
    elif how == "form":
        r = client.post("/events/okitoki", data={**params, "token": TOKEN})
    elif how == "json":
        r = client.post("/events/okitoki", json={**params, "session_id": 555, "token": TOKEN})
    else:
        r = client.post("/events/okitoki", json=params, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 202, r.text
    assert syncer.hints == ["555"]


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x"])
def test_event_with_a_wrong_or_missing_token_is_401_and_no_hint(served, token):
    client, _, syncer, _ = served
    params = {"event": "call_finished", "session_id": "555"}
    if token is not None:
        params["token"] = token
    assert client.get("/events/okitoki", params=params).status_code == 401
    assert client.post("/events/okitoki", data=params).status_code == 401
    assert syncer.hints == []


def test_event_without_a_session_is_accepted_but_ignored_and_garbage_is_400(served):
    client, _, syncer, _ = served
    r = client.get("/events/okitoki", params={"event": "agent_status", "token": TOKEN})
    assert r.status_code == 202 and r.json()["accepted"] is False
    r = client.post("/events/okitoki", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = client.get("/events/okitoki", params={"session_id": "1; DROP", "token": TOKEN})
    assert r.status_code == 400
    assert syncer.hints == []
