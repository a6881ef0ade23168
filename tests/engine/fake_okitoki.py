"""An in-process stand-in for OkitokiClient (same methods), for engine speed tests only.

Behaviour tests use the real sandbox over loopback; this one exists so a test can measure the
engine's own cost without HTTP in the way. Server time has second resolution, like Oki-Toki.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any, Iterator

from syncd.model import Call, Contact, ContactWrite, TaskSpec


class FakeOkitoki:
    def __init__(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, TaskSpec] = {}
        self.lists: dict[str, set[str]] = {}
        self.calls: list[Call] = []
        self.requests = 0
        self._ids = itertools.count(1)

    def _now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    def health_check(self) -> None:
        self.requests += 1

    def upsert_contact(self, write: ContactWrite) -> str:
        self.requests += 1
        cid = write.id or str(next(self._ids))
        row = self.contacts.setdefault(cid, {"fields": {}, "phones": ()})
        row["fields"].update(write.fields)
        if write.phones is not None:
            row["phones"] = tuple(write.phones)
        row["updated_at"] = self._now()
        return cid

    def export_contacts(self, updated_from: datetime, updated_to: datetime | None = None,
                        per_page: int = 1000, *, on_unreadable=None) -> Iterator[Contact]:
        rows = sorted(((r["updated_at"], int(i), i) for i, r in self.contacts.items()
                       if r["updated_at"] >= updated_from.replace(microsecond=0)))
        for n, (_, _, cid) in enumerate(rows):
            if n % per_page == 0:
                self.requests += 1
            r = self.contacts[cid]
            yield Contact(cid, dict(r["fields"]), r["phones"], r["updated_at"])

    def create_task(self, spec: TaskSpec) -> str:
        self.requests += 1
        tid = str(next(self._ids))
        self.tasks[tid] = spec
        return tid

    def add_tasks(self, dialer_id: str, specs: list[TaskSpec]) -> list[str]:
        self.requests += 1
        out = []
        for spec in specs:
            tid = str(next(self._ids))
            self.tasks[tid] = spec
            out.append(tid)
        return out

    def remove_task(self, dialer_id: str, *, task_id: str | None = None, phones=None) -> int:
        self.requests += 1
        return 1 if self.tasks.pop(task_id or "", None) else 0

    def list_add(self, list_id: str, values: list[str]) -> int:
        self.requests += 1
        self.lists.setdefault(list_id, set()).update(values)
        return len(values)

    def list_remove(self, list_id: str, values: list[str]) -> int:
        self.requests += 1
        self.lists.setdefault(list_id, set()).difference_update(values)
        return len(values)

    def call_log(self, date_from: datetime, date_to: datetime, per_page: int = 1000, *,
                 on_unreadable=None) -> Iterator[Call]:
        self.requests += 1
        return iter([c for c in self.calls if date_from <= c.started_at <= date_to])

    def call(self, session_id: str) -> Call | None:
        self.requests += 1
        return next((c for c in self.calls if c.session_id == session_id), None)

    def close(self) -> None:
        pass
