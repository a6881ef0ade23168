"""The result of one record's failed write in a batch, for connectors that write record by
record: refused records fail alone, transient failures are retried by the outbox, and a
throttle stops the whole batch (every later request would be throttled too)."""

from __future__ import annotations

from syncd.errors import RetriableRemoteError, Throttled
from syncd.model import WriteResult

__all__ = ["failed_write"]


def failed_write(key: str, record_id: str | None, exc: Exception) -> WriteResult:
    """The WriteResult of a write that raised ``exc``: retriable when the remote failed
    transiently (:class:`RetriableRemoteError`), final otherwise. :class:`Throttled` is raised
    again instead: the batch stops and waits."""
    if isinstance(exc, Throttled):
        raise exc
    return WriteResult(key, False, record_id, str(exc), retriable=isinstance(exc, RetriableRemoteError))
