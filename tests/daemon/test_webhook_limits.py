"""The event receiver as an attacker meets it: the token is checked before the body is read,
bodies are bounded (413), JSON depth and fields are limited, unknown events are ignored with
202, nothing is ever a 5xx, hints are de-duplicated and rate limited, and a fuzz of 10,000
generated requests causes no hint (so no Oki-Toki request) without the token."""

from __future__ import annotations

import json
import random
import resource
import threading
from datetime import UTC, datetime

import httpx
import pytest

from fakesyncer import FakeSyncer, fast_config, wait_for
from syncd.daemon import Daemon
from syncd.notify import Notifier
from syncd.webhooks import MAX_BODY

TOKEN = "hook-token-xyz"


@pytest.fixture
def listener():
    syncer = FakeSyncer()
    config = fast_config(http_listen="127.0.0.1:0")
    config = config.model_copy(update={"okitoki": config.okitoki.model_copy(
        update={"webhook_hints_per_minute": 1000})})
    daemon = Daemon(syncer, config, notifier=Notifier(None), clock=lambda: datetime.now(UTC), tick=0.05)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    wait_for(lambda: daemon.web is not None and daemon.web.server.started)
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.web.port}", timeout=10) as client:
        yield client, daemon, syncer
    daemon.stop()
    thread.join(10)


def test_a_wrong_token_in_the_query_is_refused_before_the_body_is_read(listener):
    client, _, syncer = listener
    deep = "[" * 100_000 + "]" * 100_000       # would crash a parser without a depth limit
    r = client.post("/events/okitoki?token=nope", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 401 and syncer.hints == []


def test_bodies_are_bounded_even_when_chunked(listener):
    client, _, syncer = listener
    big = b"session_id=1&token=" + TOKEN.encode() + b"&pad=" + b"x" * (MAX_BODY + 10)
    assert client.post("/events/okitoki", content=big).status_code == 413

    def chunks():
        yield b"session_id=2&token=" + TOKEN.encode() + b"&pad="
        for _ in range(100):
            yield b"y" * 1024
    r = client.post("/events/okitoki", content=chunks())   # no Content-Length: chunked
    assert r.status_code == 413 and syncer.hints == []


def test_deep_or_wide_json_is_a_400_not_a_500(listener):
    client, _, syncer = listener
    deep = '{"token": "%s", "session_id": 3, "x": %s}' % (TOKEN, "[" * 50 + "]" * 50)
    assert client.post("/events/okitoki", content=deep, headers={"content-type": "application/json"}).status_code == 400
    wide = {"token": TOKEN, "session_id": 4, **{f"f{i}": i for i in range(500)}}
    assert client.post("/events/okitoki", json=wide).status_code == 400
    assert syncer.hints == []


def test_unknown_events_are_accepted_and_ignored_and_repeats_hint_once(listener):
    client, _, syncer = listener
    r = client.get("/events/okitoki", params={"event": "agent_status", "session_id": "5", "token": TOKEN})
    assert r.status_code == 202 and r.json()["accepted"] is False
    for _ in range(3):
        assert client.get("/events/okitoki", params={"event": "call_finished", "session_id": "6",
                                                     "token": TOKEN}).status_code == 202
    assert syncer.hints == ["6"]


def test_hints_past_the_limit_per_minute_are_dropped_and_counted(listener):
    client, daemon, syncer = listener
    receiver_limit = 1000
    for n in range(receiver_limit + 20):
        client.get("/events/okitoki", params={"session_id": str(100_000 + n), "token": TOKEN})
    assert len(syncer.hints) == receiver_limit
    assert 'syncd_webhook_events_total{result="dropped"} 20.0' in client.get("/metrics").text


def _fuzz_request(rng: random.Random) -> tuple[dict, bool, str | None]:
    """(httpx request kwargs, carries the right token, session id it names)."""
    sid = rng.choice([str(rng.randint(1, 10**6)), "", "abc", "-1", "1" * 40, "１２３", None])
    token = rng.choice([TOKEN, TOKEN + "x", "", None, TOKEN.upper(), "Bearer " + TOKEN])
    where = rng.choice(["query", "form", "json", "header", "json_request"])
    event = rng.choice(["call_finished", "", "agent_status", "CALL", "x" * 300, None])
    fields = {k: v for k, v in (("session_id", sid), ("event", event)) if v is not None}
    headers, params, content = {}, {}, None
    method = rng.choice(["GET", "POST", "POST", "POST", "PUT"])
    if where == "header" and token:
        headers["authorization"] = f"Bearer {token}"
    elif token is not None:
        fields["token"] = token
    kind = rng.random()
    if where in ("query", "header") or method == "GET":
        params = fields
    elif where == "json":
        content = json.dumps(fields).encode()
        headers["content-type"] = "application/json"
    elif where == "json_request":
        content = json.dumps({"json_request": json.dumps(fields)}).encode()
        headers["content-type"] = "application/json"
    else:
        content = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    if kind < 0.1:
        content = bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))
        headers["content-type"] = rng.choice(["application/json", "text/plain", "", "multipart/form-data"])
    elif kind < 0.15:
        content = ("[" * rng.randint(1, 5000)).encode()
        headers["content-type"] = "application/json"
    elif kind < 0.18:
        content = b"a=" + b"b" * rng.randint(MAX_BODY - 10, MAX_BODY + 10)
    elif kind < 0.2:
        headers["content-type"] = "application/json; charset=latin-1"
        content = json.dumps(fields).encode("utf-16")
    right = token == TOKEN
    return ({"method": method, "url": "/events/okitoki", "params": params, "headers": headers,
             "content": content}, right, sid)


@pytest.mark.slow
def test_ten_thousand_generated_requests_no_5xx_and_no_hint_without_the_token(listener):
    client, _, syncer = listener
    rng = random.Random(20261201)
    allowed: set[str] = set()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    codes: dict[int, int] = {}
    for _ in range(10_000):
        kwargs, authentic, sid = _fuzz_request(rng)
        r = client.request(**kwargs)
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
        assert r.status_code < 500, (kwargs, r.status_code, r.text[:200])
        if authentic and sid:
            allowed.add(sid)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert set(syncer.hints) <= allowed, set(syncer.hints) - allowed
    assert len(syncer.hints) == len(set(syncer.hints)), "a call hinted twice"
    assert codes.get(202, 0) > 500 and codes.get(401, 0) > 500, codes
    assert grown_mb < 100, f"peak RSS grew by {grown_mb:.0f} MB"
