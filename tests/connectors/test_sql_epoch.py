"""Change times stored as unix epoch numbers (``updated_at_format = "unix_seconds"`` /
``"unix_milliseconds"``) on SQLite, PostgreSQL and MariaDB: the walk returns every change once,
the future-time guard, NULLs and numbers that are not times are reported, syncd's own writes
set the database's now in the column's unit, and a column of the wrong kind stops at start."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from connectors.sql import SqlConnector, SqlOptions
from syncd.config import validate_config_dict
from syncd.engine.capture import FutureTimes, clamped, walk_start
from syncd.errors import ConfigError
from syncd.model import ContactWrite, Cursor
from syncd.testing.conformance import ConnectorConformance
from syncd.testing.context import connector_context

from tests.connectors.conftest import EPOCH_UNITS, SqlBackend, epoch_of

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def _stamp_type(fmt: str, kind: str):
    """The updated_at column of each kind: integer (INT/BIGINT), decimal, real (DOUBLE)."""
    if kind == "integer":
        return sa.BigInteger()
    if kind == "decimal":   # exact to the microsecond (seconds) or millisecond
        return sa.Numeric(17, 6) if fmt == "unix_seconds" else sa.Numeric(16, 3)
    return sa.Float(53)


KINDS = [("unix_seconds", "integer"), ("unix_seconds", "decimal"), ("unix_seconds", "real"),
         ("unix_milliseconds", "integer"), ("unix_milliseconds", "decimal"),
         ("unix_milliseconds", "real")]


@pytest.fixture(params=KINDS, ids=[f"{f.removeprefix('unix_')}-{k}" for f, k in KINDS])
def epoch_table(request, sql_db):
    """(database, format, kind, table): an empty contacts table with an epoch updated_at."""
    fmt, kind = request.param
    meta = sa.MetaData()
    table = sa.Table("contacts", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("phone", sa.String(40)), sa.Column("name", sa.String(40)),
                     sa.Column("updated_at", _stamp_type(fmt, kind), index=True))
    meta.create_all(sql_db.engine())
    return sql_db, fmt, kind, table


def _connector(url: str, tmp_path: Path, fmt: str, **options) -> SqlConnector:
    ctx = connector_context(tmp_path / "state", field_names=("name",))
    return SqlConnector(SqlOptions(url=url, updated_at_format=fmt, **options), ctx)


def _number(at: datetime, fmt: str, kind: str):
    value = epoch_of(at, fmt, whole=kind == "integer")
    return Decimal(str(value)) if kind == "decimal" else value


def _walk(connector: SqlConnector, limit: int, cursor: Cursor = Cursor()):
    seen = []
    while True:
        page = connector.changed_contacts(cursor, limit)
        assert len(page.contacts) <= limit
        seen += [(c.updated_at, c.id) for c in page.contacts]
        cursor = page.next
        if not page.more:
            return seen, cursor


def _resolution(fmt: str, kind: str) -> timedelta:
    """The smallest step between two times the column holds."""
    if kind == "integer":
        return timedelta(seconds=1) if fmt == "unix_seconds" else timedelta(milliseconds=1)
    return timedelta(microseconds=1) if fmt == "unix_seconds" or kind == "real" else timedelta(milliseconds=1)


def test_every_change_is_returned_once_in_time_order_across_pages(epoch_table, tmp_path):
    """600 rows in one second (one value), then rows a step of the column apart, ids not in
    time order; pages of 7 and 250; the times read are the stored ones, exactly."""
    db, fmt, kind, table = epoch_table
    step = _resolution(fmt, kind)
    times = [T0] * 600 + [T0 + timedelta(seconds=1) + step * (i % 40) for i in range(200)]
    ids = list(range(len(times), 0, -1))   # the later a row, the smaller its id
    with db.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": i, "phone": f"+38067{i:07d}", "name": "x",
                                       "updated_at": _number(t, fmt, kind)} for i, t in zip(ids, times)])
    connector = _connector(db.url, tmp_path, fmt)
    expected = sorted((t, i) for t, i in zip(times, ids))
    for limit in (7, 250):
        seen, cursor = _walk(connector, limit)
        assert [(t, int(i)) for t, i in seen] == expected
        again, _ = _walk(connector, limit, cursor)
        assert again == [], "a walk from the end cursor repeated changes"
    # a cursor with a time but no id: everything from that whole second on
    seen, _ = _walk(connector, 100, Cursor(T0 + timedelta(seconds=1, milliseconds=700)))
    assert len(seen) == 200
    connector.close()


@pytest.mark.parametrize("fmt", ["unix_seconds", "unix_milliseconds"])
def test_values_closer_than_a_microsecond_are_one_time_ordered_by_id(sql_db, tmp_path, fmt):
    """A real column holds values between microseconds: two of them in one microsecond read
    as one time, so the walk must order them by id (a page boundary between them loses
    nothing), never by the value the cursor cannot hold."""
    table = sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("phone", sa.String(40)), sa.Column("name", sa.String(40)),
                     sa.Column("updated_at", sa.Float(53), index=True))
    table.create(sql_db.engine())
    per = EPOCH_UNITS[fmt]
    base = 1772359200 * per + Decimal("0.25") * per
    tiny = Decimal("0.0000002") * per    # well under a microsecond, above the double's step
    values = {1: base + 2 * tiny, 2: base + tiny, 3: base, 4: base + 3 * tiny}
    with sql_db.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": i, "phone": "+380671111111", "name": "x",
                                       "updated_at": float(v)} for i, v in values.items()])
    connector = _connector(sql_db.url, tmp_path, fmt)
    for limit in (1, 2, 3):
        seen, _ = _walk(connector, limit)
        assert [i for _, i in seen] == ["1", "2", "3", "4"], f"limit {limit}"
        assert len({t for t, _ in seen}) == 1
    connector.close()


def test_a_row_edited_again_in_the_second_it_was_read_is_found_by_the_next_walk(sql_db, tmp_path):
    """Whole unix seconds: a row read at second S and edited again within S keeps S. The
    exact keyset misses it; the engine's walk start (the last second before the previous
    walk began, read again) finds it."""
    table = sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("phone", sa.String(40)), sa.Column("name", sa.String(40)),
                     sa.Column("updated_at", sa.Integer, index=True))   # INT(11), as PHP makes it
    table.create(sql_db.engine())
    second = 1772359200
    with sql_db.engine().begin() as conn:
        conn.execute(table.insert(), [{"id": i, "phone": f"+38067{i:07d}", "name": "first",
                                       "updated_at": second} for i in (1, 2)])
    connector = _connector(sql_db.url, tmp_path, "unix_seconds")
    seen, cursor = _walk(connector, 10)
    assert [i for _, i in seen] == ["1", "2"] and cursor.updated_at == T0
    with sql_db.engine().begin() as conn:
        conn.execute(table.update().where(table.c.id == 1).values(name="again", updated_at=second))
    assert _walk(connector, 10, cursor)[0] == [], "the exact keyset was expected to miss it"
    start = walk_start(cursor, T0 + timedelta(milliseconds=300), timedelta(0))
    page = connector.changed_contacts(start, 10)
    assert {c.id: c.fields.get("name") for c in page.contacts}.get("1") == "again"
    connector.close()


def test_a_change_time_in_the_future_is_read_and_the_cursor_stays_at_now(epoch_table, tmp_path):
    db, fmt, kind, table = epoch_table
    now = datetime.now(UTC)
    ahead = (now + timedelta(days=2)).replace(microsecond=0)
    with db.engine().begin() as conn:
        conn.execute(table.insert(), [
            {"id": 1, "phone": "+380671111111", "name": "a", "updated_at": _number(now - timedelta(hours=1), fmt, kind)},
            {"id": 2, "phone": "+380672222222", "name": "b", "updated_at": _number(ahead, fmt, kind)}])
    connector = _connector(db.url, tmp_path, fmt)
    page = connector.changed_contacts(Cursor(), 10)
    assert [(c.id, c.updated_at) for c in page.contacts][1] == ("2", ahead)
    future = FutureTimes("crm", timedelta(seconds=5))
    future.check(page.contacts, now)
    assert future.found == [("2", ahead)]
    stored = clamped(page.next, now)
    assert stored.updated_at == now and stored.last_id is None
    # the next walk starts at now and reads the future row again (until its time is fixed)
    again = connector.changed_contacts(walk_start(stored, now, timedelta(seconds=10)), 10)
    assert [c.id for c in again.contacts] == ["2"]
    connector.close()


def test_nulls_and_numbers_that_are_not_times_are_counted_not_walked(epoch_table, tmp_path):
    db, fmt, kind, table = epoch_table
    per = EPOCH_UNITS[fmt]
    before_1900 = -3_000_000_000 * per         # 1874: out of range like a zero date
    with db.engine().begin() as conn:
        conn.execute(table.insert(), [
            {"id": 1, "phone": "+380671111111", "name": "a", "updated_at": _number(T0, fmt, kind)},
            {"id": 2, "phone": "+380672222222", "name": "b", "updated_at": None},
            {"id": 3, "phone": "+380673333333", "name": "c", "updated_at": before_1900},
            {"id": 4, "phone": "+380674444444", "name": "d", "updated_at": None},
            {"id": 5, "phone": "+380675555555", "name": "e", "updated_at": 0}])   # 1970: a time
        if kind != "decimal":   # the year 10000 (too wide for the decimal columns here)
            conn.execute(table.insert().values(id=7, phone="+380677777777", name="g",
                                               updated_at=253402300800 * per))
        if db.dialect == "sqlite":   # SQLite keeps text in a number column
            conn.exec_driver_sql("INSERT INTO contacts VALUES (6, '+380676666666', 'f', 'yesterday')")
    connector = _connector(db.url, tmp_path, fmt)
    seen, _ = _walk(connector, 1)
    assert [i for _, i in seen] == ["5", "1"]
    assert seen[0][0] == datetime(1970, 1, 1, tzinfo=UTC) and seen[1][0] == T0
    found = connector.untracked_contacts()
    bad = ["3"] + (["6"] if db.dialect == "sqlite" else []) + (["7"] if kind != "decimal" else [])
    assert found.null == 2 and found.unreadable_total == len(bad)
    assert [u.id for u in found.unreadable] == bad
    assert all("is not a time" in u.reason for u in found.unreadable)
    connector.close()


def test_a_write_sets_updated_at_to_the_databases_now_as_epoch(epoch_table, tmp_path):
    """An update and a create by syncd move updated_at to now in the column's unit (whole
    units in an integer column); the walk reads both back at exactly that time."""
    db, fmt, kind, table = epoch_table
    with db.engine().begin() as conn:
        conn.execute(table.insert().values(phone="+380671111111", name="old",
                                           updated_at=_number(T0, fmt, kind)))
    connector = _connector(db.url, tmp_path, fmt)
    _, cursor = _walk(connector, 10)
    before = datetime.now(UTC)
    results = connector.upsert_contacts([
        ContactWrite(key="u", id="1", fields={"name": "new"}),
        ContactWrite(key="c", id=None, fields={"name": "created"}, phones=("+380679999999",))])
    after = datetime.now(UTC)
    assert all(r.ok for r in results), results
    with db.engine().connect() as conn:
        raw = dict(conn.execute(sa.select(table.c.id, table.c.updated_at)).all())
    per = EPOCH_UNITS[fmt]
    slack = 2 * per   # the database's clock against this host's
    for value in raw.values():
        assert epoch_of(before, fmt, True) - slack <= value <= epoch_of(after, fmt, True) + slack
        if kind == "integer":
            assert value == int(value) and isinstance(value, int)
    seen, _ = _walk(connector, 10, cursor)
    assert sorted(i for _, i in seen) == ["1", results[1].id]
    read = {i: t for t, i in seen}
    for row_id, value in raw.items():
        assert read[str(row_id)] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=int(Decimal(str(value)) * 1_000_000 / per)), (row_id, value)
    connector.close()


# -- the option and the column's type --------------------------------------------------------
def test_an_unknown_format_stops_at_start_naming_the_key(tmp_path):
    data = {"okitoki": {"url": "https://acme.oki-toki.net", "api_token": "tok-123456"},
            "crm": {"connector": "sql", "options": {"url": f"sqlite:///{tmp_path / 'crm.db'}",
                                                   "updated_at_format": "epoch"}}}
    with pytest.raises(ConfigError) as caught:
        validate_config_dict(copy.deepcopy(data))
    lines = [p for p in caught.value.problems if "updated_at_format" in p]
    assert len(lines) == 1 and lines[0].startswith("crm.options.updated_at_format:")
    assert "unix_seconds" in lines[0]
    with pytest.raises(ValidationError):
        SqlOptions(url="sqlite:///x.db", updated_at_format="seconds")


def _table_with(db, stamp) -> None:
    sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("phone", sa.String(40)), sa.Column("name", sa.String(40)),
             sa.Column("updated_at", stamp)).create(db.engine())


def test_a_number_column_read_as_date_times_names_the_option(sql_db, tmp_path):
    _table_with(sql_db, sa.BigInteger())
    with pytest.raises(ConfigError) as caught:
        _connector(sql_db.url, tmp_path, "datetime").health_check()
    [line] = caught.value.problems
    assert line.startswith('crm.options.updated_at_format: column "updated_at" is BIGINT, a number')
    assert 'set updated_at_format = "unix_seconds"' in line


def test_a_date_time_column_read_as_epoch_names_the_option(sql_db, tmp_path):
    """A date-time column is refused as epoch on PostgreSQL and MariaDB; on SQLite a DATETIME
    column holds whatever was written (numbers included), so it is accepted."""
    _table_with(sql_db, sa.DateTime())
    connector = _connector(sql_db.url, tmp_path, "unix_seconds")
    if sql_db.dialect == "sqlite":
        connector.health_check()
        return
    with pytest.raises(ConfigError) as caught:
        connector.health_check()
    [line] = caught.value.problems
    assert line.startswith('crm.options.updated_at_format: "unix_seconds" but column "updated_at" is ')
    assert "a date-time column" in line


def test_a_text_column_is_not_an_epoch_column(sql_db, tmp_path):
    _table_with(sql_db, sa.String(20))
    with pytest.raises(ConfigError, match=r'updated_at_format: "unix_milliseconds" needs a number column'):
        _connector(sql_db.url, tmp_path, "unix_milliseconds").health_check()


def test_sqlite_datetime_column_holding_unix_seconds_is_walked(tmp_path):
    """The case that was "not a time" before: a SQLite DATETIME column the application
    fills with unix seconds (INTEGER values)."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "crm.db")
    db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, phone TEXT, name TEXT, updated_at DATETIME)")
    db.executemany("INSERT INTO contacts VALUES (?, '+380671111111', 'x', ?)",
                   [(i, 1772359200 + i // 4) for i in range(1, 41)])
    db.commit()
    connector = _connector(f"sqlite:///{tmp_path / 'crm.db'}", tmp_path, "unix_seconds")
    seen, _ = _walk(connector, 3)
    assert [i for _, i in seen] == [str(i) for i in range(1, 41)]
    assert seen[-1][0] == T0 + timedelta(seconds=10)
    assert connector.untracked_contacts().unreadable_total == 0
    connector.upsert_contacts([ContactWrite(key="k", id="1", fields={"name": "y"})])
    (value, kind), = db.execute("SELECT updated_at, typeof(updated_at) FROM contacts WHERE id = 1")
    assert kind == "integer" and abs(value - datetime.now(UTC).timestamp()) < 5
    connector.close()


# -- the conformance suite over epoch change times ---------------------------------------------
EPOCH_BACKENDS = [("unix_milliseconds", sa.BigInteger(), True), ("unix_seconds", sa.Float(53), False)]


@pytest.fixture(params=EPOCH_BACKENDS, ids=["ms-bigint", "seconds-double"])
def conformance_crm(request, sql_db, tmp_path):
    fmt, stamp, whole = request.param
    return SqlBackend(sql_db, tmp_path / "state", updated_at_format=fmt, stamp=stamp, whole=whole)


class TestSqlEpochConformance(ConnectorConformance):
    pass


@pytest.mark.parametrize("fmt, stored, expected", [
    ("unix_milliseconds", 1772359200, 'reads as 1970-01-21 in milliseconds: if the column holds '
                                      'seconds, set updated_at_format = "unix_seconds"'),
    ("unix_seconds", 1772359200000, 'reads past the year 9999 in seconds: if the column holds '
                                    'milliseconds, set updated_at_format = "unix_milliseconds"'),
    ("unix_seconds", 1772359200, None),
    ("unix_milliseconds", 1772359200000, None),
])
def test_numbers_of_the_other_unit_are_a_note_of_syncd_check(sql_db, tmp_path, fmt, stored, expected):
    """The unit cannot be read from the type; the newest value tells a likely mistake, shown
    by `syncd check` (a note: one odd row must not stop the daemon)."""
    _table_with(sql_db, sa.BigInteger())
    with sql_db.engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO contacts (id, phone, name, updated_at) VALUES "
                             f"(1, '+380671111111', 'a', {stored}), (2, '+380672222222', 'b', 0)"))
    notes = [n for n in _connector(sql_db.url, tmp_path, fmt).capabilities.notes
             if "updated_at_format" in n]
    if expected is None:
        assert notes == []
    else:
        assert notes == [f'crm.options.updated_at_format: the newest "updated_at", {stored}, {expected}']
