"""The one backoff formula, shared by retries in place (syncd.http, see test_http) and outbox
rows (syncd.engine.outbox, see tests/engine/test_units)."""

from __future__ import annotations

from syncd.backoff import backoff_seconds


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_seconds(n, base=0.5, cap=3) for n in range(5)] == [0.5, 1, 2, 3, 3]


def test_jitter_only_lengthens_a_wait_by_at_most_its_share() -> None:
    waits = [backoff_seconds(3, base=1, cap=100, jitter=0.2) for _ in range(200)]
    assert all(8 <= w <= 8 * 1.2 for w in waits) and len(set(waits)) > 1

