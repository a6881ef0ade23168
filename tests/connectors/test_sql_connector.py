"""SQL connector behaviour beyond the conformance suite (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor


@pytest.fixture
def crm(sql_backend):
    return sql_backend


def row(crm, contact_id):
    with crm.engine.connect() as conn:
        found = conn.execute(sa.select(crm.table).where(crm.table.c.id == int(contact_id))).first()
    return dict(found._mapping)


def set_stamp(crm, ids, stamp):
    with crm.engine.begin() as conn:
        conn.execute(crm.table.update().where(crm.table.c.id.in_(ids)).values(updated_at=stamp))


def test_find_by_phone_matches_every_spelling_of_the_number(crm):
    spellings = ["+380 67 123 4567", "+38 (067) 123-45-67", "380671234567", "067 123 4567",
                 "0671234567"]
    ids = [crm.create_contact({"name": f"n{i}"}, ["", s]) for i, s in enumerate(spellings)]
    crm.create_contact({"name": "other country"}, ["+48 671 234 567"])
    crm.create_contact({"name": "longer"}, ["+380 67 123 45 678"])
    found = crm.connector().find_by_phone("+380671234567")
    assert sorted(c.id for c in found) == sorted(ids)


def test_empty_phone_columns_are_skipped_and_order_is_kept(crm):
    contact_id = crm.create_contact({"name": "x"}, ["", "+48511222333", "  "])
    (contact,) = crm.connector().fetch_contacts([contact_id])
    assert contact.phones == ("+48511222333",)


def test_phones_fill_columns_in_order_and_clear_the_rest(crm):
    contact_id = crm.create_contact({"name": "x"}, ["+48511222333", "+48511222334", "+48511222335"])
    (r,) = crm.connector().upsert_contacts([ContactWrite("k", contact_id, phones=("+380671112233",))])
    assert r.ok
    stored = row(crm, contact_id)
    assert (stored["phone"], stored["phone2"], stored["mobile"]) == ("+380671112233", None, None)


def test_a_second_spelling_of_the_same_number_is_not_stored_twice(crm):
    contact_id = crm.create_contact({"name": "x"}, [])
    (r,) = crm.connector().upsert_contacts([ContactWrite(
        "k", contact_id, phones=("+380671112233", "+380 67 111 22 33", "+48511222333"))])
    assert r.ok
    stored = row(crm, contact_id)
    assert (stored["phone"], stored["phone2"], stored["mobile"]) == ("+380671112233", "+48511222333", None)


def test_more_phones_than_columns_fails_that_record_only(crm):
    phones = tuple(f"+4851122233{i}" for i in range(4))
    results = crm.connector().upsert_contacts([
        ContactWrite("too-many", None, {"name": "a"}, phones),
        ContactWrite("fine", None, {"name": "b"}, phones[:3])])
    assert not results[0].ok and not results[0].retriable
    assert "4 phones but only 3 phone column(s) (phone, phone2, mobile)" in results[0].error
    assert results[1].ok


def test_a_refused_record_leaves_no_partial_change(crm):
    contact_id = crm.create_contact({"name": "kept", "email": "old@example.com"}, [])
    (r,) = crm.connector().upsert_contacts([ContactWrite(
        "k", contact_id, {"email": "new@example.com", "name": "REJECT-ME"})])
    assert not r.ok and "refused by the database" in r.error
    assert row(crm, contact_id)["email"] == "old@example.com"


def test_an_unmapped_field_fails_that_record(crm):
    contact_id = crm.create_contact({"name": "x"}, [])
    (r,) = crm.connector().upsert_contacts([ContactWrite("k", contact_id, {"salary": 1})])
    assert not r.ok and 'field "salary" is not a configured column' in r.error


def test_a_write_sets_updated_at_to_the_database_now_in_utc(crm):
    contact_id = crm.create_contact({"name": "x"}, [])
    set_stamp(crm, [int(contact_id)], datetime(2020, 1, 1))
    connector = crm.connector()
    connector.upsert_contacts([ContactWrite("k", contact_id, {"name": "y"})])
    (contact,) = connector.fetch_contacts([contact_id])
    assert contact.updated_at.tzinfo is not None
    assert abs(contact.updated_at - datetime.now(UTC)) < timedelta(seconds=5)


def test_integer_ids_compare_as_numbers_at_equal_timestamps(crm):
    ids = [int(crm.create_contact({"name": f"n{i}"}, [])) for i in range(11)]  # ids 1..11
    stamp = datetime(2025, 5, 5, 12, 0, 0)
    set_stamp(crm, ids, stamp)
    connector = crm.connector()
    seen, cursor = [], Cursor()
    while True:
        page = connector.changed_contacts(cursor, 4)
        seen += [int(c.id) for c in page.contacts]
        cursor = page.next
        if not page.more:
            break
    assert seen == sorted(ids)  # "10" < "9" as text would lose or repeat rows


def test_a_cursor_without_last_id_includes_its_own_time(crm):
    a, b = crm.create_contact({"name": "a"}, []), crm.create_contact({"name": "b"}, [])
    stamp = datetime(2025, 5, 5, 12, 0, 0)
    set_stamp(crm, [int(a)], stamp)
    set_stamp(crm, [int(b)], stamp + timedelta(seconds=1))
    page = crm.connector().changed_contacts(Cursor(stamp.replace(tzinfo=UTC)), 10)
    assert [c.id for c in page.contacts] == [a, b]


def test_an_empty_page_keeps_the_cursor(crm):
    cursor = Cursor(datetime(2099, 1, 1, tzinfo=UTC), "5")
    page = crm.connector().changed_contacts(cursor, 10)
    assert page == type(page)(contacts=[], next=cursor, more=False)


def test_a_retried_create_finds_the_row_by_its_phones_after_a_restart(crm):
    write = ContactWrite("create-1", None, {"name": "x"}, ("+48511222333", "+380671112233"))
    (first,) = crm.connector().upsert_contacts([write])
    (again,) = crm.connector().upsert_contacts([write])
    assert again.ok and again.id == first.id
    with crm.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(crm.table)).scalar_one() == 1


def call(session_id="90001", contact_id=None):
    return Call(session_id=session_id, direction=CallDirection.INBOUND, phone="+380671112233",
                started_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC), duration_s=75, talk_s=60,
                outcome=CallOutcome.ANSWERED, agent="Olena", recording_url="https://rec/1.mp3",
                contact_id=contact_id)


def test_calls_are_stored_with_the_documented_columns(crm):
    contact_id = crm.create_contact({"name": "x"}, ["+380671112233"])
    (r,) = crm.connector().log_calls([call(contact_id=contact_id)])
    assert r.ok and r.key == "90001"
    calls = sa.Table("calls", sa.MetaData(), autoload_with=crm.engine)
    with crm.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(calls)).one()._mapping)
    assert str(stored["id"]) == r.id
    assert stored["contact_id"] == int(contact_id)   # the contacts id type, not text
    assert (stored["direction"], stored["outcome"], stored["duration_s"], stored["talk_s"]) == \
        ("inbound", "answered", 75, 60)
    assert stored["started_at"].replace(tzinfo=None) == datetime(2026, 3, 1, 9, 30)
    assert stored["created_at"] is not None


def test_a_repeated_session_id_answers_the_existing_row(crm):
    connector = crm.connector()
    (first,) = connector.log_calls([call()])
    results = connector.log_calls([call(), call("90002")])
    assert results[0].id == first.id and results[1].ok and results[1].id != first.id
    assert crm.count_activities("90001") == 1


def test_calls_without_a_calls_table_fail_each_record_with_the_reason(sql_crm, tmp_path):
    from connectors.sql import SqlConnector, SqlOptions
    from syncd.testing.context import connector_context
    connector = SqlConnector(SqlOptions(url=sql_crm.url),
                             connector_context(tmp_path, field_names=("name",)))
    (r,) = connector.log_calls([call()])
    assert not r.ok and "create_calls_table" in r.error


def test_text_ids_are_walked_in_their_own_order(sql_db, tmp_path):
    from connectors.sql import SqlConnector, SqlOptions
    from syncd.testing.context import connector_context
    table = sa.Table("people", sa.MetaData(), sa.Column("code", sa.String(20), primary_key=True),
                     sa.Column("phone", sa.String(40)), sa.Column("changed", sa.DateTime))
    engine = sql_db.engine()
    table.create(engine)
    stamp = datetime(2025, 1, 1, 8, 0, 0)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"code": c, "changed": stamp} for c in ("c", "a", "b", "d")])
    connector = SqlConnector(SqlOptions(url=sql_db.url, contacts_table="people", id_column="code",
                                        updated_at_column="changed"),
                             connector_context(tmp_path, field_names=()))
    seen, cursor = [], Cursor()
    for _ in range(10):
        page = connector.changed_contacts(cursor, 1)
        seen += [c.id for c in page.contacts]
        cursor = page.next
        if not page.more:
            break
    assert seen == ["a", "b", "c", "d"]
    assert not connector.capabilities.contacts_create


@pytest.mark.postgres
def test_a_timestamptz_column_reads_and_writes_utc(pg_db, tmp_path):
    sql_db = pg_db
    from connectors.sql import SqlConnector, SqlOptions
    from syncd.testing.context import connector_context
    table = sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("phone", sa.String(40)),
                     sa.Column("updated_at", sa.DateTime(timezone=True)))
    engine = sql_db.engine()
    table.create(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'America/Mexico_City'")
        conn.execute(table.insert().values(id=1, updated_at=datetime(2025, 1, 1, 12, tzinfo=UTC)))
    connector = SqlConnector(SqlOptions(url=sql_db.url), connector_context(tmp_path))
    (contact,) = connector.changed_contacts(Cursor(), 10).contacts
    assert contact.updated_at == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert connector.changed_contacts(Cursor(contact.updated_at, "1"), 10).contacts == []
    connector.upsert_contacts([ContactWrite("k", "1", phones=("+48511222333",))])
    (after,) = connector.fetch_contacts(["1"])
    assert abs(after.updated_at - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_do_not_call_flag_reads_as_a_boolean_everywhere(crm):
    contact_id = crm.create_contact({"name": "x", "do_not_call": True}, [])
    (contact,) = crm.connector().fetch_contacts([contact_id])
    assert contact.fields["do_not_call"] is True
