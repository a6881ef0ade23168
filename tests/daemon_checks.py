"""What daemon tests look at on the sandbox side, shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

#: the sandbox operations that write to Oki-Toki (a quiet cycle sends none of them)
OKITOKI_WRITES = ("contacts/add-update", "imports/tasks/add", "dialers/create_task",
                  "dialers/delete_task", "lists/add", "lists/remove", "calls/data/add")


def okitoki_writes(sb: Any) -> dict[str, int]:
    """Requests per writing operation the sandbox has received so far."""
    ops = sb.requests(limit=1)["by_operation"]
    return {op: ops.get(op, 0) for op in OKITOKI_WRITES}


def sandbox_contact(sb: Any, name: str) -> dict[str, Any]:
    return next(c for c in sb.state()["contacts"] if c["name"] == name)


def pending_tasks(sb: Any, digits: str, dialer_id: int = 101) -> list[dict[str, Any]]:
    """The dialer's pending tasks whose numbers contain ``digits``."""
    return [t for t in sb.state()["tasks"] if t["status"] == "pending" and t["dialer_id"] == dialer_id
            and any(digits in p for p in t["phones"])]


def cycle(syncer: Any, times: int = 1) -> None:
    """Run full cycles; any error a cycle reports fails the test."""
    for _ in range(times):
        report = syncer.cycle()
        assert not report.errors, report.errors
