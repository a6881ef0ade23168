"""One contact write and one call insert, inside the caller's SAVEPOINT."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import sqlalchemy as sa

from syncd.model import Call, ContactWrite

from .phones import distinct_phones
from .schema import Schema, native_id

__all__ = ["RecordRefused", "write_contact", "insert_call", "update_call", "CALL_UPDATABLE"]

#: The calls-table columns a changed call rewrites (what Oki-Toki may fill in after hangup).
CALL_UPDATABLE = ("duration_s", "talk_s", "outcome", "agent", "recording_url")


class RecordRefused(Exception):
    """This record cannot be written as asked; retrying will not help."""


#: What drivers raise, outside the DB-API errors, for a value they cannot bind (sqlite3: an
#: integer beyond 64 bits; psycopg: NUL inside text; pymysql: a type it has no literal for).
_UNBINDABLE = (OverflowError, ValueError, TypeError)


def _execute(conn: sa.Connection, statement: Any) -> sa.CursorResult[Any]:
    """``conn.execute`` where a value the driver cannot bind refuses this record alone."""
    try:
        return conn.execute(statement)
    except _UNBINDABLE as exc:
        raise RecordRefused(f"the database driver cannot store a value of this record: "
                            f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _as_column_value(column: sa.Column[Any], value: Any) -> Any:
    """A number bound for a text column is stored as its decimal text (drivers bind Python
    integers as 64-bit at most, and a text column should read back what was written)."""
    if (isinstance(column.type, sa.String) and isinstance(value, (int, float))
            and not isinstance(value, bool)):
        return str(value)
    return value


def _contact_values(schema: Schema, dialect: str, w: ContactWrite) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in w.fields.items():
        column = schema.fields.get(name)
        if column is None:
            raise RecordRefused(f'field "{name}" is not a configured column of '
                                f'"{schema.contacts.name}"')
        if isinstance(value, (dict, list, tuple)) and not isinstance(column.type, sa.JSON):
            # Drivers differ (pymysql raises TypeError outside the DB-API errors): refuse here.
            raise RecordRefused(f'column "{column.name}" holds a single value, not '
                                f'{"a table" if isinstance(value, dict) else "an array"}')
        values[column.name] = _as_column_value(column, value)
    if w.phones is not None:
        phones = distinct_phones(w.phones)
        columns = schema.phones
        if len(phones) > len(columns):
            raise RecordRefused(f"{len(phones)} phones but only {len(columns)} phone column(s) "
                                f"({', '.join(c.name for c in columns)})")
        for i, column in enumerate(columns):
            values[column.name] = phones[i] if i < len(phones) else None
    values[schema.updated_at.name] = schema.change_now(dialect)
    return values


def write_contact(conn: sa.Connection, schema: Schema, dialect: str, w: ContactWrite) -> str:
    """Update ``w.id`` or insert a new row; returns the id. Sets updated_at to the DB's now."""
    table = schema.contacts
    values = _contact_values(schema, dialect, w)
    if w.id is not None:
        try:
            key = native_id(schema.id, w.id)
        except ValueError:
            raise RecordRefused(f"{w.id!r} is not a valid {schema.id.name}") from None
        result = _execute(conn, table.update().where(schema.id == key).values(values))
        if result.rowcount == 0:
            raise RecordRefused(f'no contact with {schema.id.name} = {w.id} in "{table.name}"')
        return w.id
    if not schema.can_create:
        raise RecordRefused(f'"{table.name}.{schema.id.name}" has no default or auto-increment: '
                            f"syncd cannot create contacts there")
    result = _execute(conn, table.insert().values(values))
    new_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    if new_id is None:
        raise RecordRefused("the database did not report the new contact's id")
    return str(new_id)


def _call_values(schema: Schema, dialect: str, call: Call) -> dict[str, Any]:
    calls = schema.calls
    assert calls is not None
    contact_id: Any = call.contact_id
    if contact_id is not None and "contact_id" in calls.c:
        try:
            contact_id = native_id(calls.c.contact_id, contact_id)
        except ValueError:
            raise RecordRefused(f"contact id {call.contact_id!r} does not fit "
                                f'"{calls.name}.contact_id"') from None
    started = call.started_at
    if started.tzinfo is not None:
        started = started.astimezone(UTC)
    if not getattr(getattr(calls.c.get("started_at"), "type", None), "timezone", False):
        started = started.replace(tzinfo=None)  # naive columns hold UTC
    candidates = {
        "session_id": call.session_id, "contact_id": contact_id,
        "direction": call.direction.value, "phone": call.phone, "started_at": started,
        "duration_s": call.duration_s, "talk_s": call.talk_s, "outcome": call.outcome.value,
        "agent": call.agent, "recording_url": call.recording_url,
    }
    values = {k: v for k, v in candidates.items() if k in calls.c}
    if "created_at" in calls.c:
        values["created_at"] = schema.now(calls.c.created_at, dialect)
    return values


def _existing_call(conn: sa.Connection, schema: Schema, session_id: str) -> str | None:
    calls = schema.calls
    assert calls is not None
    key = schema.calls_id if schema.calls_id is not None else calls.c.session_id
    found = conn.execute(sa.select(key).where(calls.c.session_id == session_id).limit(1)).first()
    return None if found is None else str(found[0])


def insert_call(conn: sa.Connection, schema: Schema, dialect: str, call: Call) -> str:
    """Insert ``call`` unless its session_id is there; returns the row's id either way.

    A concurrent insert of the same session_id loses on the unique constraint; the caller's
    savepoint rolls it back and the next batch answers the existing id.
    """
    existing = _existing_call(conn, schema, call.session_id)
    if existing is not None:
        return existing
    calls = schema.calls
    assert calls is not None
    result = _execute(conn, calls.insert().values(_call_values(schema, dialect, call)))
    if schema.calls_id is not None and result.inserted_primary_key:
        new_id = result.inserted_primary_key[0]
        if new_id is not None:
            return str(new_id)
    return _existing_call(conn, schema, call.session_id) or call.session_id


def update_call(conn: sa.Connection, schema: Schema, call: Call) -> str:
    """Rewrite the changeable columns of ``call``'s row; returns the row's id. Idempotent.
    RecordRefused when no row has this session_id (never logged, or deleted in the CRM)."""
    calls = schema.calls
    assert calls is not None
    values = {"duration_s": call.duration_s, "talk_s": call.talk_s, "outcome": call.outcome.value,
              "agent": call.agent, "recording_url": call.recording_url}
    values = {k: v for k, v in values.items() if k in calls.c}
    if values:
        _execute(conn, calls.update().where(calls.c.session_id == call.session_id).values(values))
    existing = _existing_call(conn, schema, call.session_id)
    if existing is None:
        raise RecordRefused(f'no row of "{calls.name}" has session_id {call.session_id} '
                            f"(deleted in the CRM?); the update is not applied")
    return existing
