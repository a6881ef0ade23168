"""A fake HubSpot CRM v3 (contacts and calls) on loopback, with the quirks that break integrations.

Only the endpoints the connector uses, shaped as documented:

* search  https://developers.hubspot.com/docs/api/crm/search
  (filterGroups OR'ed, filters AND'ed, one sort, ``limit`` ≤ 100, ``after`` paging, at most
  10,000 results per query: paging past them is a 400; ties of the sort come back in no
  particular order; new records are searchable only after an index delay; phone and
  mobilephone have calculated searchable copies, digits without the country code, in
  ``hs_searchable_calculated_phone_number`` / ``_mobile_number``);
* batch read/create/update  https://developers.hubspot.com/docs/api/crm/contacts
  (≤ 100 inputs; one invalid input fails the whole batch with a VALIDATION_ERROR body);
* calls  https://developers.hubspot.com/docs/api/crm/calls (association type 194 to contacts);
* rate limits  https://developers.hubspot.com/docs/api/usage-details
  (429 with ``X-HubSpot-RateLimit-*`` headers and ``policyName``; search ≈ 5 requests/s);
* OAuth refresh  https://developers.hubspot.com/docs/api/oauth/tokens.

The admin handle (``FakeHubSpot`` attributes and methods) changes data behind the connector's
back and injects faults. Start it with ``with running_hubspot() as fake: fake.url``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes._fake import CatchAllFake, form_of, offset_page, sort_scrambling_ties
from tests.fakes._events import Webhooks, hubspot_request

__all__ = ["FakeHubSpot", "running_hubspot", "TOKEN"]

TOKEN = "pat-eu1-fake-hubspot-token-0001"
SEARCH_CAP = 10_000
CALL_TO_CONTACT = 194
CALL_STATUSES = {"BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED",
                 "IN_PROGRESS", "NO_ANSWER", "QUEUED", "RINGING"}


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _error(status: int, category: str, message: str, headers: dict[str, str] | None = None,
           **extra: Any) -> JSONResponse:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class Record:
    id: int
    properties: dict[str, str | None]
    created_ms: int
    updated_ms: int
    searchable_at: float = 0.0  # time.monotonic() after which search sees it
    associations: list[int] = field(default_factory=list)

    def view(self, names: list[str] | None) -> dict[str, Any]:
        props = dict(self.properties)
        props.update(hs_object_id=str(self.id), createdate=_iso(self.created_ms),
                     lastmodifieddate=_iso(self.updated_ms))
        if names is not None:
            props = {k: v for k, v in props.items()
                     if k in names or k in ("hs_object_id", "createdate", "lastmodifieddate")}
        return {"id": str(self.id), "properties": props, "createdAt": _iso(self.created_ms),
                "updatedAt": _iso(self.updated_ms), "archived": False}


class FakeHubSpot(CatchAllFake):
    """State and admin handle of one fake HubSpot account (a fault set with ``fail_next``
    matches the paths that end with its ``path``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tokens = {TOKEN}
        self.scopes_missing = False
        self.contacts: dict[int, Record] = {}
        self.calls: dict[int, Record] = {}
        self.contact_properties = {"firstname", "lastname", "email", "phone", "mobilephone",
                                   "lifecyclestage", "hs_lead_status", "company", "city",
                                   "syncd_key", "syncd_do_not_call"}
        self.call_properties = {"hs_timestamp", "hs_call_direction", "hs_call_duration",
                                "hs_call_status", "hs_call_body", "hs_call_recording_url",
                                "hs_call_title", "hs_call_to_number", "hs_call_from_number",
                                "hs_call_disposition", "syncd_session_id"}
        self._ids = itertools.count(1001)
        self.clock_ms: int | None = None    # frozen lastmodifieddate for new writes (tests)
        self.index_delay = 0.0              # seconds before a new record is searchable
        self.search_cap = SEARCH_CAP
        self.ten_second_limit: int | None = None
        self.search_per_second: int | None = None
        self.daily_limit: int | None = None
        self._window: list[float] = []
        self._search_window: list[float] = []
        self.daily_used = 0
        self.requests: list[tuple[str, str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        # OAuth: refresh tokens are single use here (stricter than HubSpot) to test rotation.
        self.client_id, self.client_secret = "client-1234", "client-secret-5678"
        self.refresh_tokens: set[str] = set()
        self.refresh_count = 0
        self.webhooks = Webhooks(hubspot_request)   # subscribe(url, client_secret=...) to get them

    # -- admin ---------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock_ms if self.clock_ms is not None else int(time.time() * 1000)

    def add_contact(self, updated_at: datetime | None = None, **props: str | None) -> str:
        """Create a contact directly (searchable at once); returns its id."""
        with self.lock:
            ms = _ms(updated_at) if updated_at else self.now_ms()
            rec = Record(next(self._ids), dict(props), ms, ms)
            self.contacts[rec.id] = rec
        self.webhooks.emit("add", rec.id)
        return str(rec.id)

    def edit_contact(self, id: str, updated_at: datetime | None = None, **props: str | None) -> None:
        with self.lock:
            rec = self.contacts[int(id)]
            rec.properties.update(props)
            rec.updated_ms = _ms(updated_at) if updated_at else self.now_ms()
        self.webhooks.emit("update", id)

    def archive_contact(self, id: str) -> None:
        """Archive (delete) a contact: search and batch read no longer return it."""
        with self.lock:
            del self.contacts[int(id)]
        self.webhooks.emit("delete", id)

    def calls_for_session(self, session_id: str) -> list[Record]:
        with self.lock:
            return [c for c in self.calls.values()
                    if c.properties.get("syncd_session_id") == session_id]

    # -- HTTP ----------------------------------------------------------------------------
    def _fault_matches(self, fault_path: str, path: str) -> bool:
        return path.endswith(fault_path)

    def _handle(self, request: Request, path: str, body: Any) -> Response:
        if path == "/oauth/v1/token":
            return self._token(body)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. "
                          "This API supports OAuth 2.0 authentication and you can find more "
                          "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")
        if self.scopes_missing:
            return _error(403, "MISSING_SCOPES", "This app hasn't been granted all required "
                          "scopes to make this call.", errors=[{"message": "One or more of the "
                          "following scopes are required.", "context": {"requiredGranularScopes":
                                                                        ["crm.objects.contacts.read"]}}])
        limited = self._rate_limit(path)
        if limited is not None:
            return limited
        route = (request.method, path)
        if route == ("GET", "/crm/v3/objects/contacts"):
            limit = int(request.query_params.get("limit", "10"))
            return JSONResponse({"results": [r.view([]) for r in list(self.contacts.values())[:limit]]})
        if route == ("POST", "/crm/v3/objects/contacts/search"):
            return self._search(self.contacts, body)
        if route == ("POST", "/crm/v3/objects/calls/search"):
            return self._search(self.calls, body)
        if route == ("POST", "/crm/v3/objects/contacts/batch/read"):
            return self._batch_read(body)
        if route == ("POST", "/crm/v3/objects/contacts/batch/create"):
            return self._batch_write(body, create=True)
        if route == ("POST", "/crm/v3/objects/contacts/batch/update"):
            return self._batch_write(body, create=False)
        if route == ("POST", "/crm/v3/objects/contacts/batch/archive"):
            for item in (body or {}).get("inputs") or []:   # unknown ids are ignored (204)
                self.contacts.pop(int(item["id"]), None)
            return Response(status_code=204)
        if route == ("POST", "/crm/v3/objects/calls"):
            return self._create_call(body)
        if request.method == "PATCH" and path.startswith("/crm/v3/objects/calls/"):
            return self._update_call(path.rsplit("/", 1)[1], body)
        return _error(404, "OBJECT_NOT_FOUND", f"Unknown endpoint {request.method} {path}")

    def _rate_limit(self, path: str) -> Response | None:
        now = time.monotonic()
        self._window = [t for t in self._window if now - t < 10]
        self._search_window = [t for t in self._search_window if now - t < 1]
        headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
        if self.daily_limit is not None:
            headers.update({"X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                            "X-HubSpot-RateLimit-Daily-Remaining":
                                str(max(0, self.daily_limit - self.daily_used))})
            if self.daily_used >= self.daily_limit:
                return _error(429, "RATE_LIMITS", "You have reached your daily limit.",
                              headers=headers, errorType="RATE_LIMIT", policyName="DAILY")
        if self.ten_second_limit is not None:
            headers.update({"X-HubSpot-RateLimit-Max": str(self.ten_second_limit),
                            "X-HubSpot-RateLimit-Remaining":
                                str(max(0, self.ten_second_limit - len(self._window)))})
            if len(self._window) >= self.ten_second_limit:
                return _error(429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                              headers=headers, errorType="RATE_LIMIT",
                              policyName="TEN_SECONDLY_ROLLING")
        if path.endswith("/search") and self.search_per_second is not None:
            if len(self._search_window) >= self.search_per_second:
                return _error(429, "RATE_LIMITS", "You have reached your secondly limit.",
                              errorType="RATE_LIMIT", policyName="SECONDLY")
            self._search_window.append(now)
        self._window.append(now)
        self.daily_used += 1
        return None

    # -- search --------------------------------------------------------------------------
    def _search(self, table: dict[int, Record], body: dict[str, Any]) -> Response:
        limit = int(body.get("limit", 10))
        after = int(body.get("after") or 0)
        if limit > 100:
            return _error(400, "VALIDATION_ERROR", "limit must be less than or equal to 100")
        if after >= self.search_cap:
            return _error(400, "VALIDATION_ERROR", f"Paging beyond {self.search_cap} results is "
                          "not allowed; narrow the search with filters instead.")
        now = time.monotonic()
        groups = body.get("filterGroups") or []
        hits = [r for r in table.values() if r.searchable_at <= now
                and (not groups or any(all(_match(r, f) for f in g["filters"]) for g in groups))]
        sorts = body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        if len(sorts) > 1:
            return _error(400, "VALIDATION_ERROR", "Only one sort is allowed")
        sort = sorts[0]
        # Ties of the sort key come back in no particular order.
        sort_scrambling_ties(hits, lambda r: _sort_value(r, sort["propertyName"]),
                             ident=lambda r: r.id, reverse=sort.get("direction") == "DESCENDING")
        page, next_after = offset_page(hits, after, limit)
        page = page[:self.search_cap - after]     # results past the cap are never returned
        out: dict[str, Any] = {"total": len(hits), "results": [r.view(body.get("properties") or [])
                                                               for r in page]}
        if next_after is not None:
            out["paging"] = {"next": {"after": str(next_after)}}
        return JSONResponse(out)

    # -- contacts ------------------------------------------------------------------------
    def _batch_read(self, body: dict[str, Any]) -> Response:
        id_property = body.get("idProperty")
        names = body.get("properties") or []
        results = []
        for item in body.get("inputs", []):
            for rec in self.contacts.values():
                key = rec.properties.get(id_property) if id_property else str(rec.id)
                if key is not None and key == str(item["id"]):
                    results.append(rec.view(names))
                    break
        return JSONResponse({"status": "COMPLETE", "results": results}, status_code=200)

    def _invalid(self, properties: dict[str, Any], known: set[str]) -> str | None:
        for name, value in properties.items():
            if name not in known:
                return f'Property "{name}" does not exist'
            if name == "email" and value and "@" not in str(value):
                return f"Email address {value} is invalid"
        return None

    def _batch_write(self, body: dict[str, Any], *, create: bool) -> Response:
        inputs = body.get("inputs", [])
        if len(inputs) > 100:
            return _error(400, "VALIDATION_ERROR", "Batch input cannot exceed 100 inputs")
        problems = []
        for item in inputs:
            bad = self._invalid(item.get("properties", {}), self.contact_properties)
            if not create and int(item.get("id", 0)) not in self.contacts:
                bad = bad or f"Object not found. objectId: {item.get('id')}"
            key = item.get("properties", {}).get("syncd_key")
            if create and key and any(r.properties.get("syncd_key") == key for r in self.contacts.values()):
                return _error(409, "CONFLICT", f"A contact with syncd_key {key} already exists.")
            if bad:
                problems.append({"isValid": False, "message": bad, "error": "INVALID_INPUT"})
        if problems:  # one bad input fails the whole batch
            return _error(400, "VALIDATION_ERROR",
                          "Property values were not valid: " + json.dumps(problems))
        now = self.now_ms()
        results = []
        for item in inputs:
            if create:
                rec = Record(next(self._ids), dict(item.get("properties", {})), now, now,
                             searchable_at=time.monotonic() + self.index_delay)
                self.contacts[rec.id] = rec
            else:
                rec = self.contacts[int(item["id"])]
                rec.properties.update(item.get("properties", {}))
                rec.updated_ms = now
            results.append(rec.view(None))
        results.reverse()  # HubSpot does not promise input order in batch results
        return JSONResponse({"status": "COMPLETE", "results": results},
                            status_code=201 if create else 200)

    # -- calls ---------------------------------------------------------------------------
    def _create_call(self, body: dict[str, Any]) -> Response:
        props = body.get("properties", {})
        bad = self._invalid(props, self.call_properties)
        if not bad and props.get("hs_call_status") not in CALL_STATUSES | {None}:
            bad = f"{props['hs_call_status']} is not a valid hs_call_status"
        if not bad and "hs_timestamp" not in props:
            bad = "hs_timestamp is required"
        assoc = []
        for a in body.get("associations", []):
            types = [t.get("associationTypeId") for t in a.get("types", [])]
            if CALL_TO_CONTACT not in types or int(a["to"]["id"]) not in self.contacts:
                bad = bad or f"invalid association {a}"
            assoc.append(int(a["to"]["id"]))
        if bad:
            return _error(400, "VALIDATION_ERROR", "Property values were not valid: " + bad)
        now = self.now_ms()
        rec = Record(next(self._ids), dict(props), now, now,
                     searchable_at=time.monotonic() + self.index_delay, associations=assoc)
        self.calls[rec.id] = rec
        return JSONResponse(rec.view(None), status_code=201)

    def _update_call(self, object_id: str, body: dict[str, Any]) -> Response:
        """``PATCH /crm/v3/objects/calls/{id}``: only ``properties``; 404 for an unknown id."""
        rec = self.calls.get(int(object_id)) if object_id.isdigit() else None
        if rec is None:
            return _error(404, "OBJECT_NOT_FOUND", f"Object not found.  objectId are usually "
                          f"numeric. (id {object_id})")
        props = body.get("properties", {}) if isinstance(body, dict) else {}
        bad = self._invalid(props, self.call_properties)
        if not bad and props.get("hs_call_status", "COMPLETED") not in CALL_STATUSES:
            bad = f"{props['hs_call_status']} is not a valid hs_call_status"
        if bad:
            return _error(400, "VALIDATION_ERROR", "Property values were not valid: " + bad)
        rec.properties.update(props)
        rec.updated_ms = self.now_ms()
        return JSONResponse(rec.view(None))

    def _token(self, body: str) -> Response:
        form = form_of(body)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return JSONResponse({"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"},
                                status_code=400)
        token = form.get("refresh_token")
        if form.get("grant_type") != "refresh_token" or token not in self.refresh_tokens:
            return JSONResponse({"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid "
                                 "refresh token"}, status_code=400)
        access, refresh = self._rotate_refresh_token(token)
        return JSONResponse({"token_type": "bearer", "access_token": access,
                             "refresh_token": refresh, "expires_in": 1800})


def _sort_value(rec: Record, name: str) -> Any:
    if name == "hs_object_id":
        return rec.id
    if name in ("lastmodifieddate", "hs_lastmodifieddate"):
        return rec.updated_ms
    if name == "createdate":
        return rec.created_ms
    return rec.properties.get(name) or ""


def _calculated_phone(value: str | None) -> str | None:
    """HubSpot's searchable copy of a phone property: digits without the country code."""
    if not value:
        return None
    try:
        parsed = phonenumbers.parse(value, None if value.strip().startswith("+") else "US")
        return str(parsed.national_number)
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in value if ch.isdigit()).lstrip("0") or None


CALCULATED = {"hs_searchable_calculated_phone_number": "phone",
              "hs_searchable_calculated_mobile_number": "mobilephone"}


def _match(rec: Record, flt: dict[str, Any]) -> bool:
    name, op = flt["propertyName"], flt["operator"]
    numeric = name in ("hs_object_id", "lastmodifieddate", "hs_lastmodifieddate", "createdate")
    have = _sort_value(rec, name) if numeric else rec.properties.get(name)
    if name in CALCULATED:
        have = _calculated_phone(rec.properties.get(CALCULATED[name]))

    def conv(v: Any) -> Any:
        return int(v) if numeric else str(v)
    if op == "HAS_PROPERTY":
        return have not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return have in (None, "")
    if have is None:
        return False
    if op == "IN":
        return have in {conv(v) for v in flt["values"]}
    want = conv(flt["value"])
    return {"EQ": have == want, "NEQ": have != want, "GT": have > want, "GTE": have >= want,
            "LT": have < want, "LTE": have <= want}[op]


def running_hubspot(fake: FakeHubSpot | None = None) -> AbstractContextManager[FakeHubSpot]:
    """Start a fake HubSpot on 127.0.0.1; ``fake.url`` is its base URL."""
    return (fake or FakeHubSpot()).running()
