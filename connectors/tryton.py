"""Tryton (``trytond`` + ``trytond-party`` 8.x) through its REST API (``/<db>/rest/model/...``).

Contacts are ``party.party`` records. Their phones and e-mail are ``party.contact_mechanism``
rows (types ``phone``/``mobile``/``email``), read with dotted ``f=`` fields and written inline
(``[["write", ...]], [["create", ...]], [["delete", ...]]``) so a changed number *changes the
existing mechanism* instead of appending a copy. An archived party (``active`` false) is
returned as ``deleted``.

Changed-since is a REST search on ``last_modified_at`` (Tryton's ``write_date``, or
``create_date`` when a party was never written; naive UTC, microseconds) with an id
tie-break, ordered by (last_modified_at, id): one request per page. A server without that
field is searched on ``write_date``, with a second search on ``create_date`` for parties
lacking a write_date (checked once per process).

Creates are idempotent by ``ContactWrite.key``: the party carries a ``party.identifier`` (no
type) whose code is ``syncd:<key>``; before creating, the batch's keys are looked up in one
search. Calls are ``ir.note`` rows on the party whose message ends with
``syncd-session: <session_id>``, looked up before creating (one search per batch).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import phonenumbers
import structlog
from pydantic import BaseModel, Field, SecretStr

from connectors._secrets import OneSecretOptions
from connectors._write_results import failed_write
from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import (ConfigError, InvalidRecord, InvalidRequest, NotFound,
                          PermissionDenied, RetriableRemoteError)
from syncd.http import RemoteSystem, error_for_status
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.phones import normalize_or_none, region_of

__all__ = ["TrytonConnector", "TrytonOptions"]

log = structlog.get_logger()

PHONE_TYPES = ("phone", "mobile")
KEY_PREFIX = "syncd:"
SESSION_TAG = "syncd-session: "
_SPECIAL = {"email"}  # canonical names stored as contact mechanisms, not party fields


class TrytonOptions(OneSecretOptions):
    """``[crm.options]`` for ``connector = "tryton"``."""

    SECRET = "api_key"

    url: str = Field(description="base URL of trytond, e.g. https://erp.example.com")
    database: str
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    page_size: int = Field(100, ge=1, le=1000)


# What an HTTP error status most likely means here (added to the error's message).
_HINTS = {
    401: "the API key is wrong, cancelled, or not a validated res.user.application for 'rest'",
    403: "the key's user lacks access to party.party, party.contact_mechanism or ir.note",
    404: "check options url and database (the REST path is /<database>/rest/model/...)",
}


def to_tryton_datetime(value: datetime) -> dict[str, Any]:
    """An aware datetime → Tryton's JSON datetime (naive UTC)."""
    v = value.astimezone(UTC)
    return {"__class__": "datetime", "year": v.year, "month": v.month, "day": v.day,
            "hour": v.hour, "minute": v.minute, "second": v.second, "microsecond": v.microsecond}


def from_tryton_datetime(value: dict[str, Any] | None) -> datetime | None:
    if not value:
        return None
    return datetime(value["year"], value["month"], value["day"], value.get("hour", 0),
                    value.get("minute", 0), value.get("second", 0), value.get("microsecond", 0),
                    tzinfo=UTC)


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def phone_key(value: str, region: str | None = None) -> str:
    """Comparison form of a phone: E.164 by the engine's rules (:mod:`syncd.phones`; national
    numbers need ``region``), else '+' and its digits."""
    text = (value or "").strip()
    return normalize_or_none(text, region or "ZZ") or "+" + "".join(ch for ch in text if ch.isdigit())


def check_response(response: Any, operation: str) -> None:
    """Tryton answers a refused write with 400 ``{"status", "message", "description"}``."""
    if response.status_code == 400:
        try:
            body = response.json()
        except ValueError:
            return
        if isinstance(body, dict) and body.get("message"):
            text = str(body["message"])
            if body.get("description"):
                text += f" ({body['description']})"
            raise error_for_status(response, system="crm", operation=operation, message=text)


