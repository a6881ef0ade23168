"""Exponential backoff with jitter: the one formula behind every wait before a retry.

Used for retries in place (:mod:`syncd.http`, seconds to a few tens of seconds) and for outbox
rows tried again by a later push (:mod:`syncd.engine.outbox`, seconds up to an hour).
"""

from __future__ import annotations

import random

__all__ = ["backoff_seconds"]


def backoff_seconds(retry: int, *, base: float, cap: float, factor: float = 2.0,
                    jitter: float = 0.0) -> float:
    """Seconds to wait before retry number ``retry`` (0: the first retry).

    ``base · factor ** retry``, at most ``cap``, then stretched by a random share of up to
    ``jitter`` (0.2: up to 20 % longer), so clients that failed together do not come back
    together. The cap applies before the jitter, so a wait is at most ``cap · (1 + jitter)``.
    """
    raw = min(cap, base * factor ** max(0, retry))
    return raw * (1 + random.uniform(0, jitter)) if jitter else raw
