"""A :class:`ConnectorContext` for tests: fast retries and a rate limiter of its own.

The daemon builds contexts wired to the process-wide limiter, the daily budget and the API
journal. Tests want the same seams without their waiting: :func:`connector_context` gives a
``remote(...)`` factory whose :class:`RemoteSystem` retries twice with millisecond backoff,
caps any ``Retry-After`` at 50 ms and uses a private :class:`RateLimiter` (so a 429 in one test
never blocks the next one). Requests it sent are kept in ``context.extra["journal"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import httpx

from ..connector import ConnectorContext
from ..http import RateLimiter, RemoteSystem, RetryPolicy
from ..model import JournalEntry

__all__ = ["FAST_RETRY", "connector_context"]

#: Two attempts, millisecond backoff, Retry-After capped at 50 ms.
FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01, max_retry_after=0.05,
                         jitter=0.0)


def connector_context(state_dir: Path, *, field_names: Iterable[str] = (),
                      do_not_call_field: str | None = None,
                      transport: httpx.BaseTransport | None = None,
                      retry: RetryPolicy = FAST_RETRY, system: str = "crm",
                      default_region: str = "UA",
                      extra: dict[str, Any] | None = None) -> ConnectorContext:
    """A context whose ``remote(base_url=..., secrets=[...], **overrides)`` builds a test-grade
    :class:`RemoteSystem` (see the module docstring). ``state_dir`` is created (mode 0700)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal: list[JournalEntry] = []

    def remote(**kwargs: Any) -> RemoteSystem:
        kwargs.setdefault("system", system)
        kwargs.setdefault("transport", transport)
        kwargs.setdefault("retry", retry)
        kwargs.setdefault("journal", journal.append)
        kwargs.setdefault("limiter", RateLimiter(None))
        kwargs.setdefault("sleep", lambda seconds: None)
        return RemoteSystem(**kwargs)

    return ConnectorContext(
        remote=remote, state_dir=state_dir, field_names=tuple(field_names),
        do_not_call_field=do_not_call_field, default_region=default_region,
        extra={"journal": journal, **(extra or {})},
    )
