"""BottleCRM (``django-crm`` 1.35) through its REST API (``/api/...``, personal access token).

Contacts are ``/api/contacts/`` records (UUID ids, ONE ``phone`` each, ``phone_e164``
normalised by the server, ``do_not_call``, ``updated_at`` with microseconds, UTC). Calls are
``/api/interactions/`` of kind ``call`` on the contact; the subject ends with
``[syncd-session <id>]`` and is looked up on the contact before creating, so logging a call
twice leaves one interaction.

Change detection: the list has no updated-since filter, so every poll is a full paged scan
(newest created first) keeping, in bounded memory, the ``limit`` smallest (updated_at, id)
after the cursor: see :mod:`connectors._bottlecrm_scan` for the algorithm and its cost,
``ceil(total / scan_page_size)`` requests per page of changes.

Creates are idempotent by ``ContactWrite.key``: the key is written to a small SQLite journal
in the connector's ``state_dir`` *before* the POST and the new id after it; a key found
there without an id (the POST's outcome was lost) is looked up in BottleCRM by the
contact's phone/email/name and its ``source_ref`` (``syncd:<key>``) before creating again.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import httpx
import structlog
from pydantic import BaseModel, Field, SecretStr

from connectors._secrets import OneSecretOptions
from connectors._write_results import failed_write
from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import (AuthenticationError, ConfigError, InvalidRecord, InvalidRequest,
                          NotFound, PermissionDenied, RetriableRemoteError)
from syncd.http import RemoteSystem, error_for_status
from syncd.model import (Call, CallDirection, CallOutcome, Contact, ContactWrite, Cursor, Page,
                         WriteResult)
from syncd.phones import normalize_or_none, region_of

from ._bottlecrm_scan import parse_time, scan_changed

__all__ = ["BottleCrmConnector", "BottleCrmOptions"]

log = structlog.get_logger()

KEY_PREFIX = "syncd:"
INTERACTIONS_MAX = 200  # the server's MAX_LIMIT for /api/interactions/
OUTCOMES = {CallOutcome.ANSWERED: "connected", CallOutcome.NO_ANSWER: "no_answer",
            CallOutcome.BUSY: "busy", CallOutcome.FAILED: ""}


class BottleCrmOptions(OneSecretOptions):
    """``[crm.options]`` for ``connector = "bottlecrm"``."""

    SECRET = "token"

    url: str = Field(description="base URL of BottleCRM, e.g. https://crm.example.com")
    token: SecretStr | None = None            # personal access token, bcrm_pat_...
    token_file: Path | None = None
    scan_page_size: int = Field(500, ge=10, le=2000)   # contacts per request of the scan
    settle: float = Field(1.0, ge=0, le=60)   # seconds; see _bottlecrm_scan (horizon)


# What an HTTP error status most likely means here (added to the error's message).
_HINTS = {
    401: "the personal access token is wrong, revoked or expired",
    403: "the token's profile lacks a right (or its scopes exclude contacts/interactions)",
    404: "check options url (the API lives under /api/)",
}


def check_response(response: httpx.Response, operation: str) -> None:
    """BottleCRM's error bodies: ``{"error": true, "errors": {...}}`` (400) and ``{"detail"}``.

    A wrong or revoked token answers 403 "Organization context is required": that is an
    authentication failure, not a missing right.
    """
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    detail = str(body.get("detail", "")).lower()
    if response.status_code == 403 and "organization context" in detail:
        raise AuthenticationError("the token was refused (Organization context is required)",
                                  system="crm", operation=operation, status=403,
                                  hint=_HINTS[401])
    errors = body.get("errors")
    if isinstance(errors, dict):
        fields = {k: [str(x) for x in (v if isinstance(v, list) else [v])]
                  for k, v in errors.items()}
        raise error_for_status(response, system="crm", operation=operation,
                               message="refused", field_errors=fields, hints=_HINTS)
    if body.get("detail"):
        raise error_for_status(response, system="crm", operation=operation,
                               message=str(body["detail"]), hints=_HINTS)


def e164(value: str | None, region: str | None = None) -> str | None:
    """``value`` in E.164 by the engine's own rules (:mod:`syncd.phones`), so this connector
    matches the contacts the engine would; None when empty or not a valid number."""
    return normalize_or_none(value, region or "ZZ")


class CreateJournal:
    """Keys of creates sent, with the id once known (SQLite in the connector's state dir)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS created (key TEXT PRIMARY KEY, id TEXT)")

    def get(self, key: str) -> tuple[bool, str | None]:
        row = self.db.execute("SELECT id FROM created WHERE key = ?", (key,)).fetchone()
        return (row is not None, row[0] if row else None)

    def intend(self, key: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO created (key) VALUES (?)", (key,))

    def forget(self, key: str) -> None:
        """The create was refused outright: nothing exists under this key."""
        self.db.execute("DELETE FROM created WHERE key = ? AND id IS NULL", (key,))

    def done(self, key: str, contact_id: str) -> None:
        self.db.execute("UPDATE created SET id = ? WHERE key = ?", (contact_id, key))

    def close(self) -> None:
        self.db.close()


class BottleCrmConnector:
    """The ``bottlecrm`` connector (see the module docstring)."""

    name: ClassVar[str] = "bottlecrm"
    Options: ClassVar[type[BaseModel]] = BottleCrmOptions
    # What `syncd check` knows before connecting; an instance refines it (page sizes, notes).
    capabilities: Capabilities = Capabilities(calls_write=True, calls_update=True, do_not_call=True,
                                              max_phones=1, contacts_delete=True)

    def __init__(self, options: BottleCrmOptions, context: ConnectorContext) -> None:
        self.options = options
        self.context = context
        token = options.secret()
        self.remote: RemoteSystem = context.remote(
            base_url=f"{options.url.rstrip('/')}/api/", secrets=[token],
            headers={"Authorization": f"Bearer {token}"}, check=check_response, hints=_HINTS)
        dnc = [context.do_not_call_field] if context.do_not_call_field else []
        self.fields = tuple(dict.fromkeys([*context.field_names, *dnc]))
        self.creates = CreateJournal(Path(context.state_dir) / "bottlecrm-creates.sqlite3")
        self.capabilities = Capabilities(
            contacts_read=True, contacts_write=True, contacts_create=True, calls_write=True,
            calls_update=True,
            # Large pages: each page of changes costs a full scan; memory stays O(page).
            do_not_call=True, read_batch_size=1000, max_phones=1, deletes="verify_only",
            contacts_delete=True,
            notes=("no updated-since filter: each page of changes costs a full scan of "
                   f"ceil(total contacts / {options.scan_page_size}) list requests",
                   "one phone per contact: extra phones are not stored",
                   f"changes younger than {options.settle:g} s wait for the next poll"))

    # -- reading -------------------------------------------------------------------------
    def _contact(self, row: dict[str, Any]) -> Contact:
        fields = {f: _virtual(row, f) for f in self.fields}
        return Contact(id=str(row["id"]), fields=fields,
                       phones=(row["phone"],) if row.get("phone") else (),
                       updated_at=parse_time(row.get("updated_at")))

    def _list(self, params: dict[str, Any], operation: str) -> httpx.Response:
        return self.remote.request("GET", "contacts/", params=params, operation=operation)

    def health_check(self) -> None:
        """One list request of one contact (a wrong token is explained as such); when the
        CRM holds a contact, mapped fields it does not have are a ConfigError (BottleCRM
        silently ignores unknown fields on writes)."""
        rows = self._list({"limit": 1, "offset": 0}, "health check").json().get("results") or []
        if rows:
            unknown = [f for f in self.fields if f != "name" and f.split(".")[0] not in rows[0]]
            if unknown:
                raise ConfigError([f"contacts.fields: BottleCRM contacts have no field {f!r}"
                                   for f in unknown])

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """Contacts with (updated_at, id) strictly after ``after``, ascending; a full scan."""
        rows, more = scan_changed(lambda offset, size: self._list(
            {"limit": size, "offset": offset}, "changed contacts (scan)"),
            after=after, limit=limit, page_size=self.options.scan_page_size,
            settle=self.options.settle)
        contacts = [self._contact(r) for r in rows]
        if not contacts:
            return Page([], after, False)
        return Page(contacts, Cursor(contacts[-1].updated_at, contacts[-1].id), more)

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        out = []
        for contact_id in ids:
            try:
                body = self.remote.request("GET", f"contacts/{contact_id}/",
                                           operation="fetch contact").json()
            except (NotFound, InvalidRequest):
                continue
            out.append(self._contact(body.get("contact_obj", body)))
        return out

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """Contacts whose ``phone_e164`` (or parsed ``phone``) equals ``phone_e164``.

        The list's ``phone`` filter is a substring match on the phone *as typed*, so it is
        asked for the last 4 digits (contiguous in E.164, national and most typed forms; about
        0.1 % of contacts match by chance) and, when no candidate verifies, for the last 2
        (contiguous in any grouping, about 10 % of contacts). Every candidate is verified.
        """
        wanted = e164(phone_e164)
        if wanted is None:
            return []
        region = region_of(wanted)
        found: dict[str, Contact] = {}
        for tail in (wanted[-4:], wanted[-2:]):
            for row in self._all({"phone": tail}, "find by phone"):
                stored = row.get("phone_e164") or e164(row.get("phone"), region)
                if stored == wanted:
                    found[str(row["id"])] = self._contact(row)
            if found:
                break
        return list(found.values())

    def _all(self, params: dict[str, Any], operation: str):
        offset, size = 0, 100
        while True:
            body = self._list({**params, "limit": size, "offset": offset}, operation).json()
            rows = body.get("results") or []
            yield from rows
            offset += len(rows)
            if not rows or offset >= int(body.get("count") or 0):
                return

    # -- writing -------------------------------------------------------------------------
    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """Create or update contacts, one request each (the API has no batch endpoint)."""
        results = []
        for write in writes:
            try:
                contact_id = write.id or self._created_before(write)
                body = self._body(write)
                if contact_id is None:
                    self.creates.intend(write.key)
                    body = {**body, "source_ref": KEY_PREFIX + write.key}
                    try:
                        reply = self.remote.request("POST", "contacts/", json=body, idempotent=False,
                                                    operation="create contact").json()
                    except InvalidRequest:
                        self.creates.forget(write.key)
                        raise
                    contact_id = str(reply["id"])
                    self.creates.done(write.key, contact_id)
                elif body:
                    self.remote.request("PATCH", f"contacts/{contact_id}/", json=body,
                                        operation="update contact")
                results.append(WriteResult(write.key, True, contact_id))
            except (InvalidRecord, InvalidRequest, NotFound, RetriableRemoteError) as exc:
                results.append(failed_write(write.key, write.id, exc))
        return results

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        """``DELETE contacts/<id>/``, one request each; the list simply stops showing a deleted
        contact (verify finds those). A contact already gone (404) counts as deleted."""
        results = []
        for contact_id in ids:
            try:
                self.remote.request("DELETE", f"contacts/{contact_id}/", operation="delete contact")
                results.append(WriteResult(contact_id, True, contact_id))
            except NotFound:
                results.append(WriteResult(contact_id, True, contact_id))
            except InvalidRequest as exc:
                results.append(WriteResult(contact_id, False, contact_id, str(exc)))
        return results

    def _body(self, write: ContactWrite) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name, value in write.fields.items():
            if name == "name":
                if value is not None and not isinstance(value, str):
                    raise InvalidRecord(f"name must be text, not {type(value).__name__}")
                body.update(split_name(value))
            else:
                body[name] = value
        if write.phones is not None:
            if len(write.phones) > 1:
                log.warning("bottlecrm.extra_phones_dropped", key=write.key,
                            dropped=len(write.phones) - 1)
            body["phone"] = write.phones[0] if write.phones else None
        return body

    def _created_before(self, write: ContactWrite) -> str | None:
        """The id of an earlier create under ``write.key`` (journal, then a search)."""
        sent, contact_id = self.creates.get(write.key)
        if not sent or contact_id:
            return contact_id
        ref = KEY_PREFIX + write.key
        probes = [{"phone": p} for p in (write.phones or ())[:1]]
        if write.fields.get("email"):
            probes.append({"email": write.fields["email"]})
        name = write.fields.get("last_name") or write.fields.get("name")
        if name:
            probes.append({"name": str(name).split()[-1]})  # matches first or last name
        for probe in probes:
            for row in self._all(probe, "look up an earlier create"):
                if row.get("source_ref") == ref:
                    self.creates.done(write.key, str(row["id"]))
                    return str(row["id"])
        return None

    # -- calls ---------------------------------------------------------------------------
    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """One call interaction per session_id; the contact's calls are read first."""
        results: dict[int, WriteResult] = {}
        by_contact: dict[str, list[tuple[int, Call]]] = defaultdict(list)
        for i, call in enumerate(calls):
            contact_id = call.contact_id
            if contact_id is None:
                found = self.find_by_phone(call.phone)
                if len(found) != 1:
                    results[i] = WriteResult(call.session_id, False, None,
                                             f"{len(found)} contacts have this phone number")
                    continue
                contact_id = found[0].id
            by_contact[contact_id].append((i, call))
        for contact_id, items in by_contact.items():
            try:
                logged = self._logged(contact_id)
            except (NotFound, InvalidRequest) as exc:
                for i, call in items:
                    results[i] = WriteResult(call.session_id, False, None, str(exc))
                continue
            for i, call in items:
                results[i] = self._log_one(contact_id, call, logged)
        return [results[i] for i in range(len(calls))]

    def _log_one(self, contact_id: str, call: Call, logged: dict[str, str]) -> WriteResult:
        if call.session_id in logged:
            return WriteResult(call.session_id, True, logged[call.session_id])
        try:
            row = self.remote.request("POST", "interactions/", json=interaction(contact_id, call),
                                      operation="log call", idempotent=False).json()
        except (InvalidRequest, NotFound, RetriableRemoteError) as exc:
            return failed_write(call.session_id, None, exc)
        logged[call.session_id] = str(row["id"])
        return WriteResult(call.session_id, True, str(row["id"]))

    def update_calls(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        """PATCH each call interaction with the call's current duration, outcome and body
        (recording link, talk time, agent). An interaction id not known is found among the
        contact's calls by its session tag."""
        looked: dict[str, dict[str, str]] = {}
        results = []
        for call in calls:
            iid = activity_ids.get(call.session_id)
            try:
                if not iid and call.contact_id:
                    if call.contact_id not in looked:
                        looked[call.contact_id] = self._logged(call.contact_id)
                    iid = looked[call.contact_id].get(call.session_id)
                if not iid:
                    results.append(WriteResult(call.session_id, False, None,
                                               "no BottleCRM interaction carries this session"))
                    continue
                body = interaction(call.contact_id or "", call)
                patch = {k: body[k] for k in ("kind", "duration_seconds", "outcome", "subject", "body")}
                self.remote.request("PATCH", f"interactions/{iid}/", json=patch, operation="update call")
                results.append(WriteResult(call.session_id, True, str(iid)))
            except (InvalidRequest, NotFound, PermissionDenied, RetriableRemoteError) as exc:
                results.append(failed_write(call.session_id, None, exc))
        return results

    def _logged(self, contact_id: str) -> dict[str, str]:
        """session_id → interaction id of the calls syncd logged on this contact."""
        found: dict[str, str] = {}
        offset = 0
        while True:
            body = self.remote.request("GET", "interactions/", operation="read logged calls",
                                       params={"contact": contact_id, "limit": INTERACTIONS_MAX,
                                               "offset": offset}).json()
            rows = body.get("interactions") or []
            for row in rows:
                session = session_of(row.get("subject") or "")
                if session and row.get("kind") == "call":
                    found.setdefault(session, str(row["id"]))
            offset += len(rows)
            if not rows or offset >= int(body.get("count") or 0):
                return found

    def close(self) -> None:
        self.remote.close()
        self.creates.close()


def interaction(contact_id: str, call: Call) -> dict[str, Any]:
    """The ``/api/interactions/`` body of a call (times UTC, duration in whole seconds)."""
    direction = "inbound" if call.direction == CallDirection.INBOUND else "outbound"
    body = [f"Phone: {call.phone}", f"Direction: {call.direction.value}",
            f"Outcome: {call.outcome.value}", f"Talk: {call.talk_s} s"]
    if call.agent:
        body.append(f"Agent: {call.agent}")
    if call.recording_url:
        body.append(f"Recording: {call.recording_url}")
    return {"kind": "call", "direction": direction, "contact": contact_id,
            "duration_seconds": max(0, int(call.duration_s)), "outcome": OUTCOMES[call.outcome],
            "subject": f"Call {call.phone} [syncd-session {call.session_id}]",
            "body": "\n".join(body), "occurred_at": call.started_at.isoformat()}


def session_of(subject: str) -> str | None:
    """The session id tagged at the end of a subject (``... [syncd-session 123]``)."""
    tag = "[syncd-session "
    if subject.endswith("]") and tag in subject:
        return subject.rsplit(tag, 1)[1][:-1].strip() or None
    return None


NO_LAST_NAME = "-"  # BottleCRM requires a last name; a one-word name gets this one


def split_name(value: str | None) -> dict[str, str]:
    """The virtual field ``name`` → first_name (all but the last word) and last_name."""
    first, _, last = (value or "").strip().rpartition(" ")
    return {"first_name": first, "last_name": last} if first else \
        {"first_name": last, "last_name": NO_LAST_NAME}


def _virtual(row: dict[str, Any], name: str) -> Any:
    if name == "name":
        last = row.get("last_name")
        parts = (row.get("first_name"), None if last == NO_LAST_NAME else last)
        return " ".join(p for p in parts if p) or None
    value: Any = row
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
