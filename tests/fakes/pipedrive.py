"""A fake Pipedrive (persons API v2, call logs v1) on loopback, with its paging and limits.

Only the endpoints the connector uses, shaped as documented:

* persons v2  https://developers.pipedrive.com/docs/api/v1/Persons#getPersons (v2 section):
  ``GET /api/v2/persons`` with ``updated_since`` (RFC 3339, inclusive), ``sort_by=update_time``,
  ``sort_direction``, ``limit`` ≤ 500, ``ids``, opaque ``cursor`` and
  ``additional_data.next_cursor`` (null at the end); ``update_time`` has one-second resolution
  and records that tie on it come back in no promised order. ``POST /api/v2/persons``,
  ``PATCH /api/v2/persons/{id}`` (``phones`` replaces the whole list), ``GET
  /api/v2/persons/search`` (``term``, ``fields=phone``);
* call logs  https://developers.pipedrive.com/docs/api/v1/CallLogs (``POST /v1/callLogs``,
  ``GET /v1/callLogs`` newest first, ``start``/``limit`` paging);
* limits  https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting: a daily token
  budget (each request costs tokens; the costs here are illustrative, 10 per call-log add) and
  a burst limit per 2-second window, both answered with 429 and ``x-ratelimit-*`` headers;
* OAuth refresh  https://pipedrive.readme.io/docs/marketplace-oauth-authorization (rotating
  refresh tokens, HTTP Basic client credentials).

Start it with ``with running_pipedrive() as fake: fake.url``; the attributes and methods of
:class:`FakePipedrive` are the admin handle.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes._fake import CatchAllFake, form_of, offset_page, sort_scrambling_ties
from tests.fakes._events import Webhooks, pipedrive_request

__all__ = ["FakePipedrive", "running_pipedrive", "API_TOKEN", "COSTS"]

API_TOKEN = "0123456789abcdef0123456789abcdef01234567"
OUTCOMES = {"connected", "no_answer", "left_message", "left_voicemail", "wrong_number", "busy"}
COSTS = {("GET", "/api/v2/persons"): 10, ("GET", "/api/v2/persons/search"): 20,
         ("POST", "/api/v2/persons"): 5, ("PATCH", "/api/v2/persons/"): 5,
         ("POST", "/v1/callLogs"): 10, ("GET", "/v1/callLogs"): 20, ("GET", "/v1/users/me"): 2}
PERSON_FIELDS = {"name", "first_name", "last_name", "owner_id", "org_id", "emails", "phones",
                 "visible_to", "label_ids", "custom_fields"}


def _rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fail(status: int, error: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"success": False, "error": error, "error_info": "Please check developers.pipedrive.com "
            "for more information about Pipedrive API.", "data": None, "additional_data": None, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


class FakePipedrive(CatchAllFake):
    """State and admin handle of one fake Pipedrive company (a fault set with ``fail_next``
    matches its ``path`` exactly)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tokens = {API_TOKEN}
        self.persons: dict[int, dict[str, Any]] = {}
        self.call_logs: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.clock: int | None = None          # frozen update_time (unix seconds) for writes
        self.ticking = None                    # a tests.fakes.clock.TickingClock: one second per change
        self.daily_budget: int | None = None   # tokens per day
        self.tokens_used = 0
        self.burst_limit: int | None = None    # requests per 2 s window
        self._window: list[float] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.client_id, self.client_secret = "pd-client-1234", "pd-client-secret-5678"
        self.refresh_tokens: set[str] = set()
        self.refresh_count = 0
        self.webhooks = Webhooks(pipedrive_request)   # subscribe(url, user=..., password=...)

    # -- admin ---------------------------------------------------------------------------
    def now(self) -> int:
        if self.clock is not None:
            return self.clock
        if self.ticking is not None:
            return int(self.ticking.timestamp())
        return int(time.time())

    def add_person(self, name: str, phones: list[str] = (), updated_at: datetime | None = None,
                   **fields: Any) -> str:
        with self.lock:
            ts = int(updated_at.timestamp()) if updated_at else self.now()
            pid = next(self._ids)
            self.persons[pid] = {"id": pid, "name": name, "add_time": ts, "update_time": ts,
                                 "phones": [{"value": p, "primary": i == 0, "label": "work"}
                                            for i, p in enumerate(phones)],
                                 "emails": [], "custom_fields": {}, **fields}
        self.webhooks.emit("add", pid)
        return str(pid)

    def edit_person(self, id: str, updated_at: datetime | None = None, **fields: Any) -> None:
        with self.lock:
            person = self.persons[int(id)]
            person.update(fields)
            person["update_time"] = int(updated_at.timestamp()) if updated_at else self.now()
        self.webhooks.emit("update", id)

    def delete_person(self, id: str) -> None:
        """Delete a person as a user would (v2 lists and reads by id no longer return it)."""
        with self.lock:
            del self.persons[int(id)]
        self.webhooks.emit("delete", id)

    def logs_for_session(self, session_id: str) -> list[dict[str, Any]]:
        marker = f"session={session_id}]"
        return [c for c in self.call_logs if marker in (c.get("note") or "")]

    # -- HTTP ----------------------------------------------------------------------------
    def _handle(self, request: Request, path: str, body: Any) -> Response:
        if path == "/oauth/token":
            return self._token(request, body)
        token = request.headers.get("x-api-token") or request.query_params.get("api_token")
        auth = request.headers.get("authorization", "")
        if not (token in self.tokens or (auth.startswith("Bearer ") and auth[7:] in self.tokens)):
            return _fail(401, "unauthorized access", errorCode=401)
        limited = self._limit(request.method, path)
        if limited is not None:
            return limited
        q = request.query_params
        if (request.method, path) == ("GET", "/v1/users/me"):
            return JSONResponse({"success": True, "data": {"id": 1, "name": "Admin"}})
        if (request.method, path) == ("GET", "/api/v2/persons"):
            return self._list(q)
        if (request.method, path) == ("GET", "/api/v2/persons/search"):
            return self._search(q)
        if (request.method, path) == ("POST", "/api/v2/persons"):
            return self._write(None, body)
        if request.method == "DELETE" and path.startswith("/api/v2/persons/"):
            pid = int(path.rsplit("/", 1)[1])
            if self.persons.pop(pid, None) is None:
                return _fail(404, "Person not found")
            return JSONResponse({"success": True, "data": {"id": pid}})
        if request.method == "PATCH" and path.startswith("/api/v2/persons/"):
            return self._write(path.rsplit("/", 1)[1], body)
        if (request.method, path) == ("POST", "/v1/callLogs"):
            return self._add_call(body)
        if (request.method, path) == ("GET", "/v1/callLogs"):
            start, limit = int(q.get("start", 0)), min(int(q.get("limit", 20)), 50)
            page, nxt = offset_page(list(reversed(self.call_logs)), start, limit)
            return JSONResponse({"success": True, "data": page or None,
                                 "additional_data": {"pagination": {
                                     "start": start, "limit": limit,
                                     "more_items_in_collection": nxt is not None}}})
        return _fail(404, f"Unknown method {request.method} {path}")

    def _limit(self, method: str, path: str) -> Response | None:
        now = time.monotonic()
        self._window = [t for t in self._window if now - t < 2]
        cost = COSTS.get((method, path)) or COSTS.get((method, path.rsplit("/", 1)[0] + "/"), 10)
        headers = {"x-ratelimit-reset": "2"}
        if self.burst_limit is not None:
            headers |= {"x-ratelimit-limit": str(self.burst_limit),
                        "x-ratelimit-remaining": str(max(0, self.burst_limit - len(self._window) - 1))}
            if len(self._window) >= self.burst_limit:
                return _fail(429, "Request over limit", {**headers, "Retry-After": "2"}, errorCode=429)
        if self.daily_budget is not None:
            left = self.daily_budget - self.tokens_used
            headers["x-daily-token-budget-left"] = str(max(0, left - cost))
            if cost > left:
                return _fail(429, "Daily token budget exceeded", headers, errorCode=429)
        self._window.append(now)
        self.tokens_used += cost
        return None

    # -- persons -------------------------------------------------------------------------
    def _view(self, p: dict[str, Any]) -> dict[str, Any]:
        return {**p, "add_time": _rfc3339(p["add_time"]), "update_time": _rfc3339(p["update_time"])}

    def _list(self, q: Any) -> Response:
        limit = int(q.get("limit", 100))
        if limit > 500:
            return _fail(400, "Validation failed: limit: Must be less than or equal to 500",
                         code="ERR_SCHEMA_VALIDATION_FAILED")
        rows = list(self.persons.values())
        if q.get("ids"):
            wanted = {int(x) for x in q["ids"].split(",")}
            rows = [p for p in rows if p["id"] in wanted]
        if q.get("updated_since"):
            since = int(datetime.fromisoformat(q["updated_since"].replace("Z", "+00:00")).timestamp())
            rows = [p for p in rows if p["update_time"] >= since]
        sort_by = q.get("sort_by", "id")
        # Ties of the sort key come back in no promised order.
        sort_scrambling_ties(rows, lambda p: p[sort_by], ident=lambda p: p["id"],
                             reverse=q.get("sort_direction") == "desc")
        start = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
        page, nxt = offset_page(rows, start, limit)
        cursor = None if nxt is None else base64.urlsafe_b64encode(str(nxt).encode()).decode()
        return JSONResponse({"success": True, "data": [self._view(p) for p in page],
                             "additional_data": {"next_cursor": cursor}})

    def _search(self, q: Any) -> Response:
        term = "".join(ch for ch in q.get("term", "") if ch.isdigit())
        if len(term) < 2:
            return _fail(400, "term must be at least 2 characters long")
        items = [{"result_score": 1.0, "item": {"id": p["id"], "type": "person", "name": p["name"],
                                                "phones": [x["value"] for x in p["phones"]]}}
                 for p in self.persons.values()
                 if any(term in "".join(ch for ch in x["value"] if ch.isdigit()) for x in p["phones"])]
        return JSONResponse({"success": True, "data": {"items": items},
                             "additional_data": {"next_cursor": None}})

    def _write(self, pid: str | None, body: dict[str, Any]) -> Response:
        unknown = set(body) - PERSON_FIELDS
        if unknown:
            return _fail(400, f"Validation failed: {sorted(unknown)[0]}: Parameter is not allowed",
                         code="ERR_SCHEMA_VALIDATION_FAILED")
        if pid is None and not body.get("name"):
            return _fail(400, "Validation failed: name: Name is required",
                         code="ERR_SCHEMA_VALIDATION_FAILED")
        for key in ("owner_id", "org_id"):   # v2 does not coerce strings to numbers
            if body.get(key) is not None and not isinstance(body[key], int):
                return _fail(400, f"Validation failed: {key}: Expected number, received string",
                             code="ERR_SCHEMA_VALIDATION_FAILED")
        for phone in body.get("phones") or []:
            if not isinstance(phone, dict) or not str(phone.get("value", "")).strip():
                return _fail(400, "Validation failed: phones: Invalid phone value",
                             code="ERR_SCHEMA_VALIDATION_FAILED")
        if pid is None:
            person = {"id": next(self._ids), "add_time": self.now(), "phones": [], "emails": [],
                      "custom_fields": {}}
            self.persons[person["id"]] = person
        elif not pid.isdigit() or int(pid) not in self.persons:
            return _fail(404, "Person not found")
        else:
            person = self.persons[int(pid)]
        custom = body.pop("custom_fields", None) or {}
        person.update(body)
        person["custom_fields"] = {**person.get("custom_fields", {}), **custom}
        person["update_time"] = self.now()
        return JSONResponse({"success": True, "data": self._view(person)},
                            status_code=201 if pid is None else 200)

    # -- calls ---------------------------------------------------------------------------
    def _add_call(self, body: dict[str, Any]) -> Response:
        for required in ("outcome", "to_phone_number", "start_time", "end_time"):
            if not body.get(required):
                return _fail(400, f"{required} is required")
        if body["outcome"] not in OUTCOMES:
            return _fail(400, f"outcome must be one of {sorted(OUTCOMES)}")
        for key in ("start_time", "end_time"):
            try:
                datetime.strptime(body[key], "%Y-%m-%d %H:%M:%S")
            except (TypeError, ValueError):
                return _fail(400, f"{key} must be in UTC, format YYYY-MM-DD HH:MM:SS")
        if body.get("person_id") is not None and int(body["person_id"]) not in self.persons:
            return _fail(404, "Person not found")
        log = {"id": uuid.uuid4().hex[:24], "activity_id": len(self.call_logs) + 1, **body}
        self.call_logs.append(log)
        return JSONResponse({"success": True, "data": log})

    def _token(self, request: Request, body: str) -> Response:
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return JSONResponse({"success": False, "message": "Invalid client credentials",
                                 "error": "unauthorized"}, status_code=401)
        form = form_of(body)
        token = form.get("refresh_token")
        if form.get("grant_type") != "refresh_token" or token not in self.refresh_tokens:
            return JSONResponse({"success": False, "message": "Invalid grant: refresh token is "
                                 "invalid", "error": "invalid_grant"}, status_code=400)
        access, refresh = self._rotate_refresh_token(token, "pd-")
        return JSONResponse({"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
                             "scope": "base,contacts:full", "expires_in": 3599,
                             "api_domain": getattr(self, "url", "")})


def running_pipedrive(fake: FakePipedrive | None = None) -> AbstractContextManager[FakePipedrive]:
    """Start a fake Pipedrive on 127.0.0.1; ``fake.url`` is its base URL."""
    return (fake or FakePipedrive()).running()
