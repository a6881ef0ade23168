"""Oki-Toki dates: ``dd.mm.yyyy hh:mm:ss`` in the account's time zone, to and from unix seconds.

The sandbox keeps every instant as integer unix seconds (UTC) and renders it in the company's
IANA time zone only at the API edge, with :mod:`zoneinfo`, so DST changes are handled by the
tz database. A local time that occurs twice (the hour repeated when DST ends) is read as its
first occurrence (``fold=0``); a local time that does not exist (skipped when DST starts) is
read the way :mod:`zoneinfo` maps it (as if the old offset still applied).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["FORMAT", "zone", "is_zone", "parse_local", "format_local", "parse_instant"]

FORMAT = "%d.%m.%Y %H:%M:%S"
_SHAPE = re.compile(r"^\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}$")


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The :class:`ZoneInfo` of ``name``; raises ``ValueError`` for an unknown zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


def parse_local(text: str, tz: str) -> int:
    """``dd.mm.yyyy hh:mm:ss`` in ``tz`` → unix seconds. Raises ``ValueError`` when malformed."""
    if not isinstance(text, str) or not _SHAPE.match(text.strip()):
        raise ValueError("expected dd.mm.yyyy hh:mm:ss")
    naive = datetime.strptime(text.strip(), FORMAT)
    return int(naive.replace(tzinfo=zone(tz)).timestamp())


def format_local(seconds: int | float | None, tz: str) -> str | None:
    """Unix seconds → ``dd.mm.yyyy hh:mm:ss`` in ``tz`` (None stays None)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), zone(tz)).strftime(FORMAT)


def parse_instant(value: object) -> int:
    """An admin-surface instant: unix seconds (number or digits) or ISO 8601 with an offset
    (a naive ISO time is taken as UTC) → unix seconds."""
    if isinstance(value, bool):
        raise ValueError("expected unix seconds or ISO 8601")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return int(float(text))
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"expected unix seconds or ISO 8601, got {value!r}") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp())
    raise ValueError(f"expected unix seconds or ISO 8601, got {value!r}")
