"""Oki-Toki dates ⇄ timezone-aware UTC datetimes.

Oki-Toki writes dates as ``dd.mm.yyyy hh:mm:ss`` in the *account's* time zone (an IANA name
from ``[okitoki] timezone``), with no offset. Inside syncd every time is tz-aware UTC; these
functions are the only place the two meet.

Daylight-saving changes make local wall-clock time lossy, and we handle both cases on
purpose:

* **Ambiguous** local times (the repeated hour when clocks go back, e.g. 03:30 on the last
  Sunday of October in Europe/Kyiv) are read as the **earlier** instant by default
  (``fold=0``). A cursor built from an earlier instant re-reads a little (harmless: readers
  de-duplicate by id) where the later one could skip records. Pass ``prefer="later"`` to get
  the other instant.
* **Non-existent** local times (the skipped hour when clocks go forward, e.g. 03:30 on the last
  Sunday of March in Europe/Kyiv) never come from a real clock; if one arrives it is read as
  if the clock had not been moved yet, i.e. shifted forward by the gap (03:30 → 04:30 local,
  the same UTC instant as 03:30 in the old offset). Pass ``strict=True`` to refuse it instead.
* Writing (UTC → Oki-Toki) is always well defined; sub-second parts are dropped (floored),
  since the format has whole seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError

__all__ = [
    "OKITOKI_FORMAT",
    "account_zone",
    "to_okitoki",
    "from_okitoki",
    "parse_remote_time",
    "is_ambiguous",
    "is_nonexistent",
]

OKITOKI_FORMAT = "%d.%m.%Y %H:%M:%S"


@lru_cache(maxsize=32)
def account_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``"Europe/Kyiv"``); ConfigError naming the key if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f'okitoki.timezone: "{name}" is not an IANA time zone '
                          '(e.g. "Europe/Kyiv", "America/Mexico_City")') from None


def _zone(zone: str | tzinfo) -> tzinfo:
    return account_zone(zone) if isinstance(zone, str) else zone


def to_okitoki(moment: datetime, zone: str | tzinfo) -> str:
    """A tz-aware datetime → ``dd.mm.yyyy hh:mm:ss`` wall-clock time in ``zone``.

    Naive datetimes are refused (ValueError): their meaning would be a guess.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"refusing a naive datetime ({moment.isoformat()}): give it a time zone")
    return moment.astimezone(_zone(zone)).strftime(OKITOKI_FORMAT)


def _local_to_utc(naive: datetime, zone: tzinfo, prefer: str, strict: bool, text: str) -> datetime:
    if strict and is_nonexistent(naive, zone):
        raise ValueError(f'"{text}" does not exist in {zone} (clocks went forward)')
    fold = 1 if prefer == "later" and is_ambiguous(naive, zone) else 0
    return naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def from_okitoki(text: str, zone: str | tzinfo, *, prefer: Literal["earlier", "later"] = "earlier",
                 strict: bool = False) -> datetime:
    """``dd.mm.yyyy hh:mm:ss`` (wall clock in ``zone``) → tz-aware UTC datetime.

    See the module docstring for ambiguous and non-existent local times. ValueError if the
    text is not in the Oki-Toki format.
    """
    naive = datetime.strptime(text.strip(), OKITOKI_FORMAT)
    return _local_to_utc(naive, _zone(zone), prefer, strict, text)


def parse_remote_time(value: Any, zone: str | tzinfo) -> datetime | None:
    """A time as Oki-Toki may send it → tz-aware UTC (None for empty values).

    Accepts unix seconds (int, float or digit string; the call log uses these),
    ``dd.mm.yyyy hh:mm:ss`` in the account zone, and ISO 8601 (naive ISO is read in the
    account zone, like every offset-less Oki-Toki date). ValueError for anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(text), UTC)
    try:
        return from_okitoki(text, zone)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an Oki-Toki time: {value!r} (expected dd.mm.yyyy hh:mm:ss)") from None
    if parsed.tzinfo is None:
        return _local_to_utc(parsed, _zone(zone), "earlier", False, text)
    return parsed.astimezone(UTC)


def is_ambiguous(naive: datetime, zone: str | tzinfo) -> bool:
    """True when the wall-clock time ``naive`` happens twice in ``zone`` (clocks went back)."""
    z = _zone(zone)
    first = naive.replace(tzinfo=z, fold=0)
    second = naive.replace(tzinfo=z, fold=1)
    return first.utcoffset() != second.utcoffset() and not is_nonexistent(naive, z)


def is_nonexistent(naive: datetime, zone: str | tzinfo) -> bool:
    """True when the wall-clock time ``naive`` never happens in ``zone`` (clocks went forward)."""
    z = _zone(zone)
    local = naive.replace(tzinfo=z)
    back = local.astimezone(UTC).astimezone(z).replace(tzinfo=None)
    return back != naive.replace(tzinfo=None)
