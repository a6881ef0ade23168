"""Times as a CRM's server states them: ISO 8601 text in records, its clock in ``Date``.

A connector that filters "changed since" by the server's own clock (so a skewed local clock
neither skips nor repeats changes) reads it from each answer with :func:`server_time`.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import httpx

__all__ = ["parse_time", "server_time", "ServerClock"]


def parse_time(text: str) -> datetime:
    """ISO 8601 text (``2024-05-01T10:00:00Z`` or with an offset) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def server_time(response: httpx.Response) -> datetime:
    """The server's clock from the ``Date`` header (the local clock when there is none)."""
    try:
        return email.utils.parsedate_to_datetime(response.headers["date"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError, IndexError):
        return datetime.now(UTC)


class ServerClock:
    """The server's time as of its latest answer (the local clock before the first one)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def read(self, response: httpx.Response) -> httpx.Response:
        """Take the time of ``response`` (returned unchanged, for chaining)."""
        self.now = server_time(response)
        return response
