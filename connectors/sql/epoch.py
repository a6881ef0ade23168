"""Change times stored as unix epoch numbers (``updated_at_format = "unix_seconds"`` or
``"unix_milliseconds"``): the walk's key, and the database's now in the column's unit.

syncd keeps every time as an aware UTC datetime; the conversion to the column's number happens
at the query boundary, so the column is compared with a number and an index on it serves.

An **exact** column (PostgreSQL/MariaDB integers, and decimals whose scale the microsecond
holds: at most 6 digits for seconds, 3 for milliseconds) is its own key: every value is a
microsecond-exact time and back, so the keyset compares the column itself.

Any other column (``REAL``/``DOUBLE``, decimals of finer or unknown scale, and every SQLite
column, whose values are integers or reals whatever its declared type) has values between
microseconds, and two values in one microsecond would read as one time. Its key is therefore
the value in whole microseconds (``CAST(col * 1e6 AS BIGINT)``, milliseconds ``* 1e3``), which
the cursor holds exactly; each query is also bounded by a range on the raw column (an index
serves it) and, like SQLite text, a long walk widens an upper window step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from .changes import ChangeKey, widening

__all__ = ["EpochKey", "EPOCH_FORMATS", "epoch_now", "integral", "unit_doubt"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: updated_at_format → units per second
EPOCH_FORMATS = {"unix_seconds": 1, "unix_milliseconds": 1000}
_US = timedelta(microseconds=1)
# Like date-time columns: a time outside 1900..9999 is not a change time (9e18 µs is near
# the 64-bit limit of the microsecond key).
_FLOOR, _CEILING = datetime(1900, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    return (at.astimezone(UTC) - EPOCH) // _US


def _from_units(value: Any, per_second: int) -> datetime:
    """A number of ``1/per_second`` seconds since 1970 → aware UTC, cut to the microsecond."""
    return EPOCH + timedelta(microseconds=int(Decimal(value) * 1_000_000 / per_second))


def integral(column: sa.Column) -> bool:
    """Whether the column holds whole numbers only (its writes are whole units)."""
    kind = column.type
    if isinstance(kind, sa.Integer):
        return True
    return (isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float)
            and kind.scale == 0)


def _quantum(column: sa.Column, dialect: str, per_second: int) -> Decimal | None:
    """The step between values of an exact column, in units; None: not exact."""
    if dialect == "sqlite":   # any column may hold a real
        return None
    if integral(column):
        return Decimal(1)
    kind = column.type
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.scale is not None:
        if kind.scale <= (6 if per_second == 1 else 3):
            return Decimal(1).scaleb(-kind.scale)
    return None


@dataclass
class EpochKey(ChangeKey):
    """How an epoch-number column compares as a change time (see the module docstring)."""

    per_second: int = 1
    quantum: Decimal | None = field(init=False)
    raw: Any = field(init=False)          # the column compared as a number (no CAST)

    def __post_init__(self) -> None:
        self.quantum = _quantum(self.column, self.dialect, self.per_second)
        self.raw = sa.type_coerce(self.column, sa.Numeric(asdecimal=False))

    @property
    def exact(self) -> bool:
        return self.quantum is not None

    @property
    def expr(self) -> Any:
        if self.exact:
            return self.column
        scaled = self.raw * (1_000_000 // self.per_second)
        if self.dialect != "sqlite":   # SQLite's CAST truncates; elsewhere it may round
            scaled = sa.func.floor(scaled)
        return sa.cast(scaled, sa.BigInteger)

    # -- times and numbers ---------------------------------------------------------------
    def _units(self, at: datetime) -> Decimal:
        """``at`` in the column's unit, exactly."""
        return Decimal(_micros(at)) * self.per_second / 1_000_000

    def _key(self, at: datetime) -> Decimal | int:
        """``at`` as the key compares it (units for an exact column, else microseconds)."""
        return self._units(at) if self.exact else _micros(at)

    def _on_grid(self, value: Decimal | int) -> bool:
        return not self.exact or value % self.quantum == 0   # type: ignore[operator]

    def _literal(self, value: Decimal | int) -> Any:
        if not self.exact:
            return sa.literal(int(value), sa.BigInteger)
        if self.quantum == 1:
            return sa.literal(int(value), sa.BigInteger)
        return sa.literal(value, self.column.type)

    def _step(self, value: Decimal | int, up: bool) -> Decimal | int:
        """An exact key rounded onto the column's grid (up or down)."""
        if not self.exact or self._on_grid(value):
            return value
        steps = Decimal(value) / self.quantum     # type: ignore[operator]
        whole = math.ceil(steps) if up else math.floor(steps)
        return whole * self.quantum               # type: ignore[operator]

    def _at_least(self, at: datetime) -> list[Any]:
        key = self._key(at)
        conds = [self.expr >= self._literal(self._step(key, up=True))]
        if not self.exact:   # the index range holding every row at or after ``at``
            conds.insert(0, self.raw >= sa.literal(math.floor(self._units(at)) - 1, sa.BigInteger))
        return conds

    # -- the ChangeKey interface ---------------------------------------------------------
    def valid(self) -> Any:
        """Rows whose value is a number that reads as a time between 1900 and 9999."""
        lo = sa.literal(int(self._units(_FLOOR)), sa.BigInteger)
        hi = sa.literal(int(self._units(_CEILING)), sa.BigInteger)
        conds = [self.raw >= lo, self.raw < hi]
        if self.sqlite:   # SQLite stores text too; numbers sort before it
            conds.insert(0, sa.func.typeof(self.column).in_(("integer", "real")))
        return sa.and_(*conds)

    def hint(self, value: Any) -> str:
        return ""

    def bound(self, at: datetime) -> Any:
        return self._literal(self._step(self._key(at), up=True))

    def parse(self, value: Any) -> datetime:
        """A key value read from a row → aware UTC (exact to the microsecond)."""
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError(f"{value!r} is not a time")
        return _from_units(value, self.per_second if self.exact else 1_000_000)

    def after(self, cursor: Any, last: Any) -> list[Any]:
        if cursor.updated_at is None:
            return []
        at = cursor.updated_at
        if last is None:
            return self._at_least(at.replace(microsecond=0))
        key = self._key(at)
        if not self._on_grid(key):   # no row has this time: strictly after it
            return self._at_least(at)
        t = self._literal(key)
        return [*self._at_least(at), sa.or_(self.expr > t, self.pk > last)]

    def before(self, at: datetime) -> list[Any]:
        conds = [self.expr < self.bound(at)]
        if not self.exact:
            conds.insert(0, self.raw < sa.literal(math.ceil(self._units(at)) + 1, sa.BigInteger))
        return conds

    def windows(self, conn: sa.Connection, start: datetime | None) -> list[datetime | None]:
        """Upper ends of ever wider windows (only a key the index cannot order needs them)."""
        if self.exact:
            return [None]
        valid = self.valid()
        top = conn.execute(sa.select(sa.func.max(self.raw)).where(valid)).scalar()
        first = start
        if first is None:
            low = conn.execute(sa.select(sa.func.min(self.raw)).where(valid)).scalar()
            first = self._time(low)
        last = self._time(top)
        if first is None or last is None:
            return [None]
        return widening(first, last + timedelta(seconds=2))

    def _time(self, value: Any) -> datetime | None:
        return None if value is None else _from_units(value, self.per_second)


