"""SQL connector: soft deletes through ``deleted_column``, and ``delete_contacts``
(SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from syncd.errors import ConfigError
from syncd.model import Cursor


def utcnow_naive() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


STAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


@pytest.fixture
def people(sql_db):
    table = sa.Table("people", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("name", sa.String(100)), sa.Column("phone", sa.String(40)),
                     sa.Column("updated_at", STAMP), sa.Column("archived", sa.Boolean),
                     sa.Column("deleted_at", STAMP), sa.Column("note", sa.String(20)))
    engine = sql_db.engine()
    table.create(engine)
    return sql_db, engine, table


def _connector(db, tmp_path, **options):
    from connectors.sql import SqlConnector, SqlOptions
    from syncd.testing.context import connector_context
    return SqlConnector(SqlOptions(url=db.url, contacts_table="people", calls_table=None, **options),
                        connector_context(tmp_path, field_names=("name",)))


def _add(engine, table, **values):
    with engine.begin() as conn:
        return str(conn.execute(table.insert().values(updated_at=utcnow_naive(), **values))
                   .inserted_primary_key[0])


def _walk(connector):
    page = connector.changed_contacts(Cursor(), 100)
    return {c.id: c.deleted for c in page.contacts}


@pytest.mark.parametrize("column, gone", [("archived", {"archived": True}),
                                          ("deleted_at", {"deleted_at": utcnow_naive()})])
def test_soft_deleted_rows_come_through_the_walk_as_deleted(people, tmp_path, column, gone):
    db, engine, table = people
    alive = _add(engine, table, name="alive", phone="+380671110001", archived=False)
    dead = _add(engine, table, name="dead", phone="+380671110002", **gone)
    connector = _connector(db, tmp_path, deleted_column=column)
    assert _walk(connector) == {alive: False, dead: True}
    assert connector.capabilities.deletes == "flag" and connector.capabilities.contacts_delete
    assert [c.deleted for c in connector.fetch_contacts([dead])] == [True]
    assert connector.find_by_phone("+380671110002") == []     # never adopted by a create


def test_without_a_deleted_column_deletes_are_left_to_verify(people, tmp_path):
    db, engine, table = people
    contact_id = _add(engine, table, name="x", archived=True)
    connector = _connector(db, tmp_path)
    assert _walk(connector) == {contact_id: False}
    assert connector.capabilities.deletes == "verify_only"


def test_delete_contacts_marks_the_row_and_touches_updated_at(people, tmp_path):
    db, engine, table = people
    contact_id = _add(engine, table, name="x", phone="+380671110003", archived=False)
    connector = _connector(db, tmp_path, deleted_column="archived")
    page = connector.changed_contacts(Cursor(), 100)
    (r, missing) = connector.delete_contacts([contact_id, "999999"])
    assert r.ok and missing.ok                         # a row already gone is deleted too
    after = connector.changed_contacts(page.next, 100)
    assert [(c.id, c.deleted) for c in after.contacts] == [(contact_id, True)]


def test_delete_contacts_sets_a_date_time_column_to_now(people, tmp_path):
    db, engine, table = people
    contact_id = _add(engine, table, name="x")
    connector = _connector(db, tmp_path, deleted_column="deleted_at")
    before = utcnow_naive() - timedelta(seconds=5)
    assert connector.delete_contacts([contact_id])[0].ok
    with engine.connect() as conn:
        stamp = conn.execute(sa.select(table.c.deleted_at)).scalar_one()
    assert stamp is not None and stamp >= before


def test_delete_contacts_without_a_deleted_column_removes_the_row(people, tmp_path):
    db, engine, table = people
    contact_id = _add(engine, table, name="x")
    connector = _connector(db, tmp_path)
    (r, bad) = connector.delete_contacts([contact_id, "not-a-number"])
    assert r.ok and not bad.ok and not bad.retriable
    assert connector.fetch_contacts([contact_id]) == []


@pytest.mark.parametrize("column, message", [
    ("gone", 'crm.options.deleted_column: table "people" has no column "gone"'),
    ("note", 'crm.options.deleted_column: column "note" is VARCHAR(20); a soft-delete column'),
])
def test_a_bad_deleted_column_is_a_config_error_naming_the_key(people, tmp_path, column, message):
    db, _, _ = people
    with pytest.raises(ConfigError) as exc:
        _connector(db, tmp_path, deleted_column=column).changed_contacts(Cursor(), 1)
    assert message in str(exc.value)
