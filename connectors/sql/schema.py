"""The CRM's tables as SQLAlchemy Core objects, checked against the live database.

Every table and column name of the options and of ``[contacts.fields]`` is looked up by
reflection before any statement is built, so no SQL is ever made from unchecked text. The
contacts table is only read and written row by row; syncd never alters it. The calls table is
created (with :func:`calls_table_definition`) only when ``create_calls_table = true``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from syncd.errors import ConfigError

from .epoch import EPOCH_FORMATS, epoch_now, unit_doubt
from .options import SqlOptions

__all__ = ["Schema", "reflect_schema", "calls_table_definition", "CALL_COLUMNS", "to_utc",
           "native_id"]

#: The documented columns of the calls table (``session_id`` is required, the rest optional).
CALL_COLUMNS = ("session_id", "contact_id", "direction", "phone", "started_at", "duration_s",
                "talk_s", "outcome", "agent", "recording_url", "created_at")


@dataclass
class Schema:
    contacts: sa.Table
    id: sa.Column
    updated_at: sa.Column
    phones: list[sa.Column]
    fields: dict[str, sa.Column]            # CRM field name (= column name) → column
    do_not_call: sa.Column | None
    calls: sa.Table | None
    calls_id: sa.Column | None              # the calls table's primary key, if one column
    can_create: bool
    notes: list[str] = field(default_factory=list)
    deleted: sa.Column | None = None        # the soft-delete column, if configured
    updated_at_format: str = "datetime"     # crm.options.updated_at_format

    def is_deleted(self, value: Any) -> bool:
        """A value of the soft-delete column: set (date-time) or true (boolean/integer)."""
        return value is not None and (isinstance(self.deleted.type, sa.DateTime) or bool(value))

    def deleted_value(self, dialect: str) -> Any:
        """What marks a row deleted: the database's now for a date-time column, else true."""
        assert self.deleted is not None
        if isinstance(self.deleted.type, sa.DateTime):
            return self.now(self.deleted, dialect)
        return True if isinstance(self.deleted.type, sa.Boolean) else 1

    def now(self, column: sa.Column, dialect: str) -> Any:
        """The database's current time for ``column`` (UTC; naive columns get naive UTC)."""
        aware = bool(getattr(column.type, "timezone", False))
        if dialect == "postgresql":
            stamp = sa.func.clock_timestamp()
            return stamp if aware else sa.func.timezone("UTC", stamp)
        if dialect in ("mysql", "mariadb"):
            return sa.func.utc_timestamp(6)
        if dialect == "sqlite":  # SQLite's own clock is the host's; keep microseconds
            now = datetime.now(UTC)
            return now if aware else now.replace(tzinfo=None)
        return sa.func.current_timestamp()

    def change_now(self, dialect: str) -> Any:
        """The database's current time as updated_at holds it (a date-time or epoch number)."""
        per_second = EPOCH_FORMATS.get(self.updated_at_format)
        if per_second is None:
            return self.now(self.updated_at, dialect)
        return epoch_now(self.updated_at, dialect, per_second)

    def ts_param(self, value: datetime) -> datetime:
        """A cursor time as the updated_at column compares it (naive UTC for naive columns)."""
        value = value.astimezone(UTC)
        return value if getattr(self.updated_at.type, "timezone", False) else value.replace(tzinfo=None)


def to_utc(value: Any) -> datetime | None:
    """A value read from a date-time column → aware UTC (naive values are taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def native_id(column: sa.Column, value: str) -> Any:
    """An id string → the column's Python type; ValueError when it cannot be one."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return value
    if kind is int:
        return int(value)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    return value


def calls_table_definition(metadata: sa.MetaData, name: str, contact_id: sa.Column) -> sa.Table:
    """The calls table syncd creates on request. ``contact_id`` copies the contacts id type."""
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False, unique=True),
        sa.Column("contact_id", contact_id.type.copy(), nullable=True, index=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),          # UTC
        sa.Column("duration_s", sa.Integer, nullable=False, server_default="0"),
        sa.Column("talk_s", sa.Integer, nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("agent", sa.String(200)),
        sa.Column("recording_url", sa.String(1000)),
        sa.Column("created_at", sa.DateTime, nullable=False,
                  server_default=sa.func.current_timestamp()),           # UTC
    )


def _column(table: sa.Table, name: str, option: str, problems: list[str]) -> sa.Column | None:
    if name in table.c:
        return table.c[name]
    known = ", ".join(table.c.keys())
    problems.append(f'{option}: table "{table.name}" has no column "{name}" (columns: {known})')
    return None


def _can_create(id_col: sa.Column) -> bool:
    if id_col.server_default is not None or getattr(id_col, "identity", None) is not None:
        return True
    try:
        integer = id_col.type.python_type is int
    except NotImplementedError:
        integer = False
    return bool(integer and id_col.primary_key and id_col.autoincrement in (True, "auto"))


