"""The SQL change walk returns every change exactly once whatever the data looks like:
timestamps spelt any way SQLite understands (mixed in one table), whole-second columns with
thousands of rows in one second, undecodable bytes, change times that are not times, NULLs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from connectors.sql import SqlConnector, SqlOptions
from syncd.model import Cursor
from syncd.testing.context import connector_context


def _connector(url: str, tmp_path: Path, **options) -> SqlConnector:
    ctx = connector_context(tmp_path / "state", field_names=("name",))
    return SqlConnector(SqlOptions(url=url, **options), ctx)


def _walk(connector: SqlConnector, limit: int, cursor: Cursor = Cursor(), restart=None):
    """Every page from ``cursor`` to the end: (ids in order, unreadable ids, last cursor)."""
    seen, bad = [], []
    while True:
        page = connector.changed_contacts(cursor, limit)
        seen += [(c.updated_at, c.id) for c in page.contacts]
        bad += [u.id for u in page.unreadable]
        cursor = page.next
        if restart is not None:
            connector = restart()
        if not page.more:
            return seen, bad, cursor


def _sqlite(tmp_path: Path, ddl: str = "") -> tuple[str, sqlite3.Connection]:
    path = tmp_path / "crm.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, phone TEXT, name TEXT, "
               f"updated_at DATETIME {ddl})")
    db.execute("CREATE INDEX ix_contacts_updated_at ON contacts (updated_at)")
    return f"sqlite:///{path}", db


def test_bulk_import_in_one_second_with_default_current_timestamp_is_read_whole(tmp_path):
    """1,200 rows from DEFAULT CURRENT_TIMESTAMP (whole seconds, no fraction) walked in pages
    of 500: the cursor's own spelling must not hide the rest of that second."""
    url, db = _sqlite(tmp_path, "DEFAULT CURRENT_TIMESTAMP")
    db.executemany("INSERT INTO contacts (phone, name) VALUES (?, ?)",
                   [(f"+38067{i:07d}", f"lead {i}") for i in range(1200)])
    db.commit()
    seen, bad, _ = _walk(_connector(url, tmp_path), 500)
    assert [i for _, i in seen] == [str(i) for i in range(1, 1201)]
    assert bad == []


SPELLINGS = [
    "2026-03-01 10:00:00",             # whole seconds, space
    "2026-03-01T10:00:00",             # T
    "2026-03-01 10:00:00.000000",      # what SQLAlchemy writes
    "2026-03-01 10:00:00.5",           # short fraction
    "2026-03-01T10:00:00.250Z",        # zone suffix Z
    "2026-03-01 12:00:00+02:00",       # an offset: 10:00 UTC
    "2026-03-01T07:00:00.750-03:00",   # 10:00:00.750 UTC
    "2026-03-01 10:00",                # no seconds
    "2026-03-01 09:59:59.999",
    "2026-03-01 10:00:01",
]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_mixed_spellings_are_walked_in_time_order_each_once_across_restarts(tmp_path, limit):
    url, db = _sqlite(tmp_path)
    rows = [(i + 1, f"+38067{i:07d}", f"n{i}", s) for i, s in enumerate(SPELLINGS * 3)]
    db.executemany("INSERT INTO contacts VALUES (?, ?, ?, ?)", rows)
    db.commit()
    connectors = []

    def restart():
        connectors.append(_connector(url, tmp_path))
        return connectors[-1]

    seen, bad, _ = _walk(restart(), limit, restart=restart)
    ids = [i for _, i in seen]
    assert sorted(ids, key=int) == [str(r[0]) for r in rows] and len(set(ids)) == len(ids)
    assert [t for t, _ in seen] == sorted(t for t, _ in seen), "not in time order"
    by_id = {i: t for t, i in seen}
    assert by_id["6"] == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)           # +02:00 read as UTC
    assert by_id["7"] == datetime(2026, 3, 1, 10, 0, 0, 750000, tzinfo=UTC)


def test_a_change_spelt_differently_after_the_cursor_is_still_read(tmp_path):
    """Text order is not time order: 'T' sorts after ' '. A later change spelt with a space
    must not hide behind a cursor taken from a row spelt with 'T'."""
    url, db = _sqlite(tmp_path)
    db.execute("INSERT INTO contacts VALUES (1, '+380671111111', 'a', '2026-03-01T10:00:00')")
    db.commit()
    connector = _connector(url, tmp_path)
    _, _, cursor = _walk(connector, 10)
    db.execute("INSERT INTO contacts VALUES (2, '+380672222222', 'b', '2026-03-01 11:00:00')")
    db.execute("INSERT INTO contacts VALUES (3, '+380673333333', 'c', '2026-03-01 10:30:00+00:00')")
    db.commit()
    seen, _, _ = _walk(connector, 10, cursor)
    assert [i for _, i in seen] == ["3", "2"]


