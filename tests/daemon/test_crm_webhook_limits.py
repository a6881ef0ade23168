"""/events/crm as an attacker meets it (the bar of /events/okitoki): authentication before the
body, bounded bodies, JSON limits, never a 5xx, record ids rate limited per minute."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime

import httpx
import pytest

from connectors._webhooks import pipedrive_ids
from fakesyncer import FakeSyncer, NoHealthCheck, fast_config, wait_for
from syncd.daemon import Daemon
from syncd.notify import Notifier
from syncd.webhooks import MAX_BODY

AUTH = {"authorization": "Basic " + base64.b64encode(b"syncd:pw-0123456789").decode(),
        "content-type": "application/json"}


class PipedriveLike(NoHealthCheck):
    """A connector stub with the real Pipedrive webhook check (or a broken one)."""

    broken = False

    def webhook_ids(self, request):
        if self.broken:
            raise RuntimeError("a connector bug")
        return pipedrive_ids(request, "syncd", "pw-0123456789")


class CrmSyncer(FakeSyncer):
    def __init__(self) -> None:
        super().__init__()
        self.crm = PipedriveLike()
        self.crm_hints: list[str] = []

    def hint_contacts(self, ids):
        new = [i for i in ids if i not in self.crm_hints]
        self.crm_hints += new
        return len(new)

    def pull_crm_hinted(self):
        return self._job("pull:crm:hinted")


def _event(pid) -> bytes:
    return json.dumps({"meta": {"action": "change", "entity": "person", "entity_id": str(pid)},
                       "data": {"id": pid}}).encode()


@pytest.fixture
def listener():
    syncer = CrmSyncer()
    config = fast_config(http_listen="127.0.0.1:0")
    config = config.model_copy(update={"crm": config.crm.model_copy(update={"webhook_hints_per_minute": 3})})
    daemon = Daemon(syncer, config, notifier=Notifier(None), clock=lambda: datetime.now(UTC), tick=0.05)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    wait_for(lambda: daemon.web is not None and daemon.web.server.started)
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.web.port}", timeout=10) as client:
        yield client, daemon, syncer
    daemon.stop()
    thread.join(10)


def test_wrong_basic_auth_is_refused_before_the_body_is_read(listener):
    client, _, syncer = listener
    deep = "[" * 100_000 + "]" * 100_000
    bad = {**AUTH, "authorization": "Basic " + base64.b64encode(b"syncd:guess").decode()}
    assert client.post("/events/crm", content=deep, headers=bad).status_code == 401
    assert client.post("/events/crm", content=_event(1), headers={"content-type": "application/json"}).status_code == 401
    assert syncer.crm_hints == []


def test_bodies_are_bounded_and_json_is_limited(listener):
    client, _, syncer = listener
    assert client.post("/events/crm", content=b"{" + b" " * (MAX_BODY + 10) + b"}", headers=AUTH).status_code == 413

    def chunks():
        for _ in range(100):
            yield b" " * 1024
    assert client.post("/events/crm", content=chunks(), headers=AUTH).status_code == 413
    assert client.post("/events/crm", content="[" * 50 + "]" * 50, headers=AUTH).status_code == 400
    assert client.post("/events/crm", content=b"not json", headers=AUTH).status_code == 400
    wide = json.dumps({"meta": {"entity": "person", "entity_id": "1"}, **{f"k{i}": i for i in range(200)}})
    assert client.post("/events/crm", content=wide, headers=AUTH).status_code == 400
    assert syncer.crm_hints == []


def test_an_event_about_something_else_is_ignored_with_202(listener):
    client, _, syncer = listener
    deal = json.dumps({"meta": {"action": "change", "entity": "deal", "entity_id": "5"}})
    r = client.post("/events/crm", content=deal, headers=AUTH)
    assert r.status_code == 202 and r.json()["accepted"] == 0 and syncer.crm_hints == []


def test_record_ids_are_rate_limited_per_minute_and_duplicates_counted(listener):
    client, daemon, syncer = listener
    answers = [client.post("/events/crm", content=_event(pid), headers=AUTH) for pid in (1, 1, 2, 3, 4, 5)]
    assert all(r.status_code == 202 for r in answers)
    assert syncer.crm_hints == ["1", "2"]     # a repeated id still counts against the minute
    dropped = daemon.metrics.crm_events.labels(result="dropped")._value.get()
    assert dropped == 3                     # 6 ids, 3 a minute: 1, 1 (duplicate), 2 taken
    assert daemon.metrics.crm_events.labels(result="duplicate")._value.get() == 1
    wait_for(lambda: syncer.count("pull:crm:hinted") >= 1)


def test_a_connector_bug_is_a_400_never_a_5xx(listener):
    client, _, syncer = listener
    syncer.crm.broken = True
    assert client.post("/events/crm", content=_event(7), headers=AUTH).status_code == 400
