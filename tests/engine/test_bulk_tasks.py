"""Task creates go out in full bulk imports: each dialer's tasks 1000 a request (the minimum
the endpoint allows), however the dialers' creates are interleaved in the outbox."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

from syncd.engine.outbox import Lane
from syncd.engine.push import BULK_TASKS, _claim_tasks
from syncd.engine.reconcile import add_key, add_key_like
from syncd.store import outbox as ob

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _creates(n101: int, n102: int) -> list[dict]:
    """Creates of two dialers, interleaved 3:1 as contacts of both statuses arrive."""
    ops, i, left = [], 0, {"101": n101, "102": n102}
    while any(left.values()):
        i += 1
        dialer = "102" if i % 4 == 0 and left["102"] else ("101" if left["101"] else "102")
        left[dialer] -= 1
        ops.append({"lane": int(Lane.TASKS), "target": "okitoki", "operation": "add_task",
                    "link_id": i, "idem_key": add_key(i, dialer, 1),
                    "payload": {"dialer_id": dialer, "generation": 1, "phones": [f"+38050{i:07d}"]}})
    return ops


def test_each_dialers_creates_are_claimed_in_whole_bulk_imports(store):
    with store.begin() as conn:
        ob.enqueue(conn, _creates(1500, 500), now=NOW)
    ctx = SimpleNamespace(store=store, instance_id="me", now=lambda: NOW)
    imports = []
    while rows := _claim_tasks(ctx, Lane.TASKS, 100):
        per_dialer = Counter(r.payload["dialer_id"] for r in rows)
        imports += [-(-n // BULK_TASKS) for n in per_dialer.values()]
        with store.begin() as conn:
            ob.mark_done(conn, [r.id for r in rows], now=NOW)
    assert sum(imports) == 3            # ceil(1500 / 1000) + ceil(500 / 1000)


def test_the_dialer_pattern_matches_only_that_dialers_creates():
    import re

    def matches(pattern: str, key: str) -> bool:
        rx = re.escape(pattern).replace("%", ".*")
        return re.fullmatch(rx, key) is not None

    assert matches(add_key_like("101"), add_key(7, "101", 2))
    assert not matches(add_key_like("101"), add_key(101, "7", 2))
    assert not matches(add_key_like("10"), add_key(7, "101", 2))
    assert not matches(add_key_like("1"), add_key(1, "2", 1))
