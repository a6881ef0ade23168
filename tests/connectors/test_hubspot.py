"""HubSpot connector against the fake HubSpot over loopback: paging, batches, calls, limits, auth."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from connectors.hubspot import HubSpotConnector, HubSpotOptions
from syncd.errors import AuthenticationError, BudgetExhausted, PermissionDenied, Throttled
from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor
from syncd.redact import redact
from syncd.testing.context import FAST_RETRY, connector_context
from tests.fakes.hubspot import TOKEN, running_hubspot

FIELDS = ("firstname", "lastname", "email", "hs_lead_status")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server():
    with running_hubspot() as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    return server


def connect(fake, state_dir, *, retry=FAST_RETRY, timeout=None, **options) -> HubSpotConnector:
    opts = {"url": fake.url, "token": TOKEN, "settle_s": 0, **options}
    ctx = connector_context(state_dir, field_names=FIELDS, do_not_call_field="syncd_do_not_call",
                            retry=retry)
    if timeout is not None:
        inner = ctx.remote
        ctx.remote = lambda **kw: inner(timeout=timeout, **kw)
    return HubSpotConnector(HubSpotOptions(**opts), ctx)


@pytest.fixture
def hubspot(fake, tmp_path):
    connector = connect(fake, tmp_path / "state")
    yield connector
    connector.close()


def walk(connector, limit, cursor=Cursor()):
    seen, pages = [], 0
    while True:
        page = connector.changed_contacts(cursor, limit)
        assert len(page.contacts) <= limit
        seen += page.contacts
        cursor, pages = page.next, pages + 1
        if not page.more:
            return seen, cursor
        assert pages < 200


def searches(fake):
    return [r for r in fake.requests if r[1].endswith("/contacts/search")]


def test_walk_returns_every_change_once_across_equal_timestamps(fake, hubspot):
    ids = [fake.add_contact(T0 + timedelta(seconds=i // 7), firstname=f"c{i}") for i in range(30)]
    seen, _ = walk(hubspot, 4)
    assert sorted(c.id for c in seen) == sorted(ids)
    assert [(c.updated_at, int(c.id)) for c in seen] == sorted((c.updated_at, int(c.id)) for c in seen)


def test_timestamp_group_larger_than_a_page_is_walked_by_id(fake, hubspot):
    ids = [fake.add_contact(T0, firstname=f"same{i}") for i in range(13)]
    ids.append(fake.add_contact(T0 + timedelta(seconds=1), firstname="later"))
    seen, _ = walk(hubspot, 5)
    assert [c.id for c in seen] == ids


def test_search_is_reanchored_instead_of_paging_past_the_result_cap(fake, hubspot):
    fake.search_cap = hubspot.search_cap = 7
    ids = [fake.add_contact(T0 + timedelta(seconds=i), firstname=f"c{i}") for i in range(30)]
    page = hubspot.changed_contacts(Cursor(), 20)
    assert [c.id for c in page.contacts] == ids[:len(page.contacts)]
    assert len(page.contacts) >= 14 and page.more       # crossed the cap within one page
    rest, _ = walk(hubspot, 20, page.next)
    assert [c.id for c in page.contacts + rest] == ids  # the fake answers 400 past its cap


def test_cursor_resumes_after_a_restart(fake, tmp_path):
    ids = [fake.add_contact(T0 + timedelta(seconds=i % 3), firstname=f"c{i}") for i in range(9)]
    first = connect(fake, tmp_path)
    page = first.changed_contacts(Cursor(), 4)
    first.close()
    again = connect(fake, tmp_path)
    rest, end = walk(again, 4, page.next)
    assert sorted(c.id for c in page.contacts + rest) == sorted(ids)
    later = fake.add_contact(T0 + timedelta(minutes=5), firstname="new")
    assert [c.id for c in again.changed_contacts(end, 4).contacts] == [later]


def test_new_contact_is_readable_by_id_before_search_sees_it(fake, hubspot):
    fake.index_delay = 30
    [result] = hubspot.upsert_contacts([ContactWrite("k1", None, {"firstname": "Ann"}, ("+380671234567",))])
    assert result.ok
    assert hubspot.changed_contacts(Cursor(), 10).contacts == []
    [contact] = hubspot.fetch_contacts([result.id, "999999"])
    assert contact.fields["firstname"] == "Ann" and contact.phones == ("+380671234567",)


def test_one_bad_input_fails_alone_and_results_keep_input_order(fake, hubspot):
    writes = [ContactWrite(f"k{i}", None, {"firstname": f"n{i}", "email": f"n{i}@x.io"}) for i in range(8)]
    writes[5] = ContactWrite("k5", None, {"firstname": "bad", "email": "not-an-email"})
    results = hubspot.upsert_contacts(writes)
    assert [r.key for r in results] == [w.key for w in writes]
    assert [r.ok for r in results] == [True] * 5 + [False] + [True] * 2
    assert "not-an-email is invalid" in results[5].error and not results[5].retriable
    for w, r in zip(writes, results):
        if r.ok:
            assert fake.contacts[int(r.id)].properties["firstname"] == w.fields["firstname"]
    assert len(fake.contacts) == 7


def test_create_repeated_after_a_lost_answer_makes_no_duplicate(fake, tmp_path):
    connector = connect(fake, tmp_path, timeout=0.3)
    fake.fail_next("batch/create", 201, after_processing_delay=0.6)
    writes = [ContactWrite(f"k{i}", None, {"firstname": f"n{i}"}) for i in range(3)]
    results = connector.upsert_contacts(writes)   # timed out, retried: 409 → found by key
    assert all(r.ok for r in results)
    assert len(fake.contacts) == 3
    assert {fake.contacts[int(r.id)].properties["syncd_key"] for r in results} == {"k0", "k1", "k2"}


def test_phones_are_the_two_phone_properties_replaced_in_place(fake, hubspot):
    cid = fake.add_contact(T0, firstname="A", phone="+380671111111", mobilephone="+380672222222")
    [ok] = hubspot.upsert_contacts([ContactWrite("u", cid, {}, ("+380673333333",))])
    assert ok.ok
    props = fake.contacts[int(cid)].properties
    assert (props["phone"], props["mobilephone"]) == ("+380673333333", "")
    [too_many] = hubspot.upsert_contacts([ContactWrite("u2", cid, {}, ("+1", "+2", "+3"))])
    assert not too_many.ok and "at most 2 phones" in too_many.error


def test_find_by_phone_matches_exactly(fake, hubspot):
    a = fake.add_contact(T0, firstname="A", mobilephone="+380671234567")
    fake.add_contact(T0, firstname="B", phone="+380671234568")
    assert [c.id for c in hubspot.find_by_phone("+380671234567")] == [a]


def test_do_not_call_is_a_boolean_property(fake, hubspot):
    cid = fake.add_contact(T0, firstname="A")
    hubspot.upsert_contacts([ContactWrite("d", cid, {"syncd_do_not_call": True})])
    assert fake.contacts[int(cid)].properties["syncd_do_not_call"] == "true"
    assert hubspot.fetch_contacts([cid])[0].fields["syncd_do_not_call"] is True


def call(session="9001", **kw) -> Call:
    base = dict(session_id=session, direction=CallDirection.OUTBOUND, phone="+380671234567",
                started_at=T0, duration_s=75, talk_s=60, outcome=CallOutcome.ANSWERED,
                agent="Olena", recording_url="https://rec.example/9001.mp3")
    return Call(**{**base, **kw})


def test_call_is_logged_once_per_session_with_its_association(fake, hubspot):
    cid = fake.add_contact(T0, firstname="A")
    [first] = hubspot.log_calls([call(contact_id=cid)])
    [again] = hubspot.log_calls([call(contact_id=cid)])
    assert first.ok and again.ok and first.id == again.id
    [logged] = fake.calls_for_session("9001")
    assert logged.associations == [int(cid)]
    assert logged.properties["hs_call_duration"] == "75000"
    assert logged.properties["hs_call_status"] == "COMPLETED"
    assert logged.properties["hs_call_direction"] == "OUTBOUND"
    assert "Olena" in logged.properties["hs_call_body"]


def test_call_after_an_ambiguous_timeout_is_not_created_twice(fake, tmp_path):
    fake.index_delay = 30   # the call made by the lost attempt is not searchable yet
    connector = connect(fake, tmp_path, timeout=0.3)
    fake.fail_next("/objects/calls", 201, after_processing_delay=0.6)
    [lost] = connector.log_calls([call()])
    assert not lost.ok and lost.retriable
    [waiting] = connector.log_calls([call()])
    assert not waiting.ok and waiting.retriable and "waiting" in waiting.error
    for record in fake.calls.values():
        record.searchable_at = 0          # the index caught up
    restarted = connect(fake, tmp_path)
    [found] = restarted.log_calls([call()])
    assert found.ok and len(fake.calls_for_session("9001")) == 1
    posts = len([r for r in fake.requests if r[1] == "/crm/v3/objects/calls"])
    assert restarted.log_calls([call()])[0].id == found.id   # answered from the ledger
    assert len([r for r in fake.requests if r[1] == "/crm/v3/objects/calls"]) == posts


def test_refused_call_is_a_record_error(fake, hubspot):
    [result] = hubspot.log_calls([call(contact_id="424242")])
    assert not result.ok and not result.retriable and "association" in result.error


def test_ten_second_limit_429_is_waited_out(fake, hubspot):
    fake.fail_next("/contacts/search", 429, {"status": "error", "message": "You have reached your "
                   "ten_secondly_rolling limit.", "errorType": "RATE_LIMIT",
                   "policyName": "TEN_SECONDLY_ROLLING"},
                   {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                    "X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "0"})
    fake.add_contact(T0, firstname="A")
    assert len(hubspot.changed_contacts(Cursor(), 10).contacts) == 1
    assert len(searches(fake)) == 2


def test_persistent_throttling_surfaces_as_throttled_with_the_wait(fake, hubspot):
    fake.ten_second_limit = 0
    with pytest.raises(Throttled) as err:
        hubspot.health_check()
    assert err.value.retry_after == timedelta(seconds=10)
    assert "TEN_SECONDLY_ROLLING" in str(err.value)


def test_daily_cap_is_budget_exhausted_and_not_retried(fake, hubspot):
    fake.daily_limit = 0
    with pytest.raises(BudgetExhausted):
        hubspot.health_check()
    assert len(fake.requests) == 1


def test_wrong_token_and_missing_scopes_are_explained_without_the_token(fake, tmp_path):
    with pytest.raises(AuthenticationError) as err:
        connect(fake, tmp_path, token="pat-eu1-wrong-token-9999").health_check()
    assert "pat-eu1-wrong-token-9999" not in str(err.value)
    fake.scopes_missing = True
    with pytest.raises(PermissionDenied) as denied:
        connect(fake, tmp_path).health_check()
    assert "crm.objects.contacts.read" in str(denied.value)


def test_oauth_rotated_refresh_token_is_persisted_and_survives_restart(fake, tmp_path):
    fake.grant_refresh_token("seed-refresh-token-1")
    oauth = dict(token=None, client_id=fake.client_id, client_secret=fake.client_secret,
                 refresh_token="seed-refresh-token-1")
    first = connect(fake, tmp_path, **oauth)
    first.health_check()
    assert fake.refresh_count == 1
    store = tmp_path / "oauth-hubspot.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert "seed-refresh-token-1" not in store.read_text()
    fake.tokens = {TOKEN}                 # access token revoked: 401 → one refresh, then OK
    first.health_check()
    assert fake.refresh_count == 2
    first.close()
    restarted = connect(fake, tmp_path, **oauth)   # the seed was spent; the stored pair works
    restarted.health_check()
    assert fake.refresh_count == 2


def test_no_secret_in_logs_or_errors(fake, tmp_path):
    with capture_logs() as logs:
        connector = connect(fake, tmp_path)
        connector.upsert_contacts([ContactWrite("a", None, {"email": "bad"}),
                                   ContactWrite("b", None, {"email": "b@x.io"})])
        bad = connect(fake, tmp_path, token="pat-eu1-leaky-secret-7777")
        with pytest.raises(AuthenticationError) as err:
            bad.health_check()
    text = repr(logs) + str(err.value) + repr(connector.context.extra["journal"])
    assert TOKEN not in text and "pat-eu1-leaky-secret-7777" not in text
    assert redact(f"Bearer {TOKEN}") == "Bearer ***"


def test_batch_mixing_made_and_new_creates_updates_the_made_one(fake, hubspot):
    [made] = hubspot.upsert_contacts([ContactWrite("k-old", None, {"firstname": "v1"})])
    results = hubspot.upsert_contacts([ContactWrite("k-old", None, {"firstname": "v2"}),
                                       ContactWrite("k-new", None, {"firstname": "n"})])
    assert [r.ok for r in results] == [True, True] and results[0].id == made.id
    assert fake.contacts[int(made.id)].properties["firstname"] == "v2" and len(fake.contacts) == 2


def test_writes_go_in_batches_of_at_most_100(fake, hubspot):
    results = hubspot.upsert_contacts([ContactWrite(f"k{i}", None, {"firstname": f"n{i}"})
                                       for i in range(130)])
    assert all(r.ok for r in results) and len({r.id for r in results}) == 130
    creates = [r for r in fake.requests if r[1].endswith("batch/create")]
    assert [len(r[2]["inputs"]) for r in creates] == [100, 30]


def test_refused_refresh_token_is_an_authentication_error_naming_the_fix(fake, tmp_path):
    connector = connect(fake, tmp_path, token=None, client_id=fake.client_id,
                        client_secret=fake.client_secret, refresh_token="never-granted-refresh")
    with pytest.raises(AuthenticationError) as err:
        connector.health_check()
    assert "re-authorise" in str(err.value) and "never-granted-refresh" not in str(err.value)


def test_call_with_plain_string_enums_from_the_outbox_is_logged(fake, hubspot):
    [ok] = hubspot.log_calls([call(session="s1", direction="inbound", outcome="no_answer")])
    assert ok.ok and fake.calls_for_session("s1")[0].properties["hs_call_status"] == "NO_ANSWER"
    [bad] = hubspot.log_calls([call(session="s2", outcome="exploded")])
    assert not bad.ok and not bad.retriable and "exploded" in bad.error


def test_changes_younger_than_the_settle_time_wait_for_the_next_poll(fake, tmp_path):
    connector = connect(fake, tmp_path, settle_s=20)
    now = datetime.now(UTC)
    old = fake.add_contact(now - timedelta(minutes=1), firstname="old")
    young = fake.add_contact(now, firstname="young")      # the index may still be missing others
    page = connector.changed_contacts(Cursor(), 10)
    assert [c.id for c in page.contacts] == [old] and not page.more
    fake.edit_contact(young, updated_at=now - timedelta(seconds=30))   # time passed
    assert [c.id for c in connector.changed_contacts(page.next, 10).contacts] == [young]


def test_delete_contacts_archives_them_in_one_batch_and_a_repeat_is_harmless(fake, hubspot):
    ids = [fake.add_contact(firstname=f"Gone{i}", phone=f"+38067111000{i}") for i in range(3)]
    keep = fake.add_contact(firstname="Kept", phone="+380671110009")
    before = len(fake.requests)
    results = hubspot.delete_contacts(ids)
    assert [(r.key, r.ok) for r in results] == [(i, True) for i in ids]
    assert [p for _, p, _ in fake.requests[before:]] == ["/crm/v3/objects/contacts/batch/archive"]
    assert [c.id for c in hubspot.fetch_contacts(ids + [keep])] == [keep]
    assert all(r.ok for r in hubspot.delete_contacts(ids))          # already archived
    assert hubspot.capabilities.contacts_delete and hubspot.capabilities.deletes == "verify_only"
