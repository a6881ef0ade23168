"""The HubSpot connector class (see the package docstring for the vendor quirks it handles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import structlog
from pydantic import BaseModel

from syncd.batches import chunks
from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import InvalidRecord, InvalidRequest, NotFound, RemoteError, TransientError
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.phones import national_number, normalize_or_none

from .._clock import parse_time
from .._oauth import TokenOrOAuthConnector, TokenPair, bearer, token_pair_from_response
from .._once import proven_done
from .._webhooks import hubspot_ids
from ._api import CALCULATED_PHONES, SEARCH_CAP, HubSpotOptions, check_response, ms
from ._calls import call_request, typed_call

__all__ = ["HubSpotConnector"]

log = structlog.get_logger()


class HubSpotConnector(TokenOrOAuthConnector):
    """HubSpot (CRM v3). See the module docstring for the vendor quirks it handles."""

    name: ClassVar[str] = "hubspot"
    Options: ClassVar[type[BaseModel]] = HubSpotOptions
    # Defaults for [crm] requests_per_minute / daily_request_budget when the config has none.
    default_requests_per_minute: ClassVar[int] = 240   # search allows ~4/s; general 100 per 10 s
    default_burst: ClassVar[int] = 4
    default_daily_request_budget: ClassVar[int] = 250_000  # Free/Starter private app daily cap
    search_cap: int = SEARCH_CAP
    # Class-level so `syncd check` sees it; do-not-call goes to a property you create.
    capabilities: ClassVar[Capabilities] = Capabilities(
        calls_write=True, calls_update=True, do_not_call=True, read_batch_size=100, write_batch_size=100,
        calls_batch_size=50, change_overlap=timedelta(seconds=60), deletes="verify_only",
        contacts_delete=True,
        notes=("needs the unique contact property syncd_key and the call property "
               "syncd_session_id (see docs/connectors/hubspot.md)",
               "search lags writes by a few seconds: every poll re-reads the last minute of "
               "changes ([crm] overlap)"))

    def __init__(self, options: HubSpotOptions, context: ConnectorContext) -> None:
        super().__init__(
            options, context, "hubspot", check=check_response,
            secrets=[options.token, options.client_secret, options.refresh_token, options.webhook_secret],
            static_headers=bearer(options.token) if options.token else {})
        self.ledger = self._ledger("hubspot-calls")
    # -- plumbing ------------------------------------------------------------------------
    def _refresh(self, refresh_token: str) -> TokenPair:
        response = self.remote.request(
            "POST", "/oauth/v1/token", operation="oauth refresh",
            data={"grant_type": "refresh_token", "client_id": self.options.client_id,
                  "client_secret": self.options.client_secret, "refresh_token": refresh_token})
        return token_pair_from_response(response.json())

    def _properties(self) -> list[str]:
        names = {*self.context.field_names, *self.options.phone_properties, "lastmodifieddate"}
        if self.dnc:
            names.add(self.dnc)
        return sorted(names)

    def _contact(self, result: dict[str, Any]) -> Contact:
        props = result.get("properties") or {}
        fields = {name: props.get(name) for name in self.context.field_names}
        if self.dnc:
            fields[self.dnc] = str(props.get(self.dnc) or "").lower() == "true"
        phones = tuple(p for p in (props.get(n) for n in self.options.phone_properties) if p)
        stamp = props.get("lastmodifieddate") or result.get("updatedAt")
        return Contact(id=str(result["id"]), fields=fields, phones=phones,
                       updated_at=parse_time(stamp) if stamp else None)

    def _search(self, object_type: str, groups: list[list[dict[str, Any]]], sort: str,
                limit: int, after: str | None, properties: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"filterGroups": [{"filters": g} for g in groups],
                                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                                "properties": properties, "limit": limit}
        if after:
            body["after"] = after
        return self._call("POST", f"/crm/v3/objects/{object_type}/search",
                          f"search {object_type}", json=body).json()

    # -- protocol ------------------------------------------------------------------------
    def webhook_ids(self, request: Any) -> list[str] | None:
        """Contact ids a HubSpot webhook names (see :mod:`syncd.crm_events`)."""
        return hubspot_ids(request, self.options.webhook_secret or self.options.client_secret,
                           self.options.webhook_url)

    def health_check(self) -> None:
        self._call("GET", "/crm/v3/objects/contacts", "health check", params={"limit": 1})

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """Contacts changed strictly after ``after`` in (lastmodifieddate, id) order."""
        out: list[Contact] = []
        cursor = after
        while len(out) < limit:
            batch, exhausted, capped = self._window(cursor, min(limit - len(out), self.search_cap))
            out += batch
            if batch:
                cursor = Cursor(batch[-1].updated_at, batch[-1].id)
            if exhausted:
                return Page(out, cursor, more=False)
            if not capped:
                break
        return Page(out, cursor, more=True)

    def _window(self, cursor: Cursor, want: int) -> tuple[list[Contact], bool, bool]:
        """One search anchored on ``cursor``: (contacts in exact order, exhausted, hit the cap)."""
        t = ms(cursor.updated_at) if cursor.updated_at else None
        last_id = int(cursor.last_id) if cursor.last_id else 0
        groups = [] if t is None else [
            [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(t)},
             {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)}],
            [{"propertyName": "lastmodifieddate", "operator": "GT", "value": str(t)}]]
        fetched: list[Contact] = []
        after: str | None = None
        exhausted = False
        while len(fetched) < want:
            size = min(100, want - len(fetched), self.search_cap - int(after or 0))
            body = self._search("contacts", groups, "lastmodifieddate", size, after, self._properties())
            fetched += [self._contact(r) for r in body.get("results", [])]
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                exhausted = True
                break
        if self.options.settle_s > 0:
            # Search lags writes and the engine reads with a strict cursor: never move the
            # cursor past a moment a late-indexed change could still land in.
            cutoff = self.server_clock.now - timedelta(seconds=self.options.settle_s)
            if any(c.updated_at > cutoff for c in fetched):
                fetched, exhausted = [c for c in fetched if c.updated_at <= cutoff], True
        capped = not exhausted and int(after or 0) >= self.search_cap
        key = lambda c: (c.updated_at, int(c.id))  # noqa: E731
        if exhausted or not fetched:
            return sorted(fetched, key=key), True, False
        last = fetched[-1].updated_at
        complete = sorted((c for c in fetched if c.updated_at != last), key=key)
        if complete:
            return complete, False, capped
        # One timestamp fills the whole window: walk that group by id alone.
        group = [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(ms(last))}]
        if t == ms(last):
            group.append({"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)})
        body = self._search("contacts", [group], "hs_object_id", min(100, want), None, self._properties())
        return [self._contact(r) for r in body.get("results", [])], False, capped

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        """Batch read by id (not subject to the search lag); missing ids are absent."""
        out: list[Contact] = []
        for chunk in chunks(ids, 100):
            body = {"properties": self._properties(), "inputs": [{"id": x} for x in chunk]}
            response = self._call("POST", "/crm/v3/objects/contacts/batch/read", "read contacts", json=body)
            out += [self._contact(r) for r in response.json().get("results", [])]
        return out

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """Contacts holding this number, verified after normalising (the search is wider).

        HubSpot keeps calculated copies of ``phone`` / ``mobilephone`` without formatting and
        country code (``hs_searchable_calculated_*``): they find numbers typed any way; the
        stored properties are also matched as E.164 or its digits for custom phone properties.
        """
        forms = [phone_e164, phone_e164.lstrip("+")]
        groups = [[{"propertyName": p, "operator": "IN", "values": forms}]
                  for p in self.options.phone_properties]
        national = national_number(phone_e164)
        if national:
            groups += [[{"propertyName": p, "operator": "EQ", "value": national}]
                       for p in CALCULATED_PHONES]
        body = self._search("contacts", groups, "hs_object_id", 100, None, self._properties())
        found = [self._contact(r) for r in body.get("results", [])]
        return [c for c in found if phone_e164 in {self._normal(p) for p in c.phones}]

    def _normal(self, phone: str) -> str | None:
        return normalize_or_none(phone, self.region)

    # -- contact writes ------------------------------------------------------------------
    def _write_properties(self, w: ContactWrite) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for name, value in w.fields.items():
            props[name] = ("true" if value else "false") if isinstance(value, bool) else (
                "" if value is None else value)
        if w.phones is not None:
            if len(w.phones) > len(self.options.phone_properties):
                raise InvalidRecord(f"HubSpot holds at most {len(self.options.phone_properties)} "
                                    f"phones ({', '.join(self.options.phone_properties)}); got "
                                    f"{len(w.phones)}", record_id=w.id)
            for i, name in enumerate(self.options.phone_properties):
                props[name] = w.phones[i] if i < len(w.phones) else ""
        return props

    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """Batch create (id None) and update; per-record results in input order."""
        results: dict[int, WriteResult] = {}
        creates: list[tuple[int, ContactWrite, dict[str, Any]]] = []
        updates: list[tuple[int, ContactWrite, dict[str, Any]]] = []
        for i, w in enumerate(writes):
            try:
                props = self._write_properties(w)
            except InvalidRecord as exc:
                results[i] = WriteResult(w.key, False, w.id, error=exc.reason)
                continue
            if w.id is None:
                creates.append((i, w, {**props, self.options.key_property: w.key}))
            else:
                updates.append((i, w, props))
        for chunk in chunks(creates, 100):
            self._create(chunk, results, updates)
        for chunk in chunks(updates, 100):
            self._update(chunk, results)
        return [results[i] for i in range(len(writes))]

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        """Archive contacts (HubSpot's delete; restorable for 90 days), 100 per batch request.
        The batch answers 204 whether or not an id still exists: a retry is harmless."""
        for chunk in chunks(ids, 100):
            self._call("POST", "/crm/v3/objects/contacts/batch/archive", "archive contacts",
                       json={"inputs": [{"id": i} for i in chunk]})
        return [WriteResult(i, True, i) for i in ids]

    def _create(self, items: list, results: dict[int, WriteResult], updates: list,
                read_first: bool = True) -> None:
        key_prop = self.options.key_property
        try:
            response = self._call("POST", "/crm/v3/objects/contacts/batch/create", "create contacts",
                                  json={"inputs": [{"properties": p} for _, _, p in items]})
        except (InvalidRequest, NotFound) as exc:
            if exc.status == 409 and read_first:
                # Made by an earlier attempt whose answer was lost: update those instead.
                known = self._ids_by_key([w.key for _, w, _ in items])
                rest = [it for it in items if it[1].key not in known]
                for i, w, p in items:
                    if w.key in known:
                        self._update([(i, w, {k: v for k, v in p.items() if k != key_prop})],
                                     results, known[w.key])
                if rest:
                    self._create(rest, results, updates, read_first=False)
                return
            self._split(items, exc, results, lambda part: self._create(part, results, updates, read_first))
            return
        by_key = {r["properties"].get(key_prop): str(r["id"]) for r in response.json().get("results", [])}
        for i, w, _ in items:
            ok = w.key in by_key
            results[i] = WriteResult(w.key, ok, by_key.get(w.key),
                                     error=None if ok else "HubSpot returned no record for this input",
                                     retriable=not ok)

    def _update(self, items: list, results: dict[int, WriteResult], id_override: str | None = None) -> None:
        inputs = [{"id": id_override or w.id, "properties": p} for _, w, p in items]
        try:
            response = self._call("POST", "/crm/v3/objects/contacts/batch/update", "update contacts",
                                  json={"inputs": inputs})
        except (InvalidRequest, NotFound) as exc:
            self._split(items, exc, results, lambda part: self._update(part, results, id_override))
            return
        done = {str(r["id"]) for r in response.json().get("results", [])}
        for i, w, _ in items:
            rid = id_override or w.id
            results[i] = WriteResult(w.key, rid in done, rid,
                                     error=None if rid in done else "HubSpot did not update it")

    def _split(self, items: list, exc: RemoteError, results: dict[int, WriteResult], retry) -> None:
        """One bad input fails a whole batch: halve it until the bad inputs stand alone."""
        if len(items) == 1:
            i, w, _ = items[0]
            results[i] = WriteResult(w.key, False, w.id, error=exc.message, retriable=False)
            return
        log.info("hubspot.batch_split", size=len(items), status=exc.status)
        mid = len(items) // 2
        retry(items[:mid])
        retry(items[mid:])

    def _ids_by_key(self, keys: list[str]) -> dict[str, str]:
        body = {"idProperty": self.options.key_property, "properties": [self.options.key_property],
                "inputs": [{"id": k} for k in keys]}
        response = self._call("POST", "/crm/v3/objects/contacts/batch/read", "read contacts by key", json=body)
        return {r["properties"].get(self.options.key_property): str(r["id"])
                for r in response.json().get("results", [])}

    # -- calls ---------------------------------------------------------------------------
    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """One HubSpot call per ``session_id``, associated to ``contact_id``; exactly once."""
        prop = self.options.call_key_property
        pending = [c for c in calls if (self.ledger.get(c.session_id) or _NONE).remote_id is None]
        found: dict[str, str] = {}
        for chunk in chunks([c.session_id for c in pending], 100):
            body = self._search("calls", [[{"propertyName": prop, "operator": "IN", "values": chunk}]],
                                "hs_object_id", 100, None, [prop])
            found.update({r["properties"].get(prop): str(r["id"]) for r in body.get("results", [])})
        results = []
        for call in calls:
            intent = self.ledger.get(call.session_id)
            if (done := proven_done(self.ledger, call.session_id, found)) is not None:
                results.append(done)
            elif intent and datetime.now(UTC) - intent.sent_at < timedelta(seconds=self.options.search_lag_s):
                results.append(WriteResult(call.session_id, False, error="an earlier attempt is "
                                           "not confirmed yet; waiting for HubSpot search", retriable=True))
            else:
                results.append(self._create_call(call))
        return results

    def _create_call(self, call: Call) -> WriteResult:
        try:
            call = typed_call(call)
        except ValueError as exc:
            return WriteResult(call.session_id, False, error=str(exc), retriable=False)
        self.ledger.sending(call.session_id)
        try:
            response = self._call("POST", "/crm/v3/objects/calls", "log call", idempotent=False,
                                  json=call_request(call, self.options.call_key_property))
        except (InvalidRequest, NotFound) as exc:
            self.ledger.forget(call.session_id)
            return WriteResult(call.session_id, False, error=exc.message, retriable=False)
        except TransientError as exc:
            return WriteResult(call.session_id, False, error=f"outcome unknown ({exc.message}); "
                               "will look it up before trying again", retriable=True)
        remote_id = str(response.json()["id"])
        self.ledger.confirmed(call.session_id, remote_id)
        return WriteResult(call.session_id, True, remote_id)

    def update_calls(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        """PATCH each logged call object with the call's current properties (idempotent).
        The object is found by ``activity_ids``, the ledger, or a search on the key property."""
        prop = self.options.call_key_property
        ids = {c.session_id: activity_ids.get(c.session_id) or (self.ledger.get(c.session_id) or _NONE).remote_id
               for c in calls}
        missing = [sid for sid, rid in ids.items() if not rid]
        for chunk in chunks(missing, 100):
            body = self._search("calls", [[{"propertyName": prop, "operator": "IN", "values": chunk}]],
                                "hs_object_id", 100, None, [prop])
            ids.update({r["properties"].get(prop): str(r["id"]) for r in body.get("results", [])})
        results = []
        for call in calls:
            remote_id = ids.get(call.session_id)
            if not remote_id:
                results.append(WriteResult(call.session_id, False, retriable=False,
                                           error="no HubSpot call carries this session id"))
                continue
            try:
                props = call_request(typed_call(call), prop)["properties"]
                self._call("PATCH", f"/crm/v3/objects/calls/{remote_id}", "update call",
                           json={"properties": props})
            except (ValueError, InvalidRequest, NotFound) as exc:
                results.append(WriteResult(call.session_id, False, retriable=False,
                                           error=getattr(exc, "message", str(exc))))
                continue
            except TransientError as exc:
                results.append(WriteResult(call.session_id, False, retriable=True, error=exc.message))
                continue
            results.append(WriteResult(call.session_id, True, remote_id))
        return results

    def close(self) -> None:
        self.remote.close()
        self.ledger.close()


class _NoIntent:
    remote_id = None


_NONE = _NoIntent()