def epoch_now(column: sa.Column, dialect: str, per_second: int) -> Any:
    """The database's current time in the column's unit (whole units for an integer column):
    PostgreSQL ``clock_timestamp()``, MariaDB/MySQL ``NOW(6)`` (the session is UTC), SQLite
    the host's clock."""
    whole = integral(column) or (dialect == "sqlite" and isinstance(column.type, sa.DateTime))
    if dialect == "sqlite":
        micros = _micros(datetime.now(UTC))
        if whole:
            return sa.literal(micros * per_second // 1_000_000, sa.BigInteger)
        return sa.literal(micros * per_second / 1_000_000, sa.Float)
    if dialect == "postgresql":
        value = sa.extract("epoch", sa.func.clock_timestamp())
    elif dialect in ("mysql", "mariadb"):
        value = sa.func.unix_timestamp(sa.func.now(6))
    else:
        value = sa.extract("epoch", sa.func.current_timestamp())
    if per_second != 1:
        value = value * per_second
    return sa.func.floor(value) if whole else value


# Newest values that suggest the other unit: milliseconds before 1973-03-03, seconds after 5138.
_SUSPECT = {"unix_milliseconds": ("before", 10**11, "unix_seconds"),
            "unix_seconds": ("after", 10**11, "unix_milliseconds")}


def unit_doubt(conn: sa.Connection, column: sa.Column, dialect: str, fmt: str) -> str | None:
    """A note when the newest positive number in the column reads as an implausible time in
    ``fmt`` (seconds taken for milliseconds read as January 1970, and the reverse as years
    past 5138). Data, not type: a note for ``syncd check``, not an error."""
    side, limit, other = _SUSPECT[fmt]
    raw = sa.type_coerce(column, sa.Numeric(asdecimal=False))
    numbers = [raw > 0]
    if dialect == "sqlite":
        numbers.append(sa.func.typeof(column).in_(("integer", "real")))
    top = conn.execute(sa.select(sa.func.max(raw)).where(*numbers)).scalar()
    if top is None or (top < limit if side == "after" else top >= limit):
        return None
    when = _from_units(top, EPOCH_FORMATS[fmt]) if top < 253402300800 * EPOCH_FORMATS[fmt] else None
    reads = f"reads as {when:%Y-%m-%d}" if when else "reads past the year 9999"
    shown = f"{top:.6f}".rstrip("0").rstrip(".")
    return (f'crm.options.updated_at_format: the newest "{column.name}", {shown}, {reads} in '
            f'{fmt.removeprefix("unix_")}: if the column holds {other.removeprefix("unix_")}, '
            f'set updated_at_format = "{other}"')
