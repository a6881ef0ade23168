"""Pipedrive connector against the fake Pipedrive over loopback."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from connectors.pipedrive import PipedriveConnector, PipedriveOptions
from syncd.errors import AuthenticationError, BudgetExhausted, Throttled
from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor
from syncd.testing.context import FAST_RETRY, connector_context
from tests.fakes.pipedrive import API_TOKEN, running_pipedrive

DNC = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6dnc0"   # a custom field key (40 hex chars)
FIELDS = ("name", "email", "owner_id")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server():
    with running_pipedrive() as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    return server


def connect(fake, state_dir, *, timeout=None, **options) -> PipedriveConnector:
    opts = {"url": fake.url, "api_token": API_TOKEN, "settle_s": 0, **options}
    ctx = connector_context(state_dir, field_names=FIELDS, do_not_call_field=DNC, retry=FAST_RETRY)
    if timeout is not None:
        inner = ctx.remote
        ctx.remote = lambda **kw: inner(timeout=timeout, **kw)
    return PipedriveConnector(PipedriveOptions(**opts), ctx)


@pytest.fixture
def pipedrive(fake, tmp_path):
    connector = connect(fake, tmp_path / "state")
    yield connector
    connector.close()


def walk(connector, limit, cursor=Cursor()):
    seen = []
    for _ in range(200):
        page = connector.changed_contacts(cursor, limit)
        assert len(page.contacts) <= limit
        seen += page.contacts
        cursor = page.next
        if not page.more:
            return seen, cursor
    raise AssertionError("the walk does not end")


def test_walk_returns_every_change_once_across_equal_seconds(fake, pipedrive):
    pipedrive.page_size = 3                               # many small vendor pages
    ids = [fake.add_person(f"p{i}", updated_at=T0 + timedelta(seconds=i // 6)) for i in range(25)]
    seen, _ = walk(pipedrive, 4)
    assert sorted(c.id for c in seen) == sorted(ids)
    assert [(c.updated_at, int(c.id)) for c in seen] == sorted((c.updated_at, int(c.id)) for c in seen)


def test_one_second_holding_more_than_a_page(fake, pipedrive):
    pipedrive.page_size = 4
    ids = [fake.add_person(f"same{i}", updated_at=T0) for i in range(11)]
    seen, end = walk(pipedrive, 3)
    assert [c.id for c in seen] == ids
    later = fake.add_person("later", updated_at=T0 + timedelta(seconds=1))
    assert [c.id for c in pipedrive.changed_contacts(end, 3).contacts] == [later]


def test_cursor_resumes_after_restart_and_sends_updated_since(fake, tmp_path):
    ids = [fake.add_person(f"p{i}", updated_at=T0 + timedelta(seconds=i)) for i in range(6)]
    first = connect(fake, tmp_path)
    page = first.changed_contacts(Cursor(), 4)
    first.close()
    again = connect(fake, tmp_path)
    rest, _ = walk(again, 4, page.next)
    assert [c.id for c in page.contacts + rest] == ids
    params = [r for r in fake.requests if r[1] == "/api/v2/persons"]
    assert len(params) >= 2


def test_fields_email_and_do_not_call_custom_field(fake, pipedrive):
    pid = fake.add_person("Ann", ["+380671234567"], updated_at=T0, owner_id=7,
                          emails=[{"value": "ann@x.io", "primary": True, "label": "work"}],
                          custom_fields={DNC: "yes"})
    [c] = pipedrive.fetch_contacts([pid, "999"])
    assert c.fields == {"name": "Ann", "email": "ann@x.io", "owner_id": 7, DNC: True}
    assert c.phones == ("+380671234567",)
    [r] = pipedrive.upsert_contacts([ContactWrite("k", pid, {DNC: False, "email": "a@y.io"})])
    assert r.ok
    person = fake.persons[int(pid)]
    assert person["custom_fields"][DNC] is None and person["emails"][0]["value"] == "a@y.io"


def test_phones_replaced_in_place_without_duplicates(fake, pipedrive):
    pid = fake.add_person("Ann", ["+380671111111", "+380672222222"])
    [r] = pipedrive.upsert_contacts([ContactWrite("k", pid, {}, ("+380672222222", "067 222 22 22",
                                                                  "+380673333333"))])
    assert r.ok
    assert fake.persons[int(pid)]["phones"] == [
        {"value": "+380672222222", "primary": True, "label": "work"},
        {"value": "+380673333333", "primary": False, "label": "work"}]


def test_create_then_repeat_with_same_key_makes_one_person(fake, pipedrive):
    w = ContactWrite("key-1", None, {"name": "Bob"}, ("+380501234567",))
    first = pipedrive.upsert_contacts([w])[0]
    again = pipedrive.upsert_contacts([w])[0]
    assert first.ok and again.ok and first.id == again.id and len(fake.persons) == 1


def test_create_whose_answer_was_lost_is_found_not_duplicated(fake, tmp_path):
    connector = connect(fake, tmp_path, timeout=0.3)
    fake.fail_next("/api/v2/persons", 201, after_processing_delay=0.6)
    w = ContactWrite("key-2", None, {"name": "Lost"}, ("+380501112233",))
    [lost] = connector.upsert_contacts([w])
    assert not lost.ok and lost.retriable
    [found] = connect(fake, tmp_path).upsert_contacts([w])   # after a restart too
    assert found.ok and len(fake.persons) == 1


def test_refused_person_fails_alone(fake, pipedrive):
    results = pipedrive.upsert_contacts([ContactWrite("a", None, {"name": "A"}),
                                         ContactWrite("b", "12345", {"name": "gone"}),
                                         ContactWrite("c", None, {"name": "C"})])
    assert [r.ok for r in results] == [True, False, True]
    assert "Person not found" in results[1].error and not results[1].retriable


def test_find_by_phone_verifies_the_exact_number(fake, pipedrive):
    a = fake.add_person("A", ["+38 (067) 123-45-67"])
    fake.add_person("B", ["+3806712345670", "+48671234567"])
    assert [c.id for c in pipedrive.find_by_phone("+380671234567")] == [a]


def call(session="7001", **kw) -> Call:
    base = dict(session_id=session, direction=CallDirection.OUTBOUND, phone="+380671234567",
                started_at=T0, duration_s=95, talk_s=80, outcome=CallOutcome.ANSWERED, agent="Ivan",
                recording_url="https://rec.example/7001.mp3")
    return Call(**{**base, **kw})


def test_call_log_is_added_once_per_session(fake, pipedrive):
    pid = fake.add_person("A", ["+380671234567"])
    [first] = pipedrive.log_calls([call(contact_id=pid)])
    [again] = pipedrive.log_calls([call(contact_id=pid)])
    assert first.ok and again.id == first.id
    [entry] = fake.logs_for_session("7001")
    assert entry["outcome"] == "connected" and entry["person_id"] == int(pid)
    assert (entry["start_time"], entry["end_time"]) == ("2026-03-01 09:00:00", "2026-03-01 09:01:35")
    assert entry["duration"] == "95" and "rec.example/7001.mp3" in entry["note"]


def test_call_whose_answer_was_lost_is_looked_up_before_another_add(fake, tmp_path):
    connector = connect(fake, tmp_path, timeout=0.3)
    fake.fail_next("/v1/callLogs", 200, after_processing_delay=0.6)
    [lost] = connector.log_calls([call(outcome=CallOutcome.BUSY)])
    assert not lost.ok and lost.retriable
    [found] = connect(fake, tmp_path).log_calls([call(outcome=CallOutcome.BUSY)])
    assert found.ok and len(fake.logs_for_session("7001")) == 1
    assert found.id == fake.logs_for_session("7001")[0]["id"]


def test_refused_call_log_is_a_record_error(fake, pipedrive):
    [r] = pipedrive.log_calls([call(contact_id="4242")])
    assert not r.ok and not r.retriable and "Person not found" in r.error
    [again] = pipedrive.log_calls([call(session="7002")])   # the ledger did not keep the refusal
    assert again.ok


def test_burst_429_is_waited_out(fake, pipedrive):
    fake.fail_next("/v1/users/me", 429, {"success": False, "error": "Request over limit",
                                         "errorCode": 429}, {"Retry-After": "2"})
    pipedrive.health_check()
    assert [r[1] for r in fake.requests] == ["/v1/users/me", "/v1/users/me"]


def test_persistent_burst_limit_surfaces_as_throttled(fake, pipedrive):
    fake.burst_limit = 0
    with pytest.raises(Throttled) as err:
        pipedrive.health_check()
    assert err.value.retry_after == timedelta(seconds=2)


def test_spent_token_budget_is_budget_exhausted(fake, pipedrive):
    fake.daily_budget = 12
    pipedrive.changed_contacts(Cursor(), 10)          # 10 tokens
    with pytest.raises(BudgetExhausted):
        pipedrive.log_calls([call()])                  # a call-log add costs 10
    assert fake.call_logs == [] and fake.tokens_used == 10


def test_wrong_token_is_authentication_error_without_the_token(fake, tmp_path):
    bad = "ffffffffffffffffffffffffffffffffffff0000"
    with pytest.raises(AuthenticationError) as err:
        connect(fake, tmp_path, api_token=bad).health_check()
    assert bad not in str(err.value)


def test_oauth_rotation_persisted_and_survives_restart(fake, tmp_path):
    fake.grant_refresh_token("pd-seed-refresh-1")
    oauth = dict(api_token=None, client_id=fake.client_id, client_secret=fake.client_secret,
                 refresh_token="pd-seed-refresh-1", oauth_url=fake.url)
    first = connect(fake, tmp_path, **oauth)
    first.health_check()
    store = tmp_path / "oauth-pipedrive.json"
    assert fake.refresh_count == 1 and stat.S_IMODE(store.stat().st_mode) == 0o600
    fake.tokens = {API_TOKEN}              # access token revoked → one rotation, then OK
    first.health_check()
    assert fake.refresh_count == 2
    first.close()
    connect(fake, tmp_path, **oauth).health_check()   # the spent seed is not used again
    assert fake.refresh_count == 2


def test_no_secret_in_logs_or_errors(fake, tmp_path):
    bad = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee1111"
    with capture_logs() as logs:
        ok = connect(fake, tmp_path)
        ok.upsert_contacts([ContactWrite("x", "999", {"name": "n"})])
        with pytest.raises(AuthenticationError) as err:
            connect(fake, tmp_path, api_token=bad).health_check()
    text = repr(logs) + str(err.value) + repr(ok.context.extra["journal"])
    assert API_TOKEN not in text and bad not in text


def test_throttled_call_log_add_is_retried_but_a_5xx_is_not(fake, pipedrive):
    fake.fail_next("/v1/callLogs", 429, {"success": False, "error": "Request over limit"},
                   {"Retry-After": "1"})
    assert pipedrive.log_calls([call(session="1")])[0].ok
    fake.fail_next("/v1/callLogs", 502, {"success": False, "error": "Bad gateway"})
    [unsure] = pipedrive.log_calls([call(session="2")])
    assert not unsure.ok and unsure.retriable
    posts = [r for r in fake.requests if r[:2] == ("POST", "/v1/callLogs")]
    assert len(posts) == 3 and len(fake.call_logs) == 1


def test_lost_create_without_phones_is_found_by_name_among_the_newest(fake, tmp_path):
    fake.add_person("Same Name")                      # an older namesake is not taken
    connector = connect(fake, tmp_path, timeout=0.3)
    fake.fail_next("/api/v2/persons", 201, after_processing_delay=0.6)
    w = ContactWrite("key-3", None, {"name": "Same Name"})
    assert connector.upsert_contacts([w])[0].retriable
    fake.persons[1]["add_time"] -= 3600
    [found] = connector.upsert_contacts([w])
    assert found.ok and found.id == "2" and len(fake.persons) == 2


def test_refused_refresh_token_is_an_authentication_error_naming_the_fix(fake, tmp_path):
    connector = connect(fake, tmp_path, api_token=None, client_id=fake.client_id,
                        client_secret=fake.client_secret, refresh_token="pd-never-granted",
                        oauth_url=fake.url)
    with pytest.raises(AuthenticationError) as err:
        connector.health_check()
    assert "re-authorise" in str(err.value) and "pd-never-granted" not in str(err.value)


def test_call_with_plain_string_enums_from_the_outbox_is_logged(fake, pipedrive):
    [ok] = pipedrive.log_calls([call(session="s1", direction="inbound", outcome="busy")])
    assert ok.ok and fake.logs_for_session("s1")[0]["outcome"] == "busy"
    [bad] = pipedrive.log_calls([call(session="s2", outcome="exploded")])
    assert not bad.ok and not bad.retriable and "exploded" in bad.error


def test_persons_of_a_second_still_running_wait_for_the_next_poll(fake, tmp_path):
    connector = connect(fake, tmp_path, settle_s=2)
    now = datetime.now(UTC)
    old = fake.add_person("old", updated_at=now - timedelta(minutes=1))
    young = fake.add_person("young", updated_at=now)
    page = connector.changed_contacts(Cursor(), 10)
    assert [c.id for c in page.contacts] == [old] and not page.more
    fake.edit_person(young, updated_at=now - timedelta(seconds=5))    # time passed
    assert [c.id for c in connector.changed_contacts(page.next, 10).contacts] == [young]


def test_delete_contacts_deletes_each_person_and_a_person_already_gone_is_ok(fake, pipedrive):
    gone = fake.add_person("Gone", ["+380671110001"])
    kept = fake.add_person("Kept", ["+380671110002"])
    results = pipedrive.delete_contacts([gone, "424242"])
    assert [(r.key, r.ok) for r in results] == [(gone, True), ("424242", True)]
    assert [c.id for c in pipedrive.fetch_contacts([gone, kept])] == [kept]
    assert ("DELETE", f"/api/v2/persons/{gone}") in [(m, p) for m, p, _ in fake.requests]
    assert pipedrive.capabilities.contacts_delete and pipedrive.capabilities.deletes == "verify_only"
