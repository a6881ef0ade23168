"""The ``tryton`` connector against a real trytond (party module, SQLite) on loopback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from syncd.errors import AuthenticationError
from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor

pytestmark = [pytest.mark.e2e, pytest.mark.tryton]


def _key() -> str:
    return uuid.uuid4().hex


def _phones(crm, party_id: str) -> list[tuple[int, str, str]]:
    return [(m["id"], m["type"], m["value"]) for m in crm.contact(party_id)["contact_mechanisms"]
            if m["type"] in ("phone", "mobile")]


@pytest.fixture
def connector(tryton_crm):
    c = tryton_crm.connector()
    yield c
    c.close()


def test_several_phones_round_trip_in_place(tryton_crm, connector):
    key = _key()
    [created] = connector.upsert_contacts([ContactWrite(
        key, None, {"name": "Olena Round", "email": "olena@example.com"},
        ("+380671110001", "+380441110002", "+380501110003"))])
    assert created.ok
    before = _phones(tryton_crm, created.id)
    assert sorted(v for _, _, v in before) == ["+380441110002", "+380501110003", "+380671110001"]

    # One number changes: the same mechanism row is rewritten, nothing is appended.
    [updated] = connector.upsert_contacts([ContactWrite(
        key, created.id, {}, ("+380671110001", "+380441119999", "+380501110003"))])
    assert updated.ok
    after = _phones(tryton_crm, created.id)
    assert sorted(i for i, _, _ in after) == sorted(i for i, _, _ in before)
    assert sorted(v for _, _, v in after) == ["+380441119999", "+380501110003", "+380671110001"]

    [contact] = connector.fetch_contacts([created.id])
    assert sorted(contact.phones) == ["+380441119999", "+380501110003", "+380671110001"]
    assert contact.fields["email"] == "olena@example.com"


def test_repeating_a_write_duplicates_nothing(tryton_crm, connector):
    key = _key()
    write = ContactWrite(key, None, {"name": "Repeat Twice"}, ("+380671110101", "+380671110101"))
    first = connector.upsert_contacts([write])[0]
    again = tryton_crm.connector().upsert_contacts([write])[0]  # a restarted daemon
    assert first.ok and again.ok and again.id == first.id
    assert [v for _, _, v in _phones(tryton_crm, first.id)] == ["+380671110101"]


def test_removed_phones_are_deleted_and_emptied_email_removed(tryton_crm, connector):
    [created] = connector.upsert_contacts([ContactWrite(
        _key(), None, {"name": "Shrink", "email": "s@example.com"}, ("+380671110201", "+380671110202"))])
    connector.upsert_contacts([ContactWrite(_key(), created.id, {"email": None}, ("+380671110202",))])
    mechanisms = tryton_crm.contact(created.id)["contact_mechanisms"]
    assert [(m["type"], m["value"]) for m in mechanisms] == [("mobile", "+380671110202")]


def test_call_is_logged_once_as_a_note_on_the_party(tryton_crm, connector):
    party = tryton_crm.create_contact({"name": "Caller"}, ["+380 44 555 12 34"])
    session = str(uuid.uuid4().int % 10**9)
    call = Call(session, CallDirection.INBOUND, "+380445551234", datetime.now(UTC), 65, 50,
                CallOutcome.ANSWERED, agent="Iryna")
    first = connector.log_calls([call, call])
    second = tryton_crm.connector().log_calls([call])
    assert all(r.ok for r in first + second)
    assert {r.id for r in first + second} == {first[0].id}
    assert tryton_crm.count_activities(session) == 1
    # Found by phone although Tryton stores it formatted: the party id is the note's resource.
    assert first[0].id is not None and party


def test_changed_since_walks_equal_timestamps_exactly_once(tryton_crm, connector):
    start = connector.changed_contacts(Cursor(), 10_000).next
    ids = [tryton_crm.create_contact({"name": f"Tie {i}"}, []) for i in range(5)]
    tryton_crm.force_equal_updated_at(ids)
    seen, cursor = [], start
    while True:
        page = connector.changed_contacts(cursor, 2)
        seen += [c.id for c in page.contacts]
        cursor = page.next
        if not page.more:
            break
    assert seen == sorted(ids, key=int)
    # A restarted connector resumes from the cursor and finds nothing new.
    assert tryton_crm.connector().changed_contacts(cursor, 2).contacts == []


def test_archived_party_is_reported_deleted(tryton_crm, connector):
    party = tryton_crm.create_contact({"name": "Leaving"}, [])
    cursor = connector.changed_contacts(Cursor(), 10_000).next
    tryton_crm.update_contact(party, {"active": False})
    [contact] = connector.changed_contacts(cursor, 10).contacts
    assert contact.id == party and contact.deleted


def test_delete_contacts_archives_and_the_walk_reports_it_deleted(tryton_crm, connector):
    party = tryton_crm.create_contact({"name": "Propagated"}, ["+380671119876"])
    cursor = connector.changed_contacts(Cursor(), 10_000).next
    assert [r.ok for r in connector.delete_contacts([party])] == [True]
    [contact] = connector.changed_contacts(cursor, 10).contacts
    assert contact.id == party and contact.deleted
    assert connector.find_by_phone("+380671119876") == [] or \
        all(c.deleted for c in connector.find_by_phone("+380671119876"))


def test_find_by_phone_is_exact(tryton_crm, connector):
    target = tryton_crm.create_contact({"name": "Exact"}, ["+380 (67) 777-12-34"])
    tryton_crm.create_contact({"name": "Longer"}, ["+380677771234 5"])
    found = connector.find_by_phone("+380677771234")
    assert [c.id for c in found] == [target]


def test_wrong_key_is_an_authentication_error_without_the_key(tryton_crm):
    with pytest.raises(AuthenticationError) as caught:
        tryton_crm.unauthorised_connector().health_check()
    assert tryton_crm.wrong_key not in str(caught.value)
    assert "res.user.application" in str(caught.value)


def test_do_not_call_is_declared_missing(connector):
    assert connector.capabilities.do_not_call is False
    assert any("do-not-call" in note for note in connector.capabilities.notes)


def test_the_same_contact_twice_in_one_batch_stays_one_party_without_copies(tryton_crm, connector):
    key = _key()
    results = connector.upsert_contacts([
        ContactWrite(key, None, {"name": "Batch Twice"}, ("+380671110301",)),
        ContactWrite(key, None, {"name": "Batch Twice"}, ("+380671110301", "+380671110302")),
    ])
    assert results[0].ok and results[1].ok and results[0].id == results[1].id
    assert sorted(v for _, _, v in _phones(tryton_crm, results[0].id)) == [
        "+380671110301", "+380671110302"]