def _number(column: sa.Column) -> bool:
    return isinstance(column.type, (sa.Integer, sa.Numeric, sa.Float))


def _change_time_problems(column: sa.Column, fmt: str, dialect: str) -> list[str]:
    """Whether the updated_at column's declared type fits ``updated_at_format``."""
    kind = f'column "{column.name}" is {column.type}'
    if fmt == "datetime":
        if isinstance(column.type, sa.DateTime):
            return []
        if _number(column):
            return [f'crm.options.updated_at_format: {kind}, a number, not a date-time column; '
                    f'if it holds unix times set updated_at_format = "unix_seconds" '
                    f'(or "unix_milliseconds")']
        return [f"crm.options.updated_at_column: {kind}, not a date-time column"]
    if _number(column):
        return []
    # SQLite has no date-time type: a DATETIME column holds whatever the application wrote
    if dialect == "sqlite" and isinstance(column.type, sa.DateTime):
        return []
    if isinstance(column.type, sa.DateTime):
        return [f'crm.options.updated_at_format: "{fmt}" but {kind}, a date-time column; '
                f'remove updated_at_format (or set "datetime")']
    return [f'crm.options.updated_at_format: "{fmt}" needs a number column (integer, decimal '
            f'or real); {kind}']


def reflect_schema(conn: sa.Connection, options: SqlOptions, field_names: tuple[str, ...],
                   do_not_call_field: str | None) -> Schema:
    """Reflect and check every configured name; ConfigError lists all problems at once.

    Creates the calls table when it is missing and ``create_calls_table`` is set.
    """
    inspector = sa.inspect(conn)
    tables = inspector.get_table_names()
    meta = sa.MetaData()
    if options.contacts_table not in tables:
        raise ConfigError(f'crm.options.contacts_table: table "{options.contacts_table}" does not '
                          f'exist in the database (tables: {", ".join(tables) or "none"})')
    contacts = sa.Table(options.contacts_table, meta, autoload_with=conn)
    problems: list[str] = []
    id_col = _column(contacts, options.id_column, "crm.options.id_column", problems)
    updated = _column(contacts, options.updated_at_column, "crm.options.updated_at_column", problems)
    if updated is not None:
        problems += _change_time_problems(updated, options.updated_at_format, conn.dialect.name)
    phones = [_column(contacts, n, "crm.options.phone_columns", problems) for n in options.phone_columns]
    fields = {n: _column(contacts, n, "contacts.fields", problems) for n in field_names}
    dnc = (_column(contacts, do_not_call_field, "do_not_call.crm_field", problems)
           if do_not_call_field else None)
    deleted = (_column(contacts, options.deleted_column, "crm.options.deleted_column", problems)
               if options.deleted_column else None)
    if deleted is not None and not isinstance(deleted.type, (sa.Boolean, sa.Integer, sa.DateTime)):
        problems.append(f'crm.options.deleted_column: column "{deleted.name}" is {deleted.type}; '
                        f"a soft-delete column is boolean, integer or date-time")
    if problems:
        raise ConfigError(problems)
    assert id_col is not None and updated is not None
    if dnc is not None:
        fields[dnc.name] = dnc
    notes: list[str] = []
    if options.updated_at_format in EPOCH_FORMATS:
        doubt = unit_doubt(conn, updated, conn.dialect.name, options.updated_at_format)
        notes += [doubt] if doubt else []
    calls, calls_id = None, None
    if options.calls_table:
        if options.calls_table in tables:
            calls = sa.Table(options.calls_table, meta, autoload_with=conn)
        elif options.create_calls_table:
            calls = calls_table_definition(meta, options.calls_table, id_col)
            calls.create(conn)
        else:
            notes.append(f'calls table "{options.calls_table}" does not exist: calls are not '
                         f'written (set crm.options.create_calls_table = true to create it)')
    if calls is not None:
        if "session_id" not in calls.c:
            raise ConfigError(f'crm.options.calls_table: table "{calls.name}" has no '
                              f'"session_id" column (see docs/connectors/sql.md for the columns)')
        absent = [c for c in CALL_COLUMNS if c not in calls.c]
        if absent:
            notes.append(f'calls table "{calls.name}" lacks {", ".join(absent)}: not written')
        pk = list(calls.primary_key.columns)
        calls_id = pk[0] if len(pk) == 1 else None
    return Schema(contacts=contacts, id=id_col, updated_at=updated,
                  phones=[p for p in phones if p is not None],
                  fields={k: v for k, v in fields.items() if v is not None}, do_not_call=dnc,
                  calls=calls, calls_id=calls_id, can_create=_can_create(id_col), notes=notes,
                  deleted=deleted, updated_at_format=options.updated_at_format)
