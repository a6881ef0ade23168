"""Bitrix24 calls (once per session_id), OAuth rotation and secret hygiene, over loopback."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from connectors.bitrix24 import Bitrix24Connector, Bitrix24Options
from syncd.errors import PermissionDenied
from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor
from syncd.redact import redact
from tests.connectors.test_bitrix24 import connector, make_context
from tests.fakes.bitrix24 import running_bitrix24

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def a_call(session_id="7001", contact_id=None, **kw):
    base = dict(direction=CallDirection.INBOUND, phone="+380501234567", started_at=T0, duration_s=95,
                talk_s=80, outcome=CallOutcome.ANSWERED, agent="anna",
                recording_url="https://rec.example/7001.mp3")
    return Call(session_id=session_id, contact_id=contact_id, **{**base, **kw})


@pytest.fixture
def clock():
    return [T0]


@pytest.fixture
def fake(clock):
    with running_bitrix24(clock=lambda: clock[0]) as fake:
        yield fake


def test_call_is_registered_finished_recorded_and_marked(fake, tmp_path):
    cid = fake.state.add_contact(("+380501234567",))
    [r] = connector(fake, tmp_path).log_calls([a_call(contact_id=str(cid))])
    assert r.ok and r.key == "7001"
    [activity] = fake.state.activities.values()
    assert str(activity["ID"]) == r.id and activity["OWNER_ID"] == cid
    assert "[oki-toki:7001]" in activity["SUBJECT"] and activity["DIRECTION"] == 1
    assert activity["RECORDS"] == ["https://rec.example/7001.mp3"]
    [call] = fake.state.calls.values()
    assert call["finished"]["DURATION"] == "95" and call["finished"]["STATUS_CODE"] == "200"


def test_logging_the_same_call_again_much_later_leaves_one_activity(fake, tmp_path, clock):
    cid = fake.state.add_contact(("+380501234567",))
    conn = connector(fake, tmp_path)
    first = conn.log_calls([a_call(contact_id=str(cid))])
    clock[0] += timedelta(hours=2)   # past Bitrix24's own 30-minute register window
    again = conn.log_calls([a_call(contact_id=str(cid)), a_call(contact_id=str(cid))])
    assert len(fake.state.activities) == 1 and len(fake.state.calls) == 1
    assert [r.id for r in again] == [first[0].id, first[0].id]


def test_a_batch_of_calls_costs_a_few_batch_requests(fake, tmp_path):
    cid = fake.state.add_contact(("+380501234567",))
    conn = connector(fake, tmp_path)
    fake.state.http_requests = 0
    results = conn.log_calls([a_call(str(7000 + i), contact_id=str(cid), started_at=T0 + timedelta(minutes=i))
                              for i in range(40)])
    assert all(r.ok for r in results)
    assert fake.state.http_requests <= 5   # list, register, finish, update+attach (2 chunks)


def test_without_telephony_scope_calls_fall_back_to_activities_once(tmp_path):
    with running_bitrix24(scopes={"crm"}) as fake:
        cid = fake.state.add_contact(("+380501234567",))
        conn = connector(fake, tmp_path)
        with structlog.testing.capture_logs() as logs:
            [r] = conn.log_calls([a_call(contact_id=str(cid), direction=CallDirection.OUTBOUND)])
            conn.log_calls([a_call(contact_id=str(cid))])
            conn.log_calls([a_call("7002", contact_id=str(cid))])
        assert r.ok
        assert len(fake.state.activities) == 2
        activity = fake.state.activities[int(r.id)]
        assert activity["DIRECTION"] == "2" and activity["ORIGIN_ID"] == "oki-toki:7001"
        assert "Recording: https://rec.example/7001.mp3" in activity["DESCRIPTION"]
        assert [e["event"] for e in logs].count("bitrix24.telephony_scope_missing") == 1
        assert "telephony.externalcall.register" not in fake.state.journal[-3:]


def test_fallback_without_a_contact_is_a_per_call_failure(tmp_path):
    with running_bitrix24(scopes={"crm"}) as fake:
        [r] = connector(fake, tmp_path).log_calls([a_call()])
    assert not r.ok and not r.retriable and "contact" in r.error


def test_telephony_mode_without_the_scope_is_permission_denied(tmp_path):
    with running_bitrix24(scopes={"crm"}) as fake:
        conn = Bitrix24Connector(Bitrix24Options(webhook_url=fake.webhook_url, calls="telephony"),
                                 make_context(tmp_path))
        with pytest.raises(PermissionDenied):
            conn.log_calls([a_call()])


def oauth_connector(fake, tmp_path, refresh_token):
    s = fake.state
    return Bitrix24Connector(Bitrix24Options(portal_url=fake.url, oauth_url=fake.url, client_id=s.client_id,
                                             client_secret=s.client_secret, refresh_token=refresh_token),
                             make_context(tmp_path))


def test_oauth_rotation_is_persisted_0600_and_survives_a_restart(fake, tmp_path):
    seed = fake.state.new_refresh_token()
    fake.state.add_contact(NAME="A")
    conn = oauth_connector(fake, tmp_path, seed)
    assert len(conn.changed_contacts(Cursor(), 10).contacts) == 1
    store = tmp_path / "state" / "oauth-bitrix24.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    conn.close()
    # The seed is spent (rotated); a restarted daemon with the same config still gets in.
    fake.state.expire_access_tokens()
    restarted = oauth_connector(fake, tmp_path, seed)
    assert len(restarted.changed_contacts(Cursor(), 10).contacts) == 1
    assert seed not in fake.state.refresh_tokens


def test_expired_access_token_is_refreshed_and_the_request_repeated(fake, tmp_path):
    conn = oauth_connector(fake, tmp_path, fake.state.new_refresh_token())
    conn.health_check()
    fake.state.expire_access_tokens()
    conn.health_check()
    assert len(fake.state.refresh_tokens) == 1


def test_no_secret_reaches_logs_journal_or_errors(fake, tmp_path):
    secret = fake.state.webhook_secret
    cid = fake.state.add_contact(("+380501234567",))
    ctx = make_context(tmp_path)
    conn = Bitrix24Connector(Bitrix24Options(webhook_url=fake.webhook_url), ctx)
    with structlog.testing.capture_logs() as logs:
        conn.upsert_contacts([ContactWrite("k", "999", fields={"NAME": "x"})])
        conn.log_calls([a_call(contact_id=str(cid))])
        fake.state.scopes.discard("crm")
        with pytest.raises(PermissionDenied) as info:
            conn.changed_contacts(Cursor(), 5)
    text = repr(logs) + repr(ctx.extra["journal"]) + str(info.value)
    assert secret not in text
    assert secret not in redact(f"GET {fake.webhook_url}crm.contact.list.json failed")
