"""An in-memory CRM connector (the protocol of syncd.connector) for engine tests.

Server timestamps come from a strictly increasing clock, so the changed-since walk is exact.
``refuse`` holds names the "CRM" refuses (a non-retriable per-record error).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel

from syncd.connector import Capabilities
from syncd.errors import InvalidRecord
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.phones import normalize


class FakeOptions(BaseModel):
    pass


@dataclass
class Row:
    id: str
    fields: dict[str, Any]
    phones: tuple[str, ...]
    updated_at: datetime


class FakeCrm:
    name: ClassVar[str] = "fake"
    Options: ClassVar[type[BaseModel]] = FakeOptions

    def __init__(self, *, read_batch: int = 50) -> None:
        self.capabilities = Capabilities(calls_write=True, calls_update=True, do_not_call=True,
                                         read_batch_size=read_batch, write_batch_size=20,
                                         calls_batch_size=20, contacts_delete=True)
        self.rows: dict[str, Row] = {}
        self.calls: dict[str, Call] = {}
        self.call_sends: list[str] = []     # every session id log_calls was given
        self.call_updates: list[str] = []   # session ids, once per update that changed something
        self.refuse: set[str] = set()
        self.writes = 0            # contact writes (create or update) the engine made
        self.deleted: list[str] = []   # ids delete_contacts removed
        self.requests = 0
        self.injected: list[Contact] = []   # raw records served once, verbatim, by the next walk
        self._ids = itertools.count(1)
        self._t = datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def _tick(self) -> datetime:
        self._t += timedelta(milliseconds=1)
        return self._t

    # -- test helpers ---------------------------------------------------------------------
    def add(self, phones: tuple[str, ...] = (), **fields: Any) -> str:
        with self._lock:
            cid = str(next(self._ids))
            self.rows[cid] = Row(cid, dict(fields), tuple(phones), self._tick())
            return cid

    def edit(self, cid: str, phones: tuple[str, ...] | None = None, **fields: Any) -> None:
        with self._lock:
            row = self.rows[cid]
            row.fields.update(fields)
            if phones is not None:
                row.phones = tuple(phones)
            row.updated_at = self._tick()

    def _contact(self, row: Row) -> Contact:
        return Contact(row.id, dict(row.fields), row.phones, row.updated_at)

    # -- the protocol ---------------------------------------------------------------------
    def health_check(self) -> None:
        self.requests += 1

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        self.requests += 1
        with self._lock:
            key = lambda r: (r.updated_at, int(r.id))  # noqa: E731
            rows = sorted(self.rows.values(), key=key)
            if after.updated_at is not None:
                mark = (after.updated_at, int(after.last_id or 0))
                rows = [r for r in rows if key(r) > mark]
            page = rows[:limit]
        nxt = Cursor(page[-1].updated_at, page[-1].id) if page else after
        extra, self.injected = self.injected, []
        return Page(extra + [self._contact(r) for r in page], nxt, more=len(rows) > limit)

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        self.requests += 1
        return [self._contact(self.rows[i]) for i in ids if i in self.rows]

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        self.requests += 1
        out = []
        for row in self.rows.values():
            for p in row.phones:
                try:
                    if normalize(p, "UA") == phone_e164:
                        out.append(self._contact(row))
                        break
                except InvalidRecord:
                    pass
        return out

    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        self.requests += 1
        results = []
        with self._lock:
            for w in writes:
                if str(w.fields.get("name")) in self.refuse:
                    results.append(WriteResult(w.key, False, error="name refused by the CRM"))
                    continue
                self.writes += 1
                if w.id is None:
                    cid = str(next(self._ids))
                    self.rows[cid] = Row(cid, dict(w.fields), tuple(w.phones or ()), self._tick())
                else:
                    row = self.rows.get(w.id)
                    if row is None:
                        results.append(WriteResult(w.key, False, error="no such contact"))
                        continue
                    row.fields.update(w.fields)
                    if w.phones is not None:
                        row.phones = tuple(w.phones)
                    row.updated_at = self._tick()
                    cid = w.id
                results.append(WriteResult(w.key, True, id=cid))
        return results

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        self.requests += 1
        with self._lock:
            for i in ids:
                if self.rows.pop(i, None) is not None:
                    self.deleted.append(i)
            return [WriteResult(i, True, id=i) for i in ids]   # already gone: deleted too

    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        self.requests += 1
        out = []
        for c in calls:
            self.call_sends.append(c.session_id)
            self.calls.setdefault(c.session_id, c)
            out.append(WriteResult(c.session_id, True, id=f"act-{c.session_id}"))
        return out

    def update_calls(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        self.requests += 1
        out = []
        for c in calls:
            if c.session_id not in self.calls or activity_ids.get(c.session_id) != f"act-{c.session_id}":
                out.append(WriteResult(c.session_id, False, error="no such activity"))
                continue
            if self.calls[c.session_id] != c:
                self.calls[c.session_id] = c
                self.call_updates.append(c.session_id)
            out.append(WriteResult(c.session_id, True, id=f"act-{c.session_id}"))
        return out

    def close(self) -> None:
        pass
