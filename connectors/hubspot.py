"""HubSpot CRM v3 connector: contacts through search and batch endpoints, calls as call objects.

Vendor behaviour this module is built around (https://developers.hubspot.com/docs/api/crm):

* Changed contacts come from ``POST /crm/v3/objects/contacts/search`` on ``lastmodifieddate``
  (milliseconds). Search sorts on one property only (ties come back in any order) and stops at
  10,000 results per query, so every page is a fresh search anchored on the cursor:
  ``(lastmodifieddate = T AND hs_object_id > I) OR lastmodifieddate > T``; the last timestamp
  group of a window is dropped unless complete, and a group too large for one window is
  walked by id alone. Search lags writes by a few seconds (the engine's overlap covers it);
  ``fetch_contacts`` uses batch read, which does not lag.
* Batch create/update take ≤ 100 inputs and one bad input fails the whole batch: the batch is
  split in halves and retried until only the bad inputs fail. Creates carry the write's key in
  a unique-value property (``key_property``) so a repeated create after an ambiguous outcome
  answers 409 and is turned into an update of the record it already made.
* Calls have no idempotency key: the session id goes into a call property
  (``call_key_property``), searched before creating, and an intent ledger under ``state_dir``
  stops a second create while an earlier, unconfirmed one may not be searchable yet.
* 429 bodies name a ``policyName``: ``DAILY`` is the daily cap (BudgetExhausted), the others
  are throttling (Throttled, waiting the interval the ``X-HubSpot-RateLimit-*`` headers give).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, model_validator

from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import (AuthenticationError, BudgetExhausted, InvalidRecord, InvalidRequest,
                          NotFound, PermissionDenied, RemoteError, Throttled, TransientError)
from syncd.http import error_for_status
from syncd.model import Call, CallDirection, CallOutcome, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.phones import normalize

from ._oauth import OAuthSession, TokenPair, TokenStore, bearer, token_pair_from_response
from ._once import IntentLedger, send_once

__all__ = ["HubSpotConnector", "HubSpotOptions"]

log = structlog.get_logger()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEARCH_CAP = 10_000        # results one search query can page through
CALL_TO_CONTACT = 194      # HUBSPOT_DEFINED association type call → contact
STATUS = {CallOutcome.ANSWERED: "COMPLETED", CallOutcome.NO_ANSWER: "NO_ANSWER",
          CallOutcome.BUSY: "BUSY", CallOutcome.FAILED: "FAILED"}
# HubSpot's default call outcomes (hs_call_disposition GUIDs).
DISPOSITION = {CallOutcome.ANSWERED: "f240bbac-87c9-4f6e-bf70-924b57d47db7",
               CallOutcome.NO_ANSWER: "73a0d17f-1163-4015-bdd5-ec830791da20",
               CallOutcome.BUSY: "9d9162e7-6cf3-4944-bf63-4dff82258764"}


class HubSpotOptions(BaseModel):
    """``[crm.options]`` of the hubspot connector (``token_file`` is accepted for ``token``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = "https://api.hubapi.com"
    token: str | None = None                # private-app access token
    client_id: str | None = None            # OAuth app (instead of token)
    client_secret: str | None = None
    refresh_token: str | None = None        # seed; the current pair lives in state_dir
    key_property: str = "syncd_key"         # unique-value contact property (idempotent creates)
    call_key_property: str = "syncd_session_id"  # call property holding the Oki-Toki session id
    phone_properties: tuple[str, str] = ("phone", "mobilephone")
    search_lag_s: float = 60.0              # how long an unconfirmed call create may stay unsearchable

    @model_validator(mode="after")
    def _one_credential(self) -> "HubSpotOptions":
        oauth = (self.client_id, self.client_secret, self.refresh_token)
        if bool(self.token) == all(oauth) or (any(oauth) and not all(oauth)):
            raise ValueError("set either token (private app) or all of client_id, "
                             "client_secret and refresh_token (OAuth)")
        return self


def _ms(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def check_response(response: httpx.Response, operation: str) -> None:
    """Map HubSpot error bodies (``{"status":"error","category",...}``) to the taxonomy."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = str(body.get("message") or body.get("status") or "")[:300] or None
    kw = dict(system="crm", operation=operation, status=response.status_code)
    if response.status_code == 429:
        policy = body.get("policyName", "")
        if policy == "DAILY":
            raise BudgetExhausted(f"HubSpot daily API limit reached ({message})", **kw)
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        wait = 1.0 if policy == "SECONDLY" or not interval else int(interval) / 1000
        retry_after = response.headers.get("Retry-After")
        raise Throttled(f"HubSpot rate limit {policy or 'unknown'}: {message}",
                        retry_after=timedelta(seconds=float(retry_after) if retry_after else wait), **kw)
    if body.get("category") == "MISSING_SCOPES":
        scopes = [s for e in body.get("errors", []) for s in
                  e.get("context", {}).get("requiredGranularScopes", [])]
        raise PermissionDenied(f"the app lacks scopes {', '.join(scopes) or '(see HubSpot)'}", **kw,
                               hint="add the scopes to the private app and use its new token")
    if response.status_code == 400 and body.get("status", "").startswith("BAD_"):
        raise AuthenticationError(f"OAuth refresh refused: {message}", **kw,
                                  hint="re-authorise the app and configure its new refresh token")
    error = error_for_status(response, system="crm", operation=operation, message=message)
    if error is not None:
        raise error


class HubSpotConnector:
    """HubSpot (CRM v3). See the module docstring for the vendor quirks it handles."""

    name: ClassVar[str] = "hubspot"
    Options: ClassVar[type[BaseModel]] = HubSpotOptions
    # Defaults for [crm] requests_per_minute / daily_request_budget when the config has none.
    default_requests_per_minute: ClassVar[int] = 240   # search allows ~4/s; general 100 per 10 s
    default_burst: ClassVar[int] = 4
    default_daily_request_budget: ClassVar[int] = 250_000  # Free/Starter private app daily cap
    search_cap: int = SEARCH_CAP

    def __init__(self, options: HubSpotOptions, context: ConnectorContext) -> None:
        self.options, self.context = options, context
        self.dnc = context.do_not_call_field
        self.region = str(context.extra.get("default_region", "UA"))
        secrets = [s for s in (options.token, options.client_secret, options.refresh_token) if s]
        self.remote = context.remote(
            base_url=options.url.rstrip("/"), secrets=secrets, check=check_response,
            burst=self.default_burst,
            headers=bearer(options.token) if options.token else {})
        self.oauth: OAuthSession | None = None
        if options.refresh_token:
            self.oauth = OAuthSession(TokenStore.in_state_dir(context.state_dir, "hubspot"),
                                      seed_refresh_token=options.refresh_token, refresh=self._refresh)
        self.ledger = IntentLedger.in_state_dir(Path(context.state_dir), "hubspot-calls")
        self.ledger.prune(timedelta(days=30))
        self.capabilities = Capabilities(
            calls_write=True, do_not_call=self.dnc is not None, read_batch_size=100,
            write_batch_size=100, calls_batch_size=50,
            notes=(f"contacts need the unique property {options.key_property!r} and calls the "
                   f"property {options.call_key_property!r} (see docs/connectors/hubspot.md)",
                   "search lags writes by a few seconds: keep the CRM cursor overlap ≥ 1 minute"))

    # -- plumbing ------------------------------------------------------------------------
    def _refresh(self, refresh_token: str) -> TokenPair:
        response = self.remote.request(
            "POST", "/oauth/v1/token", operation="oauth refresh",
            data={"grant_type": "refresh_token", "client_id": self.options.client_id,
                  "client_secret": self.options.client_secret, "refresh_token": refresh_token})
        return token_pair_from_response(response.json())

    def _call(self, method: str, path: str, operation: str, *, once: bool = False,
              **kwargs: Any) -> httpx.Response:
        send = send_once if once else type(self.remote).request

        def with_token(token: str | None) -> httpx.Response:
            headers = bearer(token) if token else {}
            return send(self.remote, method, path, operation=operation, headers=headers, **kwargs)
        return self.oauth.call(with_token) if self.oauth else with_token(None)

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
                       updated_at=_parse_time(stamp) if stamp else None)

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
        t = _ms(cursor.updated_at) if cursor.updated_at else None
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
        capped = not exhausted and int(after or 0) >= self.search_cap
        key = lambda c: (c.updated_at, int(c.id))  # noqa: E731
        if exhausted or not fetched:
            return sorted(fetched, key=key), True, False
        last = fetched[-1].updated_at
        complete = sorted((c for c in fetched if c.updated_at != last), key=key)
        if complete:
            return complete, False, capped
        # One timestamp fills the whole window: walk that group by id alone.
        group = [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(_ms(last))}]
        if t == _ms(last):
            group.append({"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)})
        body = self._search("contacts", [group], "hs_object_id", min(100, want), None, self._properties())
        return [self._contact(r) for r in body.get("results", [])], False, capped

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        """Batch read by id (not subject to the search lag); missing ids are absent."""
        out: list[Contact] = []
        for i in range(0, len(ids), 100):
            body = {"properties": self._properties(), "inputs": [{"id": x} for x in ids[i:i + 100]]}
            response = self._call("POST", "/crm/v3/objects/contacts/batch/read", "read contacts", json=body)
            out += [self._contact(r) for r in response.json().get("results", [])]
        return out

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """Exact matches on the phone properties (E.164, or its digits), verified after normalising."""
        forms = [phone_e164, phone_e164.lstrip("+")]
        groups = [[{"propertyName": p, "operator": "IN", "values": forms}]
                  for p in self.options.phone_properties]
        body = self._search("contacts", groups, "hs_object_id", 100, None, self._properties())
        found = [self._contact(r) for r in body.get("results", [])]
        return [c for c in found if phone_e164 in {self._normal(p) for p in c.phones}]

    def _normal(self, phone: str) -> str | None:
        try:
            return normalize(phone, self.region)
        except InvalidRecord:
            return None

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
        for chunk in _chunks(creates, 100):
            self._create(chunk, results, updates)
        for chunk in _chunks(updates, 100):
            self._update(chunk, results)
        return [results[i] for i in range(len(writes))]

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
        for chunk in _chunks([c.session_id for c in pending], 100):
            body = self._search("calls", [[{"propertyName": prop, "operator": "IN", "values": chunk}]],
                                "hs_object_id", 100, None, [prop])
            found.update({r["properties"].get(prop): str(r["id"]) for r in body.get("results", [])})
        results = []
        for call in calls:
            intent = self.ledger.get(call.session_id)
            if intent and intent.remote_id:
                results.append(WriteResult(call.session_id, True, intent.remote_id))
            elif call.session_id in found:
                self.ledger.confirmed(call.session_id, found[call.session_id])
                results.append(WriteResult(call.session_id, True, found[call.session_id]))
            elif intent and datetime.now(UTC) - intent.sent_at < timedelta(seconds=self.options.search_lag_s):
                results.append(WriteResult(call.session_id, False, error="an earlier attempt is "
                                           "not confirmed yet; waiting for HubSpot search", retriable=True))
            else:
                results.append(self._create_call(call))
        return results

    def _create_call(self, call: Call) -> WriteResult:
        props = {
            "hs_timestamp": call.started_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "hs_call_direction": "INBOUND" if call.direction == CallDirection.INBOUND else "OUTBOUND",
            "hs_call_duration": str(call.duration_s * 1000),
            "hs_call_status": STATUS[call.outcome],
            "hs_call_title": f"Oki-Toki call {call.session_id}",
            "hs_call_body": _call_body(call),
            self.options.call_key_property: call.session_id,
            "hs_call_to_number" if call.direction != CallDirection.INBOUND else "hs_call_from_number": call.phone,
        }
        if call.outcome in DISPOSITION:
            props["hs_call_disposition"] = DISPOSITION[call.outcome]
        if call.recording_url:
            props["hs_call_recording_url"] = call.recording_url
        body: dict[str, Any] = {"properties": props}
        if call.contact_id:
            body["associations"] = [{"to": {"id": call.contact_id}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CALL_TO_CONTACT}]}]
        self.ledger.sending(call.session_id)
        try:
            response = self._call("POST", "/crm/v3/objects/calls", "log call", once=True, json=body)
        except InvalidRequest as exc:
            self.ledger.forget(call.session_id)
            return WriteResult(call.session_id, False, error=exc.message, retriable=False)
        except TransientError as exc:
            return WriteResult(call.session_id, False, error=f"outcome unknown ({exc.message}); "
                               "will look it up before trying again", retriable=True)
        remote_id = str(response.json()["id"])
        self.ledger.confirmed(call.session_id, remote_id)
        return WriteResult(call.session_id, True, remote_id)

    def close(self) -> None:
        self.remote.close()
        self.ledger.close()


class _NoIntent:
    remote_id = None


_NONE = _NoIntent()


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _call_body(call: Call) -> str:
    parts = [f"Oki-Toki session {call.session_id}", f"{call.direction.value}, {call.outcome.value}",
             f"talk {call.talk_s} s of {call.duration_s} s"]
    parts += [f"{k} {v}" for k, v in (("agent", call.agent), ("dialer", call.dialer_id),
                                      ("task", call.task_id)) if v]
    return "; ".join(parts)
