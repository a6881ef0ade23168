"""Change detection for the SQL connector: a keyset walk on (change time, id) that compares
times in the database's own terms, whatever the spelling of the stored values.

PostgreSQL and MariaDB store a date-time column as a date-time, so the column is compared
with a date-time parameter directly (an index on it serves the walk).

SQLite has no date-time type: the column holds text spelt however the application wrote it
(``2026-01-01 10:00:00``, ``...T10:00:00.123456``, ``...+02:00``, ``...Z``), and text order is
not time order across spellings. The walk therefore orders by SQLite's own reading of the value
(``strftime('%Y-%m-%d %H:%M:%f', updated_at)``: UTC, milliseconds), so every spelling that
SQLite understands compares by the time it means. That key has no index, so each query is
also bounded by a range on the raw text, which an index on the column serves: every value
SQLite reads as a time T starts with a date within two days of T (zones are at most 14 hours
away). A long first walk widens that range step by step instead of scanning the whole table
per page.

Change times stored as unix epoch numbers have their own key, :class:`.epoch.EpochKey`.

Rows whose change time is missing or is not a time are outside the walk; :func:`untracked`
counts them (and names the unreadable ones) so the operator learns of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from syncd.model import Cursor, Unreadable, Untracked

__all__ = ["ChangeKey", "change_key", "untracked", "readable_text", "widening", "MARGIN"]

SQLITE_FMT = "%Y-%m-%d %H:%M:%f"          # SQLite's canonical form: UTC, milliseconds
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
MARGIN = timedelta(days=2)               # a spelt date is within 14 h of the time it means
_FIRST_WINDOW = timedelta(days=1)
_MAX_WIDENINGS = 12                      # 1 day x 4^12: past the year 9999 from anywhere
# A date-time server column outside this range is not a change time we can walk by
# (MariaDB zero dates, PostgreSQL's infinity).
_FLOOR, _CEILING = datetime(1900, 1, 1), datetime(9999, 1, 1)


def readable_text(value: str) -> tuple[str, str | None]:
    """A text read with surrogate escapes → (printable text, reason if it held bytes that are
    not UTF-8). The printable form shows such bytes as ``\\xNN``."""
    try:
        value.encode("utf-8")
        return value, None
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return shown, "holds bytes that are not UTF-8"


@dataclass
class ChangeKey:
    """How one database compares change times. ``expr`` is the walk's order key."""

    column: sa.Column
    pk: sa.Column
    dialect: str

    @property
    def sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def expr(self) -> Any:
        if self.sqlite:
            return sa.func.strftime(SQLITE_FMT, self.column, type_=sa.String)
        return self.column

    def valid(self) -> Any:
        """Rows whose change time the walk can order."""
        if not self.sqlite:
            return sa.and_(self.column >= self._param(_FLOOR), self.column < self._param(_CEILING))
        raw = sa.type_coerce(self.column, sa.String)
        key = self.expr
        return sa.and_(raw.op("GLOB")(_DATE_GLOB), sa.func.substr(raw, 1, 4) != "0000",
                       key.is_not(None),
                       # 2026-02-30 reads as itself; through julianday it becomes 03-02
                       key == sa.func.strftime(SQLITE_FMT, sa.func.julianday(self.column)))

    def hint(self, value: Any) -> str:
        """What to add to "is not a time" for a value found in the column."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return " (if the column holds unix times, set crm.options.updated_at_format)"
        return ""

    def _param(self, value: datetime) -> Any:
        if getattr(self.column.type, "timezone", False):
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        else:
            value = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return sa.literal(value, self.column.type)

    def bound(self, at: datetime) -> Any:
        """``at`` as the order key compares it (SQLite: canonical text to the millisecond)."""
        if not self.sqlite:
            return self._param(at)
        at = at.astimezone(UTC)
        text = at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"
        return sa.literal(text, sa.String)

    def parse(self, value: Any) -> datetime:
        """An order-key value read from a row → aware UTC."""
        if isinstance(value, str):
            value = datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f")
        if not isinstance(value, datetime):
            raise ValueError(f"{value!r} is not a time")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def after(self, cursor: Cursor, last: Any) -> list[Any]:
        """Conditions of "strictly after ``cursor``" (at or after its time without an id)."""
        if cursor.updated_at is None:
            return []
        at = cursor.updated_at
        conds = []
        if self.sqlite:   # the index range that contains every row at or after ``at``
            conds.append(sa.type_coerce(self.column, sa.String) >= _day(at - MARGIN))
        if last is None:
            # Whole seconds: a column of second resolution rounds or truncates its values,
            # so "at or after" a fraction of a second must include the whole second.
            conds.append(self.expr >= self.bound(at.replace(microsecond=0)))
        else:
            t = self.bound(at)
            # = (key > t) OR (key = t AND pk > last), spelt so an index range serves key >= t
            conds += [self.expr >= t, sa.or_(self.expr > t, self.pk > last)]
        return conds

    def before(self, at: datetime) -> list[Any]:
        """Conditions of "earlier than ``at``" (the upper end of a SQLite window)."""
        return [sa.type_coerce(self.column, sa.String) < _day(at + MARGIN), self.expr < self.bound(at)]

    def windows(self, conn: sa.Connection, start: datetime | None) -> list[datetime | None]:
        """Upper ends of ever wider windows for one page (None: no upper end). Only SQLite
        needs them; on a table whose newest value is near ``start`` there is just one."""
        if not self.sqlite:
            return [None]
        raw = sa.type_coerce(self.column, sa.String)
        top = conn.execute(sa.select(sa.func.max(raw)).where(raw < ":")).scalar()  # digits < ':'
        first = start
        if first is None:
            first = _date_of(conn.execute(sa.select(sa.func.min(raw)).where(raw >= "0")).scalar())
        last = _date_of(top)
        if first is None or last is None:
            return [None]
        return widening(first, last + MARGIN * 2)


def widening(first: datetime, ceiling: datetime) -> list[datetime | None]:
    """Upper ends of windows from ``first``, each four times wider, below ``ceiling`` (the
    newest time of the table and a margin), then None (no upper end)."""
    out: list[datetime | None] = []
    width = _FIRST_WINDOW
    for _ in range(_MAX_WIDENINGS):
        hi = first + width
        if hi >= ceiling:
            break
        out.append(hi)
        width *= 4
    return out + [None]


def _day(at: datetime) -> str:
    """The date text every spelling of a time on that day begins with."""
    at = at.astimezone(UTC) if at.tzinfo else at
    try:
        return at.strftime("%Y-%m-%d")
    except ValueError:
        return "0000-00-00"


def _date_of(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def change_key(column: sa.Column, pk: sa.Column, dialect: str) -> ChangeKey:
    return ChangeKey(column, pk, dialect)


def untracked(conn: sa.Connection, table: sa.Table, key: ChangeKey, *, sample: int = 100) -> Untracked:
    """Rows change detection cannot see: NULL change times (counted) and change times that
    are not times (counted, the first ``sample`` named with the value found)."""
    col, pk = key.column, key.pk
    null = conn.execute(sa.select(sa.func.count()).select_from(table).where(col.is_(None))).scalar() or 0
    bad = sa.and_(col.is_not(None), sa.not_(key.valid()))
    total = conn.execute(sa.select(sa.func.count()).select_from(table).where(bad)).scalar() or 0
    found: list[Unreadable] = []
    if total:
        raw = sa.type_coerce(col, sa.types.NullType()) if key.sqlite else sa.cast(col, sa.String)
        for rid, value in conn.execute(sa.select(pk, raw.label("v")).where(bad).order_by(pk).limit(sample)):
            shown = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
            shown = readable_text(shown)[0][:100]
            found.append(Unreadable(id=str(rid), reason=f'{col.name} {shown!r} is not a time'
                                    + key.hint(value),
                                    raw={"id": str(rid), col.name: shown}))
    return Untracked(null=int(null), unreadable=found, unreadable_total=int(total))