class TrytonConnector:
    """The ``tryton`` connector (see the module docstring for the mapping)."""

    name: ClassVar[str] = "tryton"
    Options: ClassVar[type[BaseModel]] = TrytonOptions
    # What `syncd check` knows before connecting; an instance refines it (page size, notes).
    capabilities: Capabilities = Capabilities(
        calls_write=True, do_not_call=False, deletes="flag", contacts_delete=True,
        notes=("no do-not-call flag on party.party: [do_not_call] crm_field cannot be mapped",
               "a logged call is never updated: Tryton keeps a note's text read-only once saved"))

    def __init__(self, options: TrytonOptions, context: ConnectorContext) -> None:
        self.options = options
        self.context = context
        key = options.secret()
        self.remote: RemoteSystem = context.remote(
            base_url=f"{options.url.rstrip('/')}/{options.database}/rest/model/",
            secrets=[key], headers={"Authorization": f"Bearer {key}",
                                    # archived parties too (reported as deleted)
                                    "X-Tryton-Context": _b64({"active_test": False})},
            check=check_response, hints=_HINTS)
        self.party_fields = tuple(f for f in context.field_names if f not in _SPECIAL)
        self.capabilities = Capabilities(
            contacts_read=True, contacts_write=True, contacts_create=True, calls_write=True,
            do_not_call=False, read_batch_size=options.page_size, deletes="flag",
            contacts_delete=True,
            notes=("no do-not-call flag on party.party: [do_not_call] crm_field cannot be mapped",
                   "cost per poll: one search request per page of changed parties "
                   "(plus one read of party.party's field list per process)",
                   "calls are logged as ir.note on the party; Tryton keeps a note's text "
                   "read-only once saved, so a recording link or outcome Oki-Toki fills in "
                   "after the call was logged does not reach it (calls_update=False)"))
        self._legacy_nulls: bool | None = None
        self._fields: set[str] | None = None

    # -- reading -------------------------------------------------------------------------
    def _read_fields(self) -> list[str]:
        return ["name", "active", "write_date", "create_date", "last_modified_at",
                *self.party_fields, "contact_mechanisms.type", "contact_mechanisms.value"]

    def _search(self, model: str, domain: list, *, fields: list[str], order: list | None = None,
                size: int | None = None, operation: str) -> list[dict[str, Any]]:
        params: list[tuple[str, Any]] = [("d", _b64(domain))]
        if order:
            params.append(("o", _b64(order)))
        if size is not None:
            params.append(("s", size))
        params.extend(("f", f) for f in fields)
        response = self.remote.request("GET", model, params=params, operation=operation)
        return response.json()

    def _contact(self, row: dict[str, Any]) -> Contact:
        mechanisms = row.get("contact_mechanisms") or []
        fields: dict[str, Any] = {f: row.get(f) for f in self.party_fields}
        fields["name"] = row.get("name")
        emails = [m["value"] for m in mechanisms if m.get("type") == "email"]
        fields["email"] = emails[0] if emails else None
        return Contact(
            id=str(row["id"]), fields=fields,
            phones=tuple(m["value"] for m in mechanisms if m.get("type") in PHONE_TYPES),
            updated_at=from_tryton_datetime(row.get("last_modified_at") or row.get("write_date")
                                            or row.get("create_date")),
            deleted=row.get("active") in (False, 0))

    def health_check(self) -> None:
        """One search on party.party (401/403 explained by the error's hint), then the
        configured party fields are checked against ``ir.model.field`` (ConfigError naming
        the unknown ones: Tryton silently drops unknown fields from a read)."""
        self._search("party.party", [], fields=["name"], size=1, operation="health check")
        known = self._party_field_names()
        unknown = [f for f in self.party_fields if known and f.split(".")[0] not in known]
        if unknown:
            raise ConfigError([f"contacts.fields: party.party has no field {f!r}" for f in unknown])

    def _party_field_names(self) -> set[str]:
        """Field names of party.party (read once per process; empty when not readable)."""
        if self._fields is None:
            try:
                rows = self._search("ir.model.field", [["model", "=", "party.party"]],
                                    fields=["name"], operation="read party fields")
            except (PermissionDenied, InvalidRequest, NotFound):
                rows = []
            self._fields = {r["name"] for r in rows}
        return self._fields

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """Parties with (last change, id) strictly after ``after``, ascending by both.

        The last change is ``last_modified_at`` (Tryton's own ``write_date`` or, when empty,
        ``create_date``): one search per page. A server without that field is asked on
        ``write_date``, plus a search on ``create_date`` for parties that lack a write_date.
        """
        if "last_modified_at" in self._party_field_names():
            rows = self._changed(after, limit, "last_modified_at", [])
        else:
            rows = self._changed(after, limit, "write_date", [["write_date", "!=", None]])
            if self._has_legacy_nulls():
                rows += self._changed(after, limit, "create_date", [["write_date", "=", None]])
        contacts = sorted((self._contact(r) for r in rows), key=lambda c: (c.updated_at, int(c.id)))
        more = len(contacts) > limit
        contacts = contacts[:limit]
        if not contacts:
            return Page([], after, False)
        last_contact = contacts[-1]
        return Page(contacts, Cursor(last_contact.updated_at, last_contact.id), more)

    def _changed(self, after: Cursor, limit: int, stamp: str, domain: list) -> list[dict[str, Any]]:
        domain = list(domain)
        if after.updated_at is not None:
            t, last = to_tryton_datetime(after.updated_at), int(after.last_id or 0)
            domain.append(["OR", [[stamp, ">", t]], [[stamp, "=", t], ["id", ">", last]]])
        return self._search("party.party", domain, fields=self._read_fields(),
                            order=[[stamp, "ASC"], ["id", "ASC"]], size=limit + 1,
                            operation="changed contacts")

    def _has_legacy_nulls(self) -> bool:
        if self._legacy_nulls is None:
            rows = self._search("party.party", [["write_date", "=", None]],
                                fields=["id"], size=1, operation="probe parties without write_date")
            self._legacy_nulls = bool(rows)
        return self._legacy_nulls

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        wanted = [int(i) for i in ids if str(i).isdigit()]
        if not wanted:
            return []
        rows = self._search("party.party", [["id", "in", wanted]],
                            fields=self._read_fields(), operation="fetch contacts")
        return [self._contact(r) for r in rows]

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """Parties with a phone/mobile equal to ``phone_e164`` after normalisation.

        The search matches the last 7 digits in order with anything between them (so
        ``+380 (44) 123-45-67`` is found for ``+380441234567``); every candidate is then
        compared exactly after normalisation.
        """
        wanted = phone_key(phone_e164)
        tail = "".join(ch for ch in wanted if ch.isdigit())[-7:]
        pattern = "%" + "%".join(tail) + "%"
        domain = [["contact_mechanisms", "where", [
            ["type", "in", list(PHONE_TYPES)], ["value", "ilike", pattern]]]]
        rows = self._search("party.party", domain, fields=self._read_fields(),
                            operation="find by phone")
        region = region_of(wanted)
        return [c for c in map(self._contact, rows)
                if any(phone_key(p, region) == wanted for p in c.phones)]

    # -- writing -------------------------------------------------------------------------
    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """Create or update parties; creates already made under the same key become updates."""
        existing_by_key = self._parties_by_key([w.key for w in writes if w.id is None])
        ids = {int(w.id) for w in writes if w.id is not None and str(w.id).isdigit()}
        ids.update(existing_by_key.values())
        current = self._mechanisms(sorted(ids))
        results = []
        for write in writes:
            party_id = int(write.id) if write.id is not None and str(write.id).isdigit() else \
                existing_by_key.get(write.key)
            try:
                if write.id is not None and party_id is None:
                    raise InvalidRecord(f"not a Tryton party id: {write.id!r}", record_id=write.id)
                if party_id is None:
                    body = self._values(write, [])
                    body["identifiers"] = [["create", [{"type": None,
                                                         "code": KEY_PREFIX + write.key}]]]
                    row = self.remote.request("POST", "party.party", json=body,
                                              operation="create contact", idempotent=False).json()
                    existing_by_key[write.key] = int(row["id"])  # a repeat in this batch updates
                    results.append(WriteResult(write.key, True, str(row["id"])))
                else:
                    if party_id not in current:  # written earlier in this batch: read again
                        current.update(self._mechanisms([party_id]))
                    body = self._values(write, current.get(party_id, []))
                    if body:
                        self.remote.request("PUT", f"party.party/{party_id}", json=body,
                                            operation="update contact")
                        if "contact_mechanisms" in body:
                            current.pop(party_id, None)
                    results.append(WriteResult(write.key, True, str(party_id)))
            except (InvalidRecord, InvalidRequest, NotFound, RetriableRemoteError) as exc:
                # NotFound: the party was deleted since (the PUT answers 404).
                results.append(failed_write(write.key, write.id, exc))
        return results

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        """Archive parties (``active`` false: Tryton's own way to retire a party that other
        records may reference), one request each; the walk then reports them deleted.
        A party already gone counts as deleted."""
        results = []
        for party in ids:
            try:
                if not str(party).isdigit():
                    raise InvalidRecord(f"not a Tryton party id: {party!r}", record_id=party)
                self.remote.request("PUT", f"party.party/{int(party)}", json={"active": False},
                                    operation="archive contact")
                results.append(WriteResult(party, True, party))
            except NotFound:
                results.append(WriteResult(party, True, party))
            except (InvalidRecord, InvalidRequest) as exc:
                results.append(WriteResult(party, False, party, str(exc)))
        return results

    def _parties_by_key(self, keys: list[str]) -> dict[str, int]:
        if not keys:
            return {}
        codes = [KEY_PREFIX + k for k in keys]
        rows = self._search("party.identifier",
                            [["code", "in", codes], ["type", "=", None]],
                            fields=["code", "party"], operation="look up created contacts")
        return {r["code"][len(KEY_PREFIX):]: int(r["party"]) for r in rows if r.get("party")}

    def _mechanisms(self, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        if not ids:
            return {}
        rows = self._search("party.party", [["id", "in", ids]],
                            fields=["contact_mechanisms.type", "contact_mechanisms.value"],
                            operation="read contact mechanisms")
        return {r["id"]: r.get("contact_mechanisms") or [] for r in rows}

    def _values(self, write: ContactWrite, mechanisms: list[dict[str, Any]]) -> dict[str, Any]:
        """The party values of ``write``; mechanisms diffed against the current ones."""
        body = {k: v for k, v in write.fields.items() if k not in _SPECIAL}
        actions: list[list[Any]] = []
        if write.phones is not None:
            have = [m for m in mechanisms if m.get("type") in PHONE_TYPES]
            actions += _diff(have, list(write.phones), new_type=_phone_type)
        if "email" in write.fields:
            email = write.fields["email"]
            have = [m for m in mechanisms if m.get("type") == "email"]
            actions += _diff(have, [email] if email else [], new_type=lambda v: "email",
                             same=lambda a, b: a.strip().lower() == b.strip().lower())
        if actions:
            body["contact_mechanisms"] = actions
        return body

    # -- calls ---------------------------------------------------------------------------
    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """One ``ir.note`` per session_id on the call's party; already logged calls are skipped."""
        logged = self._logged_sessions([c.session_id for c in calls])
        results = []
        for call in calls:
            try:
                if call.session_id in logged:
                    results.append(WriteResult(call.session_id, True, logged[call.session_id]))
                    continue
                party = call.contact_id
                if party is None:
                    found = self.find_by_phone(call.phone)
                    if len(found) != 1:
                        raise InvalidRecord(f"{len(found)} parties have this phone number",
                                            record_id=call.session_id)
                    party = found[0].id
                note = {"resource": f"party.party,{int(party)}", "message": call_note(call)}
                row = self.remote.request("POST", "ir.note", json=note, operation="log call",
                                          idempotent=False).json()
                logged[call.session_id] = str(row["id"])
                results.append(WriteResult(call.session_id, True, str(row["id"])))
            except (InvalidRecord, InvalidRequest, NotFound, ValueError, RetriableRemoteError) as exc:
                results.append(failed_write(call.session_id, None, exc))
        return results

    def _logged_sessions(self, session_ids: list[str]) -> dict[str, str]:
        if not session_ids:
            return {}
        clauses = [["message", "ilike", f"%{SESSION_TAG}{sid}"] for sid in session_ids]
        domain = [["resource", "like", "party.party,%"], ["OR", *clauses]]
        rows = self._search("ir.note", domain, fields=["message"], operation="look up logged calls")
        found: dict[str, str] = {}
        for row in rows:
            tag = (row.get("message") or "").rsplit(SESSION_TAG, 1)
            if len(tag) == 2 and tag[1].strip() in session_ids:
                found.setdefault(tag[1].strip(), str(row["id"]))
        return found

    def close(self) -> None:
        self.remote.close()


def call_note(call: Call) -> str:
    """The note text: a readable summary, then the session tag on its own last line."""
    lines = [f"Call {call.direction.value} {call.phone}: {call.outcome.value}",
             f"started {call.started_at.astimezone(UTC).isoformat()} UTC, "
             f"duration {call.duration_s} s, talk {call.talk_s} s"]
    if call.agent:
        lines.append(f"agent: {call.agent}")
    if call.recording_url:
        lines.append(f"recording: {call.recording_url}")
    lines.append(f"{SESSION_TAG}{call.session_id}")
    return "\n".join(lines)


def _phone_type(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return "phone"
    kind = phonenumbers.number_type(number)
    return "mobile" if kind == phonenumbers.PhoneNumberType.MOBILE else "phone"


def _diff(have: list[dict[str, Any]], want: list[str], *, new_type, same=None) -> list[list[Any]]:
    """One2many actions turning mechanisms ``have`` into values ``want``.

    Values already present stay untouched; the remaining old mechanisms are rewritten with
    the remaining new values (a changed number is the same row), extras are created or
    deleted. Duplicates in ``want`` collapse to one.
    """
    same = same or (lambda a, b: phone_key(a) == phone_key(b))
    unique: list[str] = []
    for value in want:
        if value and not any(same(value, u) for u in unique):
            unique.append(value)
    kept = [m for m in have if any(same(m["value"], v) for v in unique)]
    # A value stored twice keeps one row; the copy becomes free for reuse or deletion.
    seen: list[dict[str, Any]] = []
    for m in kept:
        if not any(same(m["value"], s["value"]) for s in seen):
            seen.append(m)
    free = [m for m in have if m not in seen]
    missing = [v for v in unique if not any(same(v, m["value"]) for m in seen)]
    actions: list[list[Any]] = []
    for mechanism, value in zip(free, missing):
        actions.append(["write", [mechanism["id"]], {"value": value}])
    if len(missing) > len(free):
        actions.append(["create", [{"type": new_type(v), "value": v} for v in missing[len(free):]]])
    if len(free) > len(missing):
        actions.append(["delete", [m["id"] for m in free[len(missing):]]])
    return actions
