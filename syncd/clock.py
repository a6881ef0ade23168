"""The wall clock: timezone-aware UTC datetimes, and the type of a clock tests replace.

Components that read the time take a ``clock: Clock`` argument defaulting to :func:`utcnow`,
so a test can pass a fixed or stepping clock instead of patching ``datetime``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)
