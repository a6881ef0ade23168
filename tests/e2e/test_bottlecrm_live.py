"""The ``bottlecrm`` connector against a real BottleCRM (django-crm 1.35, PostgreSQL) on loopback."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from syncd.errors import AuthenticationError
from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor

pytestmark = [pytest.mark.e2e, pytest.mark.bottlecrm]

# Changes younger than the scan's horizon (settle 1 s + the Date header's whole seconds)
# wait for the next poll.
SETTLE = 2.05


def _key() -> str:
    return uuid.uuid4().hex


def _walk(connector, cursor: Cursor, limit: int):
    seen = []
    while True:
        page = connector.changed_contacts(cursor, limit)
        seen += page.contacts
        cursor = page.next
        if not page.more:
            return seen, cursor


@pytest.fixture
def connector(bottlecrm_crm):
    c = bottlecrm_crm.connector()
    yield c
    c.close()


def test_contact_round_trip_with_do_not_call(bottlecrm_crm, connector):
    [created] = connector.upsert_contacts([ContactWrite(
        _key(), None, {"first_name": "Olena", "last_name": "Round", "email": "or@example.com",
                       "do_not_call": False}, ("+380671220001",))])
    assert created.ok
    [updated] = connector.upsert_contacts([ContactWrite(
        _key(), created.id, {"do_not_call": True}, ("+380671220002",))])
    assert updated.ok
    row = bottlecrm_crm.contact(created.id)
    assert (row["phone"], row["do_not_call"], row["last_name"]) == ("+380671220002", True, "Round")
    [contact] = connector.fetch_contacts([created.id])
    assert contact.phones == ("+380671220002",)
    assert contact.fields["do_not_call"] is True


def test_do_not_call_set_in_the_crm_is_read_as_a_change(bottlecrm_crm, connector):
    contact_id = bottlecrm_crm.create_contact({"last_name": "Dnc"}, ["+380671220101"])
    time.sleep(SETTLE)
    cursor = _walk(connector, Cursor(), 100)[1]
    bottlecrm_crm.update_contact(contact_id, {"do_not_call": True})
    time.sleep(SETTLE)
    changed, _ = _walk(connector, cursor, 100)
    assert [(c.id, c.fields["do_not_call"]) for c in changed] == [(contact_id, True)]


def test_a_create_whose_reply_was_lost_is_found_not_repeated(bottlecrm_crm, connector):
    key = _key()
    # The POST reached the CRM but the reply never came back: the journal holds the intent.
    connector.creates.intend(key)
    first = bottlecrm_crm.create_contact(
        {"last_name": "Lost", "source_ref": f"syncd:{key}"}, ["+380671220201"])
    [result] = connector.upsert_contacts([ContactWrite(
        key, None, {"first_name": "e2e", "last_name": "Lost"}, ("+380671220201",))])
    assert result.ok and result.id == first
    matches = connector.find_by_phone("+380671220201")
    assert [c.id for c in matches] == [first]


def test_repeating_a_create_makes_one_contact(bottlecrm_crm, connector):
    write = ContactWrite(_key(), None, {"first_name": "Twice", "last_name": "Made"},
                         ("+380671220301",))
    first = connector.upsert_contacts([write])[0]
    again = connector.upsert_contacts([write])[0]
    assert first.ok and again.id == first.id
    assert [c.id for c in connector.find_by_phone("+380671220301")] == [first.id]


def test_call_is_logged_once(bottlecrm_crm, connector):
    contact_id = bottlecrm_crm.create_contact({"last_name": "Caller"}, ["+380 (67) 122-04-01"])
    session = str(uuid.uuid4().int % 10**9)
    call = Call(session, CallDirection.DIALER, "+380671220401", datetime.now(UTC), 90, 61,
                CallOutcome.NO_ANSWER, agent="Iryna", contact_id=contact_id)
    first = connector.log_calls([call, call])
    again = bottlecrm_crm.connector().log_calls([call])
    assert all(r.ok for r in first + again), first + again
    assert {r.id for r in first + again} == {first[0].id}
    assert bottlecrm_crm.count_activities(session) == 1
    row = bottlecrm_crm._sql("SELECT kind, direction, outcome, duration_seconds, contact_id::text "
                             "FROM interaction WHERE id = %s", (first[0].id,))[0]
    assert row == ("call", "outbound", "no_answer", 90, contact_id)


def test_scan_returns_each_change_once_across_pages(bottlecrm_crm):
    connector = bottlecrm_crm.connector()
    connector.options = connector.options.model_copy(update={"scan_page_size": 10})
    time.sleep(SETTLE)
    start = _walk(connector, Cursor(), 1000)[1]
    ids = [bottlecrm_crm.create_contact({"last_name": f"Scan {i}"}, []) for i in range(23)]
    bottlecrm_crm.force_equal_updated_at(ids[5:12])
    time.sleep(SETTLE)
    seen, cursor = _walk(connector, start, 4)
    assert sorted(c.id for c in seen) == sorted(ids)
    assert len(seen) == len(ids)
    keys = [(c.updated_at, c.id) for c in seen]
    assert keys == sorted(keys)
    assert bottlecrm_crm.connector().changed_contacts(cursor, 4).contacts == []


def test_find_by_phone_verifies_substring_matches(bottlecrm_crm, connector):
    target = bottlecrm_crm.create_contact({"last_name": "Exact"}, ["0671220501"])
    bottlecrm_crm.create_contact({"last_name": "Longer"}, ["+3806712205019"])
    assert [c.id for c in connector.find_by_phone("+380671220501")] == [target]
    grouped = bottlecrm_crm.create_contact({"last_name": "Grouped"}, ["+380 (67) 122-06-01"])
    assert [c.id for c in connector.find_by_phone("+380671220601")] == [grouped]


def test_one_refused_record_does_not_sink_the_batch(connector):
    results = connector.upsert_contacts([
        ContactWrite(_key(), None, {"first_name": "Good", "last_name": "One"}, ()),
        ContactWrite(_key(), None, {"first_name": "Bad", "last_name": "Mail",
                                    "email": "not an e-mail"}, ()),
        ContactWrite(_key(), None, {"first_name": "Good", "last_name": "Two"}, ()),
    ])
    assert [r.ok for r in results] == [True, False, True]
    assert "email" in results[1].error and not results[1].retriable


def test_wrong_token_is_an_authentication_error_without_the_token(bottlecrm_crm):
    with pytest.raises(AuthenticationError) as caught:
        bottlecrm_crm.unauthorised_connector().health_check()
    assert bottlecrm_crm.wrong_token not in str(caught.value)