def test_undecodable_text_fails_its_row_alone_and_the_walk_goes_on(tmp_path):
    url, db = _sqlite(tmp_path)
    db.execute("INSERT INTO contacts VALUES (1, '+380671111111', 'good', '2026-03-01 10:00:00')")
    db.execute("INSERT INTO contacts VALUES (2, '+380672222222', CAST(X'6261642dff' AS TEXT), "
               "'2026-03-01 10:00:01')")
    db.execute("INSERT INTO contacts VALUES (3, '+380673333333', 'fine', '2026-03-01 10:00:02')")
    db.commit()
    connector = _connector(url, tmp_path)
    page = connector.changed_contacts(Cursor(), 10)
    assert [c.id for c in page.contacts] == ["1", "3"]
    [bad] = page.unreadable
    assert bad.id == "2" and "name" in bad.reason and "UTF-8" in bad.reason
    assert bad.raw["name"] == "bad-\\xff" and bad.updated_at == datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC)
    # fetch and find skip it too instead of failing for every contact
    assert [c.id for c in connector.fetch_contacts(["1", "2", "3"])] == ["1", "3"]


def test_a_value_of_the_wrong_type_fails_its_row_alone(tmp_path):
    url, db = _sqlite(tmp_path)
    db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, phone TEXT, name TEXT, "
               "born DATE, vip BOOLEAN, updated_at DATETIME)")
    db.execute("INSERT INTO people VALUES (1, '+380671111111', 'a', '1990-01-01', 1, '2026-03-01 10:00:00')")
    db.execute("INSERT INTO people VALUES (2, '+380672222222', 'b', 'last spring', 1, '2026-03-01 10:00:01')")
    db.execute("INSERT INTO people VALUES (3, '+380673333333', 'c', '1991-02-03', 'maybe', '2026-03-01 10:00:02')")
    db.execute("INSERT INTO people VALUES (4, X'00ff', 'd', '1991-02-03', 0, '2026-03-01 10:00:03')")
    db.commit()
    ctx = connector_context(tmp_path / "state", field_names=("name", "born", "vip"))
    connector = SqlConnector(SqlOptions(url=url, contacts_table="people"), ctx)
    page = connector.changed_contacts(Cursor(), 10)
    assert [c.id for c in page.contacts] == ["1"]
    assert page.contacts[0].fields["born"] == "1990-01-01" and page.contacts[0].fields["vip"] is True
    reasons = {u.id: u.reason for u in page.unreadable}
    assert set(reasons) == {"2", "3", "4"}
    assert "born" in reasons["2"] and "vip" in reasons["3"] and "phone" in reasons["4"]


def test_times_that_are_not_times_and_nulls_are_counted_not_walked(tmp_path):
    url, db = _sqlite(tmp_path)
    values = ["2026-03-01 10:00:00", "yesterday", None, "2026-02-30 10:00:00", "12:30", 1700000000,
              "2026-03-01 10:00:00.123+0200", None, "2026-03-01 10:00:05"]
    db.executemany("INSERT INTO contacts VALUES (?, ?, 'x', ?)",
                   [(i + 1, f"+38067{i:07d}", v) for i, v in enumerate(values)])
    db.commit()
    connector = _connector(url, tmp_path)
    seen, bad, _ = _walk(connector, 2)
    assert [i for _, i in seen] == ["1", "9"] and bad == []
    found = connector.untracked_contacts()
    assert found.null == 2
    assert found.unreadable_total == 5
    assert sorted(u.id for u in found.unreadable) == ["2", "4", "5", "6", "7"]
    assert all("is not a time" in u.reason for u in found.unreadable)


def test_a_long_first_walk_widens_its_window_and_keeps_order(tmp_path):
    """Rows years apart (and one in 2099) with a page smaller than the table: the windowed
    SQLite walk still returns each row once, in time order."""
    url, db = _sqlite(tmp_path)
    base = datetime(2020, 1, 1)
    stamps = [base + timedelta(days=d, seconds=s) for d in (0, 1, 3, 40, 400, 1500) for s in (0, 1)]
    stamps.append(datetime(2099, 1, 1))
    db.executemany("INSERT INTO contacts VALUES (?, ?, 'x', ?)",
                   [(i + 1, f"+38067{i:07d}", t.isoformat(sep=" ")) for i, t in enumerate(stamps)])
    db.commit()
    seen, _, cursor = _walk(_connector(url, tmp_path), 3)
    assert [i for _, i in seen] == [str(i + 1) for i in range(len(stamps))]
    assert cursor.updated_at == datetime(2099, 1, 1, tzinfo=UTC)


