"""Reading one row of the contacts table so that a bad value fails that row alone.

PostgreSQL and MariaDB check types and encodings when a value is stored, so their values are
read through SQLAlchemy's own types. SQLite stores whatever it is given (text in a date
column, a blob in a text column, bytes that are not UTF-8): its columns are read raw and
converted here, row by row, and a value that cannot be converted raises
:class:`RowUnreadable` naming the column, so the walk quarantines that row and goes on.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

import sqlalchemy as sa

from syncd.model import Unreadable

from .changes import readable_text
from .schema import Schema

__all__ = ["CHANGED", "RowUnreadable", "raw_column", "read_row"]

CHANGED = "_syncd_changed"   # the label of the change time as the walk orders it


class RowUnreadable(Exception):
    def __init__(self, record_id: str | None, reason: str, raw: dict[str, Any]) -> None:
        super().__init__(reason)
        self.record_id, self.reason, self.raw = record_id, reason, raw

    def record(self, updated_at: datetime | None) -> Unreadable:
        return Unreadable(id=self.record_id, reason=self.reason, raw=self.raw, updated_at=updated_at)


def raw_column(column: sa.Column, dialect: str) -> Any:
    """The column as selected: raw (no result processing) on SQLite."""
    if dialect != "sqlite":
        return column
    return sa.type_coerce(column, sa.types.NullType()).label(column.name)


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("is not a time")
    return datetime.fromisoformat(value.strip())


def _date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("is not a date")
    return date.fromisoformat(value.strip()[:10])


def _decimal(value: Any) -> Decimal:
    if isinstance(value, (bytes, bool)):
        raise ValueError("is not a number")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError("is not a number") from None


def _boolean(value: Any) -> bool:
    if value in (0, 1, "0", "1", True, False):
        return bool(int(value))
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("is not a boolean (0 or 1)")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _converter(column: sa.Column) -> Callable[[Any], Any] | None:
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return _datetime
    if isinstance(kind, sa.Date):
        return _date
    if isinstance(kind, sa.Boolean):
        return _boolean
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and getattr(kind, "asdecimal", False):
        return _decimal
    if isinstance(kind, sa.JSON):
        return _json
    return None


def _shown(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")[:200]
    if isinstance(value, str):
        return readable_text(value)[0][:200]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def read_row(mapping: Mapping[str, Any], schema: Schema, dialect: str) -> dict[str, Any]:
    """The row's mapped columns as Python values; RowUnreadable when one cannot be read."""
    # The change time is read by the walk's own key (CHANGED), not here: a row whose
    # updated_at is not a time is still a contact fetch and find must see.
    extra = [schema.deleted] if getattr(schema, "deleted", None) is not None else []
    columns = {c.name: c for c in [schema.id, *schema.phones, *schema.fields.values(), *extra]}
    out: dict[str, Any] = {}
    record_id = mapping.get(schema.id.name)
    for name, column in columns.items():
        value = mapping[name]
        try:
            if isinstance(value, str):
                value, bad = readable_text(value)
                if bad:
                    raise ValueError(bad)
            if value is not None and dialect == "sqlite":
                if isinstance(value, bytes) and not isinstance(column.type, sa.LargeBinary):
                    raise ValueError("holds bytes, not text")
                convert = _converter(column)
                if convert is not None:
                    value = convert(value)
        except (ValueError, TypeError) as exc:
            raw = {n: _shown(mapping[n]) for n in columns}
            rid = readable_text(str(record_id))[0] if record_id is not None else None
            raise RowUnreadable(rid, f'column "{name}" {exc}', raw) from None
        out[name] = value
    return out
