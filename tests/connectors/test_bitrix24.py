"""Bitrix24 connector against the fake portal over loopback HTTP: contacts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from connectors.bitrix24 import Bitrix24Connector, Bitrix24Options
from syncd.connector import ConnectorContext
from syncd.errors import AuthenticationError, PermissionDenied, Throttled
from syncd.http import RateLimiter, RemoteSystem, RetryPolicy
from syncd.model import ContactWrite, Cursor
from tests.fakes.bitrix24 import running_bitrix24

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01, max_retry_after=0.05, jitter=0.0)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def make_context(tmp_path, *, fields=("NAME", "LAST_NAME", "EMAIL"), dnc=None, retry=FAST, sleeps=None):
    journal = []

    def remote(**kw):
        kw.update(system="crm", retry=retry, limiter=RateLimiter(None), journal=journal.append,
                  sleep=sleeps if sleeps is not None else (lambda s: None))
        return RemoteSystem(**kw)

    ctx = ConnectorContext(remote=remote, state_dir=tmp_path / "state", field_names=tuple(fields),
                           do_not_call_field=dnc)
    ctx.extra["journal"] = journal
    return ctx


def connector(fake, tmp_path, **kw):
    return Bitrix24Connector(Bitrix24Options(webhook_url=fake.webhook_url), make_context(tmp_path, **kw))


@pytest.fixture
def fake():
    with running_bitrix24() as fake:
        yield fake


def walk(conn, limit, cursor=Cursor()):
    seen = []
    while True:
        page = conn.changed_contacts(cursor, limit)
        seen += page.contacts
        cursor = page.next
        if not page.more:
            return seen, cursor


def test_walk_returns_every_change_once_across_equal_timestamps(fake, tmp_path):
    # 130 contacts in 4 seconds: page edges fall inside runs of equal DATE_MODIFY.
    ids = [fake.state.add_contact(("+380501234567",), NAME=f"n{i}",
                                  modified=T0 + timedelta(seconds=i % 4)) for i in range(130)]
    conn = connector(fake, tmp_path)
    for limit in (7, 50, 200):
        seen, _ = walk(conn, limit)
        assert sorted(int(c.id) for c in seen) == ids
        keys = [(c.updated_at, int(c.id)) for c in seen]
        assert keys == sorted(keys)


def test_walk_uses_fast_paging_without_counting(fake, tmp_path):
    for i in range(120):
        fake.state.add_contact(modified=T0 + timedelta(seconds=i // 60))
    conn = connector(fake, tmp_path)
    fake.state.journal.clear()
    walk(conn, 50)
    # one request per 50 rows (+ the final empty probes), never a start>0 count walk
    assert fake.state.journal.count("crm.contact.list") <= 6


def test_cursor_is_strictly_after_updated_at_and_id(fake, tmp_path):
    a = fake.state.add_contact(modified=T0)
    b = fake.state.add_contact(modified=T0)
    conn = connector(fake, tmp_path)
    _, cursor = walk(conn, 10)
    assert cursor == Cursor(T0, str(b))
    fake.state.touch(a, modified=T0, NAME="late writer, same second, lower ID")
    c = fake.state.add_contact(modified=T0)                         # same second, higher ID
    fake.state.touch(b, modified=T0 + timedelta(seconds=1), NAME="B2")
    seen, cursor = walk(conn, 10, cursor)
    assert [int(x.id) for x in seen] == [c, b]


def test_resume_after_restart_from_page_next(fake, tmp_path):
    ids = [fake.state.add_contact(modified=T0) for _ in range(60)]
    page = connector(fake, tmp_path).changed_contacts(Cursor(), 25)
    again, _ = walk(connector(fake, tmp_path), 25, page.next)
    assert [int(c.id) for c in page.contacts + again] == ids


def test_times_are_utc_and_fields_mapped(fake, tmp_path):
    cid = fake.state.add_contact(("+380501234567", "+380671112233"), NAME="Ann",
                                 EMAIL=[{"VALUE": "ann@example.com"}], UF_CRM_DNC="1",
                                 modified=datetime(2026, 3, 1, 12, tzinfo=UTC))
    conn = connector(fake, tmp_path, dnc="UF_CRM_DNC")
    [c] = conn.fetch_contacts([str(cid), "999"])
    assert c.updated_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert c.fields == {"NAME": "Ann", "LAST_NAME": "", "EMAIL": "ann@example.com", "UF_CRM_DNC": True}
    assert c.phones == ("+380501234567", "+380671112233")


def test_phones_are_changed_in_place_never_appended(fake, tmp_path):
    cid = fake.state.add_contact(("+380501111111", "+380502222222"))
    conn = connector(fake, tmp_path)
    keep_id = fake.state.contacts[cid]["PHONE"][0]["ID"]
    [r] = conn.upsert_contacts([ContactWrite("k1", str(cid), phones=("+380501111111", "+380503333333"))])
    assert r.ok and r.id == str(cid)
    assert fake.state.phones_of(cid) == ["+380501111111", "+380503333333"]
    assert fake.state.contacts[cid]["PHONE"][0]["ID"] == keep_id
    # the same set again (as a re-sync would send it) changes nothing and adds no copy
    fake.state.journal.clear()
    conn.upsert_contacts([ContactWrite("k2", str(cid), phones=("+38 050 111 11 11", "+380503333333"))])
    assert fake.state.phones_of(cid) == ["+380501111111", "+380503333333"]
    assert "crm.contact.update" not in fake.state.journal


def test_duplicated_stored_phones_are_cleaned_and_removed_ones_deleted(fake, tmp_path):
    cid = fake.state.add_contact(("+380501111111", "+380501111111", "+380509999999"))
    conn = connector(fake, tmp_path)
    conn.upsert_contacts([ContactWrite("k", str(cid), phones=("+380501111111",))])
    assert fake.state.phones_of(cid) == ["+380501111111"]


def test_create_and_update_in_one_batch_with_per_record_failures(fake, tmp_path):
    fake.state.required_fields = {"LAST_NAME"}
    cid = fake.state.add_contact(NAME="Old", LAST_NAME="X")
    conn = connector(fake, tmp_path)
    fake.state.http_requests = 0
    results = conn.upsert_contacts([
        ContactWrite("a", str(cid), fields={"NAME": "New"}),
        ContactWrite("b", "424242", fields={"NAME": "Ghost"}),
        ContactWrite("c", None, fields={"NAME": "NoLast"}, phones=("+380501112233",)),
        ContactWrite("d", None, fields={"NAME": "Full", "LAST_NAME": "Y"}, phones=("+380501112244",)),
    ])
    assert [r.key for r in results] == ["a", "b", "c", "d"]
    assert [r.ok for r in results] == [True, False, False, True]
    assert "LAST_NAME" in results[2].error and not results[2].retriable
    assert fake.state.contacts[cid]["NAME"] == "New"
    assert fake.state.phones_of(int(results[3].id)) == ["+380501112244"]
    assert fake.state.http_requests == 1   # one batch; no phones to read on updates


def test_do_not_call_flag_is_written_to_the_configured_field(fake, tmp_path):
    cid = fake.state.add_contact()
    conn = connector(fake, tmp_path, dnc="UF_CRM_DNC")
    conn.upsert_contacts([ContactWrite("k", str(cid), fields={"UF_CRM_DNC": True, "UF_CRM_STATUS": "callback"})])
    assert fake.state.contacts[cid]["UF_CRM_DNC"] == "1"
    assert fake.state.contacts[cid]["UF_CRM_STATUS"] == "callback"
    [c] = conn.fetch_contacts([str(cid)])
    assert c.fields["UF_CRM_DNC"] is True


def test_find_by_phone_matches_formatted_numbers_only_exactly(fake, tmp_path):
    a = fake.state.add_contact(("+38 (050) 123-45-67",))
    fake.state.add_contact(("+380501234568",))
    found = connector(fake, tmp_path).find_by_phone("+380501234567")
    assert [c.id for c in found] == [str(a)]


def test_query_limit_exceeded_is_retried_after_the_leak_wait(tmp_path):
    sleeps: list[float] = []

    def sleep(seconds):   # really wait, so the fake's bucket leaks meanwhile
        sleeps.append(seconds)
        time.sleep(seconds)

    with running_bitrix24(bucket_size=2, drain_per_s=5) as fake:
        conn = connector(fake, tmp_path, sleeps=sleep, retry=RetryPolicy(attempts=5, base_delay=0.001, max_delay=0.01,
                                     max_retry_after=0.25, jitter=0.0))
        for _ in range(4):
            conn.health_check()
    assert sleeps and all(s == pytest.approx(0.25) for s in sleeps)  # the 1 s wait, capped in tests


def test_query_limit_exceeded_surfaces_as_throttled_with_retry_after(tmp_path):
    with running_bitrix24(bucket_size=1, drain_per_s=0.001) as fake:
        conn = connector(fake, tmp_path, retry=RetryPolicy(attempts=1))
        conn.health_check()
        with pytest.raises(Throttled) as info:
            conn.health_check()
    assert info.value.retry_after == timedelta(seconds=1)
    assert "QUERY_LIMIT_EXCEEDED" in str(info.value)


def test_operating_time_limit_is_throttled_with_a_long_retry(tmp_path):
    with running_bitrix24() as fake:
        fake.state.block_method("crm.contact.list")
        conn = connector(fake, tmp_path, retry=RetryPolicy(attempts=1))
        with pytest.raises(Throttled) as info:
            conn.changed_contacts(Cursor(), 10)
    assert info.value.retry_after >= timedelta(minutes=1)


def test_wrong_webhook_is_an_authentication_error_without_the_secret(fake, tmp_path):
    bad = fake.webhook_url.replace(fake.state.webhook_secret, "Zx9wrongsecret77")
    conn = Bitrix24Connector(Bitrix24Options(webhook_url=bad), make_context(tmp_path))
    with pytest.raises(AuthenticationError) as info:
        conn.health_check()
    assert "Zx9wrongsecret77" not in str(info.value) and "NO_AUTH_FOUND" in str(info.value)


def test_missing_crm_scope_is_permission_denied(tmp_path):
    with running_bitrix24(scopes={"telephony"}) as fake:
        conn = connector(fake, tmp_path)
        with pytest.raises(PermissionDenied):
            conn.health_check()
        with pytest.raises(PermissionDenied) as info:
            conn.changed_contacts(Cursor(), 10)
    assert "insufficient_scope" in str(info.value)


def test_options_need_exactly_one_way_in():
    with pytest.raises(ValueError):
        Bitrix24Options()
    with pytest.raises(ValueError):
        Bitrix24Options(webhook_url="https://p/rest/1/abcdef/", portal_url="https://p")
    with pytest.raises(ValueError):
        Bitrix24Options(portal_url="https://p", client_id="x")


def test_a_create_repeated_with_its_key_makes_no_second_contact(fake, tmp_path):
    conn = connector(fake, tmp_path)
    write = ContactWrite("create-1", None, fields={"NAME": "Once"}, phones=("+380501230001",))
    [first] = conn.upsert_contacts([write])
    fake.state.http_requests = 0
    [again] = connector(fake, tmp_path).upsert_contacts([write])   # after a restart, too
    assert again.ok and again.id == first.id and fake.state.http_requests == 0
    assert len(fake.state.contacts) == 1


def test_a_create_whose_answer_was_lost_is_looked_up_by_phone(fake, tmp_path):
    conn = connector(fake, tmp_path)
    conn.ledger.sending("create-2")                     # sent, answer lost ...
    made = fake.state.add_contact(("+380501230002",), NAME="Made")   # ... but the portal made it
    [r] = conn.upsert_contacts([ContactWrite("create-2", None, fields={"NAME": "Made"},
                                             phones=("+380501230002",))])
    assert r.ok and r.id == str(made) and len(fake.state.contacts) == 1


def test_operating_time_near_the_limit_is_warned_once(fake, tmp_path):
    import structlog

    fake.state.method_cost_s["crm.contact.list"] = 200.0   # each call "runs" 200 s
    conn = connector(fake, tmp_path)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            conn.changed_contacts(Cursor(), 10)
    warned = [e for e in logs if e["event"] == "bitrix24.operating_time_high"]
    assert len(warned) == 1 and warned[0]["method"] == "crm.contact.list"


def test_delete_contacts_goes_through_one_batch_and_a_missing_contact_is_deleted_too(fake, tmp_path):
    gone = str(fake.state.add_contact(("+380501234001",), NAME="Gone"))
    kept = str(fake.state.add_contact(("+380501234002",), NAME="Kept"))
    conn = connector(fake, tmp_path)
    before = len(fake.state.journal)
    results = conn.delete_contacts([gone, "987654", "x1"])
    assert [(r.key, r.ok) for r in results] == [(gone, True), ("987654", True), ("x1", False)]
    assert fake.state.journal[before:] == ["batch", "crm.contact.delete", "crm.contact.delete"]
    assert [c.id for c in conn.fetch_contacts([gone, kept])] == [kept]
    assert conn.capabilities.contacts_delete and conn.capabilities.deletes == "verify_only"
