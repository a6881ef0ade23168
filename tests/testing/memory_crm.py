"""An in-memory CRM, a connector for it, and its conformance backend, with switchable flaws.

Without flaws it passes the whole conformance suite; each flaw is a classic connector bug the
suite must catch (see test_suite_catches_flaws.py).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import phonenumbers
import structlog
from pydantic import BaseModel, ConfigDict

from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import AuthenticationError, Throttled
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.redact import register_secret

TOKEN = "mem-token-5d1c0a9e"
WRONG = "mem-wrong-77aa01"
log = structlog.get_logger("memory_crm")


def e164(value: str) -> str | None:
    try:
        return phonenumbers.format_number(phonenumbers.parse(value, None),
                                          phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return None


@dataclass
class Row:
    id: int
    fields: dict[str, Any]
    phones: list[str]
    updated_at: datetime


@dataclass
class MemoryCrm:
    rows: dict[int, Row] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    next_id: int = 1
    throttled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def tick(self) -> datetime:
        self.clock += timedelta(milliseconds=1)
        return self.clock


class MemoryConnector:
    name: ClassVar[str] = "memory"
    flaws: ClassVar[frozenset[str]] = frozenset()

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        token: str

    def __init__(self, options: Options, context: ConnectorContext, crm: MemoryCrm) -> None:
        self.options, self.context, self.crm = options, context, crm
        if "log_secret" not in self.flaws:
            register_secret(options.token)
        self.capabilities = Capabilities(calls_write=True, contacts_delete=True)

    def _check(self, operation: str) -> None:
        if "log_secret" in self.flaws:
            log.info("memory.request", token=self.options.token)
        if self.crm.throttled:
            raise Throttled("slow down", system="crm", operation=operation, status=429,
                            retry_after=timedelta(seconds=1))
        if self.options.token != TOKEN:
            if "auth_generic" in self.flaws:
                raise RuntimeError(f"401 for {self.options.token}")
            raise AuthenticationError("token refused", system="crm", operation=operation, status=401)

    def _contact(self, row: Row) -> Contact:
        return Contact(id=str(row.id), fields=dict(row.fields), phones=tuple(row.phones),
                       updated_at=row.updated_at)

    def health_check(self) -> None:
        self._check("health check")

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        self._check("changed contacts")
        rows = sorted(self.crm.rows.values(), key=lambda r: (r.updated_at, r.id))
        if after.updated_at is not None:
            last = int(after.last_id or 0)
            if "strict_timestamp" in self.flaws:
                rows = [r for r in rows if r.updated_at > after.updated_at]
            else:
                rows = [r for r in rows if (r.updated_at, r.id) > (after.updated_at, last)]
        page = [self._contact(r) for r in rows[:limit]]
        if not page:
            return Page([], after, False)
        return Page(page, Cursor(page[-1].updated_at, page[-1].id), len(rows) > limit)

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        self._check("fetch contacts")
        return [self._contact(self.crm.rows[int(i)]) for i in ids
                if i.isdigit() and int(i) in self.crm.rows]

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        self._check("find by phone")
        if "substring_phone" in self.flaws:
            nsn = phonenumbers.national_significant_number(phonenumbers.parse(phone_e164, None))
            return [self._contact(r) for r in self.crm.rows.values()
                    if any(nsn in "".join(ch for ch in p if ch.isdigit()) for p in r.phones)]
        return [self._contact(r) for r in self.crm.rows.values()
                if any(e164(p) == phone_e164 for p in r.phones)]

    def _write(self, w: ContactWrite) -> str:
        if w.id is None:
            if "create_twice" not in self.flaws and w.phones:
                same = [r for r in self.crm.rows.values()
                        if sorted(map(e164, r.phones)) == sorted(map(e164, w.phones))]
                if len(same) == 1:
                    return str(same[0].id)
            row = Row(self.crm.next_id, {}, [], self.crm.tick())
            self.crm.rows[row.id] = row
            self.crm.next_id += 1
        else:
            if "batch_raises" in self.flaws and (not w.id.isdigit() or int(w.id) not in self.crm.rows):
                raise RuntimeError(f"no row {w.id}")
            row = self.crm.rows.get(int(w.id)) if w.id.isdigit() else None
            if row is None:
                raise LookupError(f"no contact {w.id}")
        if "text_only" in self.flaws:   # a connector that assumes every value is text
            row.fields.update({k: v.strip() for k, v in w.fields.items()})
        if "echo_value" in self.flaws and any(len(str(v)) > 10_000 for v in w.fields.values()):
            raise LookupError(f"value too long: {w.fields!r}")
        row.fields.update(w.fields)
        if w.phones is not None:
            row.phones = (row.phones + list(w.phones)) if "phones_append" in self.flaws else list(w.phones)
        row.updated_at = self.crm.tick()
        return str(row.id)

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        self._check("delete contacts")
        for i in ids:
            self.crm.rows.pop(int(i), None)
        return [WriteResult(i, True, i) for i in ids]

    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        self._check("upsert contacts")
        out = []
        with self.crm.lock:
            for w in writes:
                if w.fields.get("name") == "REJECT-ME":
                    out.append(WriteResult(w.key, False, error="name refused"))
                    continue
                try:
                    out.append(WriteResult(w.key, True, self._write(w)))
                except LookupError as exc:
                    out.append(WriteResult(w.key, False, w.id, error=str(exc)))
        return out

    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        self._check("log calls")
        out = []
        for call in calls:
            known = [n for s, n in self.crm.calls if s == call.session_id]
            if known and "calls_twice" not in self.flaws:
                out.append(WriteResult(call.session_id, True, str(known[0])))
                continue
            self.crm.calls.append((call.session_id, len(self.crm.calls) + 1))
            out.append(WriteResult(call.session_id, True, str(len(self.crm.calls))))
        return out

    def close(self) -> None:
        pass


class MemoryBackend:
    """The conformance backend (see syncd.testing.contract.ConformanceCrm)."""

    text_field = "name"
    missing_id = "424242"
    secrets = (TOKEN, WRONG)
    max_phones = 3
    abilities = frozenset({"equal_timestamps", "count_activities", "throttle", "auth_failure",
                           "invalid_value", "delete", "raw_phone_formats"})

    def __init__(self, tmp_path, flaws: frozenset[str] = frozenset()) -> None:
        self.crm, self.tmp_path = MemoryCrm(), tmp_path
        self.cls = type("FlawedMemoryConnector", (MemoryConnector,), {"flaws": flaws})

    def connector(self, token: str = TOKEN) -> MemoryConnector:
        from syncd.testing.context import connector_context
        ctx = connector_context(self.tmp_path / "state", field_names=("name",))
        return self.cls(self.cls.Options(token=token), ctx, self.crm)

    def create_contact(self, fields, phones) -> str:
        with self.crm.lock:
            row = Row(self.crm.next_id, dict(fields), list(phones), self.crm.tick())
            self.crm.rows[row.id] = row
            self.crm.next_id += 1
            return str(row.id)

    def update_contact(self, contact_id, fields) -> None:
        row = self.crm.rows[int(contact_id)]
        row.fields.update(fields)
        row.updated_at = self.crm.tick()

    def delete_contact(self, contact_id) -> None:
        del self.crm.rows[int(contact_id)]

    def force_equal_updated_at(self, contact_ids) -> None:
        stamp = self.crm.tick()
        for i in contact_ids:
            self.crm.rows[int(i)].updated_at = stamp

    def count_activities(self, session_id: str) -> int:
        return sum(1 for s, _ in self.crm.calls if s == session_id)

    @contextlib.contextmanager
    def throttling(self):
        self.crm.throttled = True
        try:
            yield
        finally:
            self.crm.throttled = False

    def unauthorised_connector(self) -> MemoryConnector:
        return self.connector(WRONG)

    def invalid_fields(self):
        return {"name": "REJECT-ME"}
