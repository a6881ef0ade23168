"""Databases for the SQL connector's tests: a SQLite file, the local PostgreSQL and MariaDB.

PostgreSQL and MariaDB tests use a database ``syncd_sql_t<pid>`` and a login role
``syncd_sql_app<pid>`` with a password (a secret the tests hunt for in logs and errors), both
private to the test process (the throttling tests limit the role's connections, which must not
disturb a concurrent run) and dropped at the end of the session, or by a later session when
the process died. The tests are marked ``postgres`` / ``mariadb`` and skipped, with the
reason, when the server is unreachable.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIA_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
DB_NAME = f"syncd_sql_t{os.getpid()}"
APP_USER = f"syncd_sql_app{os.getpid()}"
APP_PASSWORD = "Sql-app-pw-7c41e9"        # deliberately distinctive: searched for in logs
WRONG_PASSWORD = "Wrong-pw-3f0aa2d1"


@dataclass
class SqlDatabase:
    """One empty database for a test; ``url`` logs in as the app user (with a password)."""

    dialect: str
    url: str
    admin_url: str | None = None
    secrets: tuple[str, ...] = ()
    bad_url: str | None = None              # credentials the server refuses
    engines: list[sa.Engine] = field(default_factory=list)

    def engine(self, admin: bool = False) -> sa.Engine:
        engine = sa.create_engine(self.admin_url if admin and self.admin_url else self.url)
        self.engines.append(engine)
        return engine

    def drop_all(self) -> None:
        engine = self.engine(admin=True)
        meta = sa.MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)

    @contextlib.contextmanager
    def throttled(self) -> Iterator[None]:
        """New connections of the app user are refused as 'too many connections'."""
        admin = sa.create_engine(_server_admin(self.dialect), isolation_level="AUTOCOMMIT")
        holder = None
        try:
            with admin.connect() as conn:
                if self.dialect == "postgres":
                    conn.execute(sa.text(f"ALTER ROLE {APP_USER} CONNECTION LIMIT 0"))
                else:
                    for host in ("%", "localhost", "127.0.0.1"):
                        conn.execute(sa.text(f"ALTER USER '{APP_USER}'@'{host}' "
                                             f"WITH MAX_USER_CONNECTIONS 1"))
            if self.dialect == "mariadb":  # take the one connection allowed
                try:
                    holder = sa.create_engine(self.url, poolclass=sa.pool.NullPool).connect()
                except sa.exc.OperationalError:
                    pass  # another connection of the user holds it already
            yield
        finally:
            if holder is not None:
                holder.close()
            with admin.connect() as conn:
                if self.dialect == "postgres":
                    conn.execute(sa.text(f"ALTER ROLE {APP_USER} CONNECTION LIMIT -1"))
                else:
                    for host in ("%", "localhost", "127.0.0.1"):
                        conn.execute(sa.text(f"ALTER USER '{APP_USER}'@'{host}' "
                                             f"WITH MAX_USER_CONNECTIONS 0"))
            admin.dispose()

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


def _server_admin(dialect: str) -> str:
    return PG_ADMIN if dialect == "postgres" else MARIA_ADMIN


def _reachable(url: str) -> str | None:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: skip, saying why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


_prepared: dict[str, str | None] = {}
_OURS = re.compile(r"^syncd_sql_(?:t|app)(\d+)$")


def _dead(name: str) -> bool:
    """Whether ``name`` is one of ours whose process is gone (or, at session end, ours)."""
    m = _OURS.match(name)
    if not m:
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _drop(conn: sa.Connection, dialect: str, *, everything_of: int | None = None) -> None:
    """Drop databases and roles of dead test processes (or of ``everything_of``'s pid)."""
    def doomed(name: str) -> bool:
        m = _OURS.match(name)
        return bool(m) and (int(m.group(1)) == everything_of or _dead(name))

    if dialect == "postgres":
        for (name,) in conn.execute(sa.text("SELECT datname FROM pg_database")).all():
            if doomed(name):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        for (name,) in conn.execute(sa.text("SELECT rolname FROM pg_roles")).all():
            if doomed(name):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
    else:
        for (name,) in conn.execute(sa.text("SHOW DATABASES")).all():
            if doomed(name):
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        for user, host in conn.execute(sa.text("SELECT User, Host FROM mysql.user")).all():
            if doomed(user):
                conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'{host}'"))


def _prepare(dialect: str) -> str | None:
    """Create the database and the app role once per session; the skip reason or None."""
    if dialect in _prepared:
        return _prepared[dialect]
    admin_url = _server_admin(dialect)
    problem = _reachable(admin_url)
    if problem is None:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            _drop(conn, dialect)
            if dialect == "postgres":
                conn.execute(sa.text(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'"))
                conn.execute(sa.text(f"CREATE DATABASE {DB_NAME} OWNER {APP_USER}"))
            else:
                conn.execute(sa.text(f"CREATE DATABASE {DB_NAME}"))
                for host in ("%", "localhost", "127.0.0.1"):
                    conn.execute(sa.text(f"CREATE USER '{APP_USER}'@'{host}' "
                                         f"IDENTIFIED BY '{APP_PASSWORD}'"))
                    conn.execute(sa.text(f"GRANT ALL ON {DB_NAME}.* TO '{APP_USER}'@'{host}'"))
        admin.dispose()
    _prepared[dialect] = problem
    return problem


@pytest.fixture(scope="session")
def _sql_servers() -> Iterator[None]:
    """Drops this session's databases and roles at its end."""
    yield
    for dialect, problem in _prepared.items():
        if problem is None:
            admin = sa.create_engine(_server_admin(dialect), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                _drop(conn, dialect, everything_of=os.getpid())
            admin.dispose()


def make_database(dialect: str, tmp_path: Path) -> SqlDatabase:
    if dialect == "sqlite":
        return SqlDatabase("sqlite", f"sqlite:///{tmp_path / 'crm.db'}")
    problem = _prepare(dialect)
    if problem:
        pytest.skip(f"{dialect} unreachable: {problem}")
    if dialect == "postgres":
        db = SqlDatabase(
            "postgres", f"postgresql+psycopg://{APP_USER}:{APP_PASSWORD}@127.0.0.1:5432/{DB_NAME}",
            admin_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}",
            secrets=(APP_PASSWORD, WRONG_PASSWORD),
            # trust authentication ignores passwords: an unknown role is what it refuses
            bad_url=f"postgresql+psycopg://syncd_sql_nobody:{WRONG_PASSWORD}@127.0.0.1:5432/{DB_NAME}")
    else:
        db = SqlDatabase(
            "mariadb", f"mysql+pymysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:3306/{DB_NAME}",
            admin_url=f"mysql+pymysql://root@127.0.0.1:3306/{DB_NAME}",
            secrets=(APP_PASSWORD, WRONG_PASSWORD),
            bad_url=f"mysql+pymysql://{APP_USER}:{WRONG_PASSWORD}@127.0.0.1:3306/{DB_NAME}")
    db.drop_all()
    return db


SQL_DIALECTS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=SQL_DIALECTS)
def sql_db(request, tmp_path, _sql_servers) -> Iterator[SqlDatabase]:
    """An empty database of each kind (tables dropped before the test)."""
    db = make_database(request.param, tmp_path)
    yield db
    db.dispose()


# -- a CRM's contacts table, and the conformance backend over it ---------------------------

def contacts_table(meta: sa.MetaData, name: str = "contacts", stamp: Any = None) -> sa.Table:
    """A contacts table as a company's CRM might have it (three phone columns, a CHECK);
    ``stamp``: the type of updated_at (default a date-time with microseconds)."""
    if stamp is None:
        stamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    return sa.Table(
        name, meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), sa.CheckConstraint("name <> 'REJECT-ME'"), nullable=False),
        sa.Column("email", sa.String(200)),
        sa.Column("status", sa.String(32), nullable=False, server_default="new"),
        sa.Column("phone", sa.String(64)),
        sa.Column("phone2", sa.String(64)),
        sa.Column("mobile", sa.String(64)),
        sa.Column("do_not_call", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", stamp, nullable=True, index=True),
    )


def utcnow_naive():
    from datetime import UTC, datetime
    return datetime.now(UTC).replace(tzinfo=None)


#: updated_at_format → units per second of an epoch change time
EPOCH_UNITS = {"unix_seconds": 1, "unix_milliseconds": 1000}


def epoch_of(at, fmt: str, whole: bool):
    """A naive-UTC or aware time → its unix epoch number in ``fmt``'s unit (an int when
    ``whole``, else a float holding the microseconds)."""
    from datetime import UTC, datetime, timedelta
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    units = EPOCH_UNITS[fmt]
    return micros * units // 1_000_000 if whole else micros * units / 1_000_000


class SqlBackend:
    """The conformance backend of the SQL connector (see syncd.testing.contract)."""

    text_field = "name"
    missing_id = "999999999"
    max_phones = 3
    do_not_call_field = "do_not_call"
    field_names = ("name", "email", "status")

    def __init__(self, db: SqlDatabase, state_dir: Path, updated_at_format: str = "datetime",
                 stamp: Any = None, whole: bool = False) -> None:
        """``updated_at_format`` other than "datetime": updated_at is an epoch number of type
        ``stamp`` (``whole``: integers only)."""
        self.db, self.state_dir = db, state_dir
        self.secrets = db.secrets
        self.updated_at_format, self.whole = updated_at_format, whole
        abilities = {"equal_timestamps", "count_activities", "activity_text", "invalid_value", "raw_phone_formats",
                     "delete"}
        if db.dialect != "sqlite":
            abilities |= {"throttle", "auth_failure"}
        else:   # SQLite stores anything: undecodable text, any spelling of a time
            abilities |= {"unreadable_record", "bad_change_time"}
            if updated_at_format == "datetime":
                abilities.add("time_spellings")
        abilities.add("null_change_time")
        self.abilities = frozenset(abilities)
        self.meta = sa.MetaData()
        self.table = contacts_table(self.meta, stamp=stamp)
        self.engine = db.engine()  # the app user owns its tables
        self.meta.create_all(self.engine)

    def connector(self, url: str | None = None):
        from connectors.sql import SqlConnector, SqlOptions
        from syncd.testing.context import connector_context

        ctx = connector_context(self.state_dir, field_names=self.field_names,
                                do_not_call_field=self.do_not_call_field)
        options = SqlOptions(url=url or self.db.url, phone_columns=["phone", "phone2", "mobile"],
                             create_calls_table=True, updated_at_format=self.updated_at_format)
        return SqlConnector(options, ctx)

    def stamp(self, at=None):
        """``at`` (default now, naive UTC) as updated_at stores it."""
        at = at if at is not None else utcnow_naive()
        if self.updated_at_format == "datetime":
            return at
        return epoch_of(at, self.updated_at_format, self.whole)

    def create_contact(self, fields, phones) -> str:
        values = dict(zip(("phone", "phone2", "mobile"), phones))
        with self.engine.begin() as conn:
            result = conn.execute(self.table.insert().values(
                **{"name": "someone", **fields}, **values, updated_at=self.stamp()))
        return str(result.inserted_primary_key[0])

    def update_contact(self, contact_id, fields) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.id == int(contact_id))
                         .values(**fields, updated_at=self.stamp()))

    def delete_contact(self, contact_id) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.id == int(contact_id)))

    def force_equal_updated_at(self, contact_ids) -> None:
        from datetime import timedelta
        with self.engine.begin() as conn:
            latest = conn.execute(sa.select(sa.func.max(self.table.c.updated_at))).scalar_one()
            if self.updated_at_format == "datetime":
                stamp = max(latest, utcnow_naive()) + timedelta(milliseconds=1)
            else:   # one step of the column later (a whole unit, or a millisecond)
                step = 1 if self.whole else EPOCH_UNITS[self.updated_at_format] / 1000
                stamp = max(latest if self.whole else float(latest), self.stamp()) + step
            conn.execute(self.table.update().where(self.table.c.id.in_([int(i) for i in contact_ids]))
                         .values(updated_at=stamp))

    def _raw(self, sql: str, *params) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(sql, params)

    def make_unreadable(self, contact_id) -> None:
        stamp = self.stamp()
        stamp = stamp.isoformat(sep=" ") if self.updated_at_format == "datetime" else stamp
        self._raw("UPDATE contacts SET name = CAST(X'4f6c65ff' AS TEXT), updated_at = ? WHERE id = ?",
                  stamp, int(contact_id))

    def set_change_time(self, contact_id, value) -> None:
        mark = "?" if self.db.dialect == "sqlite" else "%s"
        self._raw(f"UPDATE contacts SET updated_at = {mark} WHERE id = {mark}", value, int(contact_id))

    def respell_change_times(self, contact_ids) -> None:
        from datetime import UTC, timedelta, timezone
        base = utcnow_naive().replace(tzinfo=UTC) + timedelta(seconds=1)
        forms = [lambda t: t.strftime("%Y-%m-%d %H:%M:%S"), lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                 lambda t: t.astimezone(timezone(timedelta(hours=3))).isoformat(),
                 lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"), lambda t: t.replace(tzinfo=None).isoformat(sep=" "),
                 lambda t: t.astimezone(timezone(timedelta(hours=-5))).strftime("%Y-%m-%d %H:%M:%S-05:00")]
        for n, cid in enumerate(contact_ids):
            # distinct instants, each spelt differently; text order differs from time order
            at = base + timedelta(seconds=(n * 5) % len(contact_ids))
            self._raw("UPDATE contacts SET updated_at = ? WHERE id = ?", forms[n % len(forms)](at), int(cid))

    def count_activities(self, session_id: str) -> int:
        calls = sa.Table("calls", sa.MetaData(), autoload_with=self.engine)
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(calls)
                                .where(calls.c.session_id == session_id)).scalar_one()

    def activity_text(self, session_id: str) -> str:
        calls = sa.Table("calls", sa.MetaData(), autoload_with=self.engine)
        with self.engine.connect() as conn:
            return repr([dict(r._mapping) for r in conn.execute(
                sa.select(calls).where(calls.c.session_id == session_id))])

    def throttling(self):
        return self.db.throttled()

    def unauthorised_connector(self):
        return self.connector(self.db.bad_url)

    def invalid_fields(self):
        return {"name": "REJECT-ME"}


@pytest.fixture
def sql_backend(sql_db, tmp_path) -> Iterator[SqlBackend]:
    backend = SqlBackend(sql_db, tmp_path / "state")
    yield backend


@pytest.fixture
def sql_crm(sql_db) -> SqlDatabase:
    """An empty database of each kind holding the contacts table of :func:`contacts_table`."""
    contacts_table(sa.MetaData()).metadata.create_all(sql_db.engine())
    return sql_db


@pytest.fixture
def pg_db(tmp_path, _sql_servers) -> Iterator[SqlDatabase]:
    """An empty PostgreSQL database (for PostgreSQL-only behaviour; mark the test postgres)."""
    db = make_database("postgres", tmp_path)
    yield db
    db.dispose()