@pytest.mark.mariadb
def test_mariadb_second_resolution_with_thousands_in_one_second(sql_db, tmp_path):
    """MariaDB DATETIME (no fraction): 3,000 rows in one second, walked in pages of 500, and
    a cursor "at or after" a fraction of that second still includes the whole second."""
    if sql_db.dialect != "mariadb":
        pytest.skip("MariaDB only")
    meta = sa.MetaData()
    table = sa.Table("contacts", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("phone", sa.String(40)), sa.Column("name", sa.String(40)),
                     sa.Column("updated_at", mysql.DATETIME(fsp=0), index=True))
    engine = sql_db.engine()
    meta.create_all(engine)
    second = datetime(2026, 3, 1, 10, 0, 0)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "phone": f"+38067{i:07d}", "name": "x",
                                       "updated_at": second} for i in range(1, 3001)])
    connector = _connector(sql_db.url, tmp_path)
    seen, _, _ = _walk(connector, 500)
    assert [i for _, i in seen] == [str(i) for i in range(1, 3001)]
    again, _, _ = _walk(connector, 500, Cursor(second.replace(tzinfo=UTC) + timedelta(milliseconds=700)))
    assert len(again) == 3000
    connector.close()


@pytest.mark.postgres
def test_postgres_infinity_is_untracked_not_a_failed_walk(sql_db, tmp_path):
    if sql_db.dialect != "postgres":
        pytest.skip("PostgreSQL only")
    engine = sql_db.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE contacts (id serial PRIMARY KEY, phone text, name text, "
                             "updated_at timestamp)"))
        conn.execute(sa.text("INSERT INTO contacts (phone, name, updated_at) VALUES "
                             "('+380671111111', 'a', '2026-03-01 10:00'), ('+380672222222', 'b', 'infinity'),"
                             "('+380673333333', 'c', NULL)"))
    connector = _connector(sql_db.url, tmp_path)
    seen, _, _ = _walk(connector, 10)
    assert [i for _, i in seen] == ["1"]
    found = connector.untracked_contacts()
    assert (found.null, found.unreadable_total) == (1, 1)
    connector.close()


@pytest.mark.parametrize("stored, region, expected", [
    ("+52 1 55 1234 5678", "MX", "+525512345678"),     # the old Mexican mobile "1": the engine's rule
    ("067 123 4567", "UA", "+380671234567"),            # national form, read in the number's country
    ("+380 67 000", "UA", None),                        # a possible length, not a valid number
])
def test_the_connector_and_the_engine_read_a_number_alike(stored, region, expected):
    """One normalisation for both: a contact the engine matches by number is the one the
    connector finds (two copies had disagreed on validity and on Mexico's old mobile prefix)."""
    from connectors.sql.phones import e164
    from syncd.phones import normalize_or_none

    assert e164(stored, region) == normalize_or_none(stored, region) == expected


def test_a_row_edited_again_in_the_second_it_was_read_is_found_by_the_next_walk(sql_db, tmp_path):
    """Whole-second change times on every engine: a row read at second S and edited again
    within S keeps the time S. The exact keyset from the stored cursor cannot see it; the walk
    the engine starts (``capture.walk_start``: the last second before the previous walk began
    is read again, even with no overlap window) does."""
    from syncd.engine.capture import walk_start

    meta = sa.MetaData()
    stamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=0), "mysql", "mariadb")
    table = sa.Table("contacts", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("phone", sa.String(40)), sa.Column("name", sa.String(40)),
                     sa.Column("updated_at", stamp, index=True))
    engine = sql_db.engine()
    meta.create_all(engine)
    second = datetime(2026, 3, 1, 10, 0, 0)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "phone": f"+38067{i:07d}", "name": "first",
                                       "updated_at": second} for i in (1, 2)])
    connector = _connector(sql_db.url, tmp_path)
    walk_began = second.replace(tzinfo=UTC) + timedelta(milliseconds=300)
    seen, _, cursor = _walk(connector, 10)
    assert [i for _, i in seen] == ["1", "2"]
    with engine.begin() as conn:   # edited again within the same second: same time
        conn.execute(table.update().where(table.c.id == 1).values(name="again", updated_at=second))
    exact, _, _ = _walk(connector, 10, cursor)
    assert exact == [], "the exact keyset was expected to miss it (the case this guards)"
    start = walk_start(cursor, walk_began, timedelta(0))
    page = connector.changed_contacts(start, 10)
    assert {c.id: c.fields.get("name") for c in page.contacts}.get("1") == "again"
    connector.close()
