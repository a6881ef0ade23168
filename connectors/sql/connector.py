"""``SqlConnector``: a CRM that lives in a SQL database (any SQLAlchemy URL).

Change detection is a keyset walk on (updated_at, id): the next page is
``updated_at > ts OR (updated_at = ts AND id > last_id)`` ordered by updated_at, id, times
compared as times whatever their spelling (:mod:`.changes`), ids in the column's own type.
Every write sets updated_at to the database's current UTC time (a date-time, or a unix epoch
number with ``updated_at_format``: :mod:`.epoch`), so the daemon reads its own writes back
(and recognises them as echoes by value). Rows whose updated_at is NULL or not a
time are not seen by change detection; :meth:`SqlConnector.untracked_contacts` reports them.
A row with a value that cannot be read is reported alone (``Page.unreadable``).
See ``docs/connectors/sql.md`` for the options, the calls table and the guarantees.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import sqlalchemy as sa
import structlog

from syncd.batches import chunks
from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import ConfigError
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, Untracked, WriteResult
from syncd.phones import region_of
from syncd.redact import register_secret

from .dberrors import driver_message, is_batch_fatal, remote_error, translated
from .changes import ChangeKey, change_key, untracked
from .epoch import EPOCH_FORMATS, EpochKey
from .options import SqlOptions
from .phones import distinct_phones, e164, like_pattern
from .rows import CHANGED, RowUnreadable, raw_column, read_row
from .schema import Schema, native_id, reflect_schema, to_utc
from .writes import CALL_UPDATABLE, RecordRefused, insert_call, update_call, write_contact

__all__ = ["SqlConnector"]

log = structlog.get_logger(__name__)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_utc(value).isoformat()  # type: ignore[union-attr]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# Re-read window: a transaction can commit a few seconds after the updated_at it wrote.
_BATCHES = dict(read_batch_size=500, write_batch_size=200, calls_batch_size=200,
                change_overlap=timedelta(seconds=10))


class _SchemaCapabilities:
    """On the class: what the connector can do with a suitable schema (offline `syncd check`).
    On an instance: what this database's schema allows (reflected on first use)."""

    def __get__(self, obj: "SqlConnector | None", owner: type) -> Capabilities:
        if obj is None:
            return Capabilities(calls_write=True, calls_update=True, do_not_call=True, contacts_delete=True,
                                **_BATCHES)
        s = obj.schema
        return Capabilities(contacts_read=True, contacts_write=True, contacts_create=s.can_create,
                            calls_write=s.calls is not None, do_not_call=s.do_not_call is not None,
                            calls_update=s.calls is not None and any(
                                c in s.calls.c for c in CALL_UPDATABLE),
                            max_phones=len(obj.options.phone_columns),
                            deletes="flag" if s.deleted is not None else "verify_only",
                            contacts_delete=True, notes=tuple(s.notes), **_BATCHES)


