"""Durations at the edges: text such as ``"30s"``, ``"500ms"``, ``"10m"``, ``"3d"``, ``"1w"``
becomes a :class:`~datetime.timedelta` here, and code inside works with timedeltas only.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

__all__ = ["parse_duration", "MAX_DURATION"]

MAX_DURATION = timedelta(days=3650)   # longer is a typo, and overflows date arithmetic

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"30s"``/``"10m"``/``"3d"`` (or a timedelta) → timedelta; ValueError otherwise, also
    for a negative or unitless value and one longer than :data:`MAX_DURATION`."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
            if seconds > MAX_DURATION.total_seconds():
                raise ValueError(f'"{value}" is too long (at most "{MAX_DURATION.days}d")')
            return timedelta(seconds=seconds)
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    raise ValueError(f'{shown} is not a duration (use e.g. "30s", "10m", "3d")')