class SqlConnector:
    """Contacts in a table of any SQLAlchemy database; calls in a calls table (optional)."""

    name: ClassVar[str] = "sql"
    Options: ClassVar[type[SqlOptions]] = SqlOptions
    # Writes are local statements on one lock-guarded connection: nothing to gain from
    # several in flight ([crm] max_in_flight).
    default_max_in_flight: ClassVar[int] = 1

    def __init__(self, options: SqlOptions, context: ConnectorContext) -> None:
        self.options = options
        self.context = context
        url = options.engine_url()
        if isinstance(url.password, str):
            register_secret(url.password)
        self.dialect = url.get_backend_name()
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
        except ModuleNotFoundError as exc:
            raise ConfigError(f'crm.options.url: the database driver "{url.drivername}" is not '
                              f'installed ({exc.name} is missing)') from None
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"crm.options.url: {driver_message(exc)}") from None
        _session_settings(self.engine, self.dialect)
        self._schema: Schema | None = None
        self._lock = threading.Lock()
        self._created: dict[str, str] = {}   # ContactWrite.key → id (this process)

    # -- schema --------------------------------------------------------------------------
    @property
    def schema(self) -> Schema:
        """The reflected tables (reflected on first use; ConfigError names bad options)."""
        with self._lock:
            if self._schema is None:
                with translated("reflect schema"), self.engine.begin() as conn:
                    self._schema = reflect_schema(conn, self.options, self.context.field_names,
                                                  self.context.do_not_call_field)
                log.info("sql_schema_checked", table=self.options.contacts_table,
                         calls=self._schema.calls is not None)
            return self._schema

    capabilities = _SchemaCapabilities()

    def health_check(self) -> None:
        """SELECT 1, then check that the configured tables still exist."""
        with translated("health check"), self.engine.connect() as conn:
            conn.execute(sa.select(sa.literal(1))).scalar_one()
            schema = self.schema
            inspector = sa.inspect(conn)
            for table in (schema.contacts, schema.calls):
                if table is not None and not inspector.has_table(table.name):
                    raise ConfigError(f'crm.options: table "{table.name}" no longer exists')

    # -- reads ---------------------------------------------------------------------------
    @property
    def change_key(self) -> ChangeKey:
        s = self.schema
        per_second = EPOCH_FORMATS.get(s.updated_at_format)
        if per_second is not None:
            return EpochKey(s.updated_at, s.id, self.dialect, per_second)
        return change_key(s.updated_at, s.id, self.dialect)

    def _select(self) -> sa.Select:
        """The mapped columns (raw on SQLite, read per row by :mod:`.rows`) and the change time
        as the walk orders it (``_syncd_changed``; NULL when it is not a time)."""
        s, key = self.schema, self.change_key
        extra = [s.deleted] if s.deleted is not None else []
        cols = {c.name: c for c in [s.id, s.updated_at, *s.phones, *s.fields.values(), *extra]}
        changed = sa.case((key.valid(), key.expr), else_=sa.null()).label(CHANGED)
        return sa.select(*(raw_column(c, self.dialect) for c in cols.values()), changed)

    def _contact(self, row: sa.Row) -> Contact:
        """A row → Contact; RowUnreadable (with the reason) when a value cannot be read."""
        s = self.schema
        m = read_row(row._mapping, self.schema, self.dialect)
        phones = tuple(str(m[c.name]).strip() for c in s.phones
                       if m[c.name] is not None and str(m[c.name]).strip())
        fields = {name: _json(m[col.name]) for name, col in s.fields.items()}
        if s.do_not_call is not None and m[s.do_not_call.name] is not None:
            fields[s.do_not_call.name] = bool(m[s.do_not_call.name])  # MySQL BOOL is TINYINT
        changed = row._mapping[CHANGED]
        return Contact(id=str(m[s.id.name]), fields=fields, phones=phones,
                       updated_at=self.change_key.parse(changed) if changed is not None else None,
                       deleted=s.deleted is not None and s.is_deleted(m[s.deleted.name]))

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """Contacts with (change time, id) strictly after ``after`` (a cursor without last_id
        means every contact at or after its time, to the second), ascending, at most ``limit``.
        Change times compare as times whatever their spelling (see :mod:`.changes`); a row
        that cannot be read is listed in ``Page.unreadable`` and the walk goes past it."""
        s, key = self.schema, self.change_key
        last = None
        if after.updated_at is not None and after.last_id is not None:
            try:
                last = native_id(s.id, after.last_id)
            except ValueError:
                raise ConfigError(f"cursor id {after.last_id!r} is not a {s.id.type} value "
                                  f"of {s.contacts.name}.{s.id.name}") from None
        query = self._select().where(key.valid(), *key.after(after, last))
        with translated("changed contacts"), self.engine.connect() as conn:
            for upper in key.windows(conn, after.updated_at):
                q = query if upper is None else query.where(*key.before(upper))
                rows = conn.execute(q.order_by(key.expr, s.id).limit(limit + 1)).all()
                if len(rows) > limit:
                    break
        more = len(rows) > limit
        rows = rows[:limit]
        if not rows:
            return Page(contacts=[], next=after, more=False)
        contacts, unreadable = [], []
        for row in rows:
            try:
                contacts.append(self._contact(row))
            except RowUnreadable as exc:
                unreadable.append(exc.record(key.parse(row._mapping[CHANGED])))
        tail = rows[-1]._mapping
        nxt = Cursor(key.parse(tail[CHANGED]), str(tail[s.id.name]))
        return Page(contacts=contacts, next=nxt, more=more, unreadable=unreadable)

    def untracked_contacts(self, sample: int = 100) -> Untracked:
        """Rows change detection cannot see: a NULL change time, or one that is not a time."""
        with translated("untracked contacts"), self.engine.connect() as conn:
            return untracked(conn, self.schema.contacts, self.change_key, sample=sample)

    def _readable(self, rows: Any) -> Iterator[Contact]:
        for row in rows:
            try:
                yield self._contact(row)
            except RowUnreadable as exc:
                log.warning("sql_row_unreadable", record_id=exc.record_id, reason=exc.reason)

    def _native_ids(self, ids: list[str]) -> list[Any]:
        out = []
        for value in ids:
            try:
                out.append(native_id(self.schema.id, value))
            except ValueError:
                continue  # cannot name a row of this table
        return out

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        """The contacts with these ids (in the order asked); missing ids are absent."""
        s = self.schema
        wanted = self._native_ids(ids)
        found: dict[str, Contact] = {}
        with translated("fetch contacts"), self.engine.connect() as conn:
            for chunk in chunks(wanted, 500):
                for contact in self._readable(conn.execute(self._select().where(s.id.in_(chunk)))):
                    found[contact.id] = contact
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """Contacts holding this number in any phone column, compared in E.164 (stored values
        without a country code are read in the number's own country)."""
        return list(self._by_phone(phone_e164, None))

    def _by_phone(self, phone_e164: str, conn: sa.Connection | None) -> Iterator[Contact]:
        """Live contacts with the number (a soft-deleted row is never adopted by a create)."""
        s = self.schema
        wanted = e164(phone_e164)
        if wanted is None:
            return
        region = region_of(wanted)
        pattern = like_pattern(wanted)
        text_cols = [c if isinstance(c.type, sa.String) else sa.cast(c, sa.String) for c in s.phones]
        query = self._select().where(sa.or_(*(c.like(pattern) for c in text_cols))).order_by(s.id)
        opened = contextlib.nullcontext(conn) if conn is not None else self.engine.connect()
        with translated("find by phone"), opened as c:
            for contact in self._readable(c.execute(query)):
                if not contact.deleted and any(e164(p, region) == wanted for p in contact.phones):
                    yield contact

    # -- writes --------------------------------------------------------------------------
    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """One transaction per batch, one SAVEPOINT per record: a refused record (constraint,
        bad value, unknown id, too many phones) fails alone, not retriable. A create whose key
        this process already saw, or whose phones equal one existing contact's, answers that
        contact's id instead of inserting again (a retried create never duplicates)."""
        s = self.schema
        results: list[WriteResult] = []
        created: dict[str, str] = {}
        with translated("upsert contacts"), self.engine.begin() as conn:
            for w in writes:
                try:
                    with conn.begin_nested():
                        existing = self._created.get(w.key) or created.get(w.key)
                        if w.id is None and existing is None and w.phones:
                            existing = self._same_phones(conn, w.phones)
                        if w.id is None and existing is not None:
                            results.append(WriteResult(key=w.key, ok=True, id=existing))
                            continue
                        contact_id = write_contact(conn, s, self.dialect, w)
                    if w.id is None:
                        created[w.key] = contact_id
                    results.append(WriteResult(key=w.key, ok=True, id=contact_id))
                except RecordRefused as exc:
                    results.append(WriteResult(key=w.key, ok=False, id=w.id, error=str(exc)))
                except sa.exc.DBAPIError as exc:
                    if is_batch_fatal(exc):
                        raise remote_error(exc, "upsert contacts") from None
                    results.append(WriteResult(key=w.key, ok=False, id=w.id,
                                               error=f"refused by the database: {driver_message(exc)}"))
        self._created.update(created)
        failed = [r.key for r in results if not r.ok]
        if failed:
            log.warning("sql_contacts_refused", count=len(failed), keys=failed[:20])
        return results

    def _same_phones(self, conn: sa.Connection, phones: tuple[str, ...]) -> str | None:
        want = sorted(filter(None, (e164(p) for p in distinct_phones(phones))))
        if not want:
            return None
        matches = [c.id for c in self._by_phone(want[0], conn)
                   if sorted(filter(None, (e164(p, region_of(want[0])) for p in c.phones))) == want]
        return matches[0] if len(matches) == 1 else None

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        """Delete rows (``on_delete = "propagate"``): with ``deleted_column``, mark them deleted
        and touch updated_at; without, ``DELETE`` them. A row already gone is ok."""
        s = self.schema
        results: list[WriteResult] = []
        with translated("delete contacts"), self.engine.begin() as conn:
            for contact_id in ids:
                try:
                    key = native_id(s.id, contact_id)
                except ValueError:
                    results.append(WriteResult(key=contact_id, ok=False,
                                               error=f"{contact_id!r} is not a valid {s.id.name}"))
                    continue
                if s.deleted is not None:
                    stmt = s.contacts.update().where(s.id == key).values({
                        s.deleted.name: s.deleted_value(self.dialect),
                        s.updated_at.name: s.change_now(self.dialect)})
                else:
                    stmt = s.contacts.delete().where(s.id == key)
                try:
                    with conn.begin_nested():
                        conn.execute(stmt)
                    results.append(WriteResult(key=contact_id, ok=True, id=contact_id))
                except sa.exc.DBAPIError as exc:
                    if is_batch_fatal(exc):
                        raise remote_error(exc, "delete contacts") from None
                    results.append(WriteResult(key=contact_id, ok=False, id=contact_id,
                                               error=f"refused by the database: {driver_message(exc)}"))
        return results

    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """Insert each call once per ``session_id`` (a repeat answers the existing row's id,
        the calls table's primary key, or the session_id when it has none)."""
        s = self.schema
        if s.calls is None:
            reason = (f'calls table "{self.options.calls_table}" does not exist '
                      f'(set crm.options.create_calls_table = true)')
            return [WriteResult(key=c.session_id, ok=False, error=reason) for c in calls]
        return self._each_call(calls, "log calls",
                               lambda conn, call: insert_call(conn, s, self.dialect, call))

    def update_calls(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        """Rewrite the changeable columns (duration, talk time, outcome, agent, recording) of
        rows already logged, by ``session_id``; repeating it changes nothing more."""
        s = self.schema
        if s.calls is None:
            return [WriteResult(key=c.session_id, ok=False, error="no calls table") for c in calls]
        return self._each_call(calls, "update calls", lambda conn, call: update_call(conn, s, call))

    def _each_call(self, calls: list[Call], operation: str,
                   write: Callable[[sa.Connection, Call], str]) -> list[WriteResult]:
        """``write`` each call in its own savepoint of one transaction: a refused row fails
        alone (its WriteResult says why), an error that dooms the batch raises."""
        results: list[WriteResult] = []
        with translated(operation), self.engine.begin() as conn:
            for call in calls:
                try:
                    with conn.begin_nested():
                        call_id = write(conn, call)
                    results.append(WriteResult(key=call.session_id, ok=True, id=call_id))
                except RecordRefused as exc:
                    results.append(WriteResult(key=call.session_id, ok=False, error=str(exc)))
                except sa.exc.DBAPIError as exc:
                    if is_batch_fatal(exc):
                        raise remote_error(exc, operation) from None
                    results.append(WriteResult(key=call.session_id, ok=False,
                                               error=f"refused by the database: {driver_message(exc)}"))
        return results

    def close(self) -> None:
        self.engine.dispose()


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _session_settings(engine: sa.Engine, dialect: str) -> None:
    """UTC sessions (MySQL TIMESTAMP values), and real SAVEPOINTs on pysqlite."""
    if dialect in ("mysql", "mariadb"):
        @sa.event.listens_for(engine, "connect")
        def _utc(dbapi_conn, _record):  # pragma: no cover - trivial
            with dbapi_conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
    elif dialect == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _no_implicit_tx(dbapi_conn, _record):
            dbapi_conn.isolation_level = None
            # A TEXT value that is not UTF-8 must fail its row alone (quarantined), not the
            # whole query: keep its bytes as surrogate escapes; rows.py tells them apart.
            dbapi_conn.text_factory = _lenient_text

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN")
