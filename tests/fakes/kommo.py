"""A fake amoCRM/Kommo account (API v4) over real HTTP on loopback.

Reproduced from https://developers.kommo.com/reference (contacts list/add/edit, calls,
OAuth ``/oauth2/access_token``, errors and limits), including the traps:

* ``filter[updated_at][from]`` is silently ignored on some accounts: switch
  ``ignore_updated_at_filter``; order of equal ``updated_at`` is unspecified (here: ID descending);
* an empty list is ``204 No Content`` (no JSON body); pages are 1-based, ``limit`` ≤ 250;
* a write array with one invalid entity fails as a whole: 400 with ``validation-errors`` naming
  each bad entity's ``request_id`` (its index);
* ``custom_fields_values`` of a multitext field (PHONE) *replaces* its values;
* ``POST /api/v4/calls``: the contact is found by phone; ``uniq`` guards repeats; a phone with no
  contact is reported in ``errors`` for that entry (unverified detail, kept defensive);
* about 7 requests/s, then ``429``; a blocked account answers ``403``; 401 for a bad token.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._fake import RunningFake, UserEdits, new_token, offset_page, serve_state
from ._events import Webhooks, kommo_request

__all__ = ["KommoState", "RunningKommo", "running_kommo", "FIELDS"]

MAX_LIMIT = 250
# field id → (code, name, type); PHONE/EMAIL are the account's predefined multitext fields.
FIELDS: dict[int, tuple[str | None, str, str]] = {
    100: ("PHONE", "Phone", "multitext"), 101: ("EMAIL", "Email", "multitext"),
    555: (None, "Do not call", "checkbox"), 556: (None, "Status", "text"),
}
_CODES = {code: fid for fid, (code, _, _) in FIELDS.items() if code}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"title": title, "type": f"https://httpstatus.es/{status}", "status": status,
                         "detail": detail, **extra}, status_code=status)


class Invalid(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


@dataclass
class KommoState(UserEdits):
    """Account data and knobs; thread-safe. ``updated_at`` is unix seconds (``now``)."""

    token: str = field(default_factory=lambda: "llt" + secrets.token_hex(16))   # long-lived
    client_id: str = "00000000-aaaa-bbbb-cccc-000000000001"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    ignore_updated_at_filter: bool = False
    rate_per_s: int = 7
    blocked: bool = False
    users: frozenset[int] = frozenset({1, 77})     # user ids responsible_user_id may name
    clock: Any = None

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.contacts: dict[int, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}     # uniq → call
        self.requests: list[tuple[str, str]] = []      # (method, path?query)
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}
        self._ids = itertools.count(1)
        self.webhooks = Webhooks(kommo_request)   # subscribe(url?token=..., subdomain=...)
        self._call_ids = itertools.count(9001)
        self._stamps: deque[float] = deque()

    # -- admin handle ------------------------------------------------------------------------
    def now(self) -> int:
        return int(self.clock() if self.clock else time.time())

    def add_contact(self, name: str = "", phones: tuple[str, ...] = (), *, updated_at: int | None = None,
                    **custom: Any) -> int:
        """Create a contact as a user would; ``custom`` maps field id (``f555``) to a value."""
        with self.lock:
            cid = next(self._ids)
            self.contacts[cid] = {"id": cid, "name": name, "first_name": "", "last_name": "",
                                  "responsible_user_id": 1, "created_at": self.now(),
                                  "custom_fields_values": None}
            cfs = [{"field_id": 100, "values": [{"value": p, "enum_code": "WORK"} for p in phones]}] if phones else []
            cfs += [{"field_id": int(k[1:]), "values": [{"value": v}]} for k, v in custom.items()]
            self._apply(self.contacts[cid], {"custom_fields_values": cfs})
            self.contacts[cid]["updated_at"] = self.now() if updated_at is None else updated_at
        self.webhooks.emit("add", cid)
        return cid

    def touch(self, cid: int, *, updated_at: int | None = None, **attrs: Any) -> None:
        with self.lock:
            self._apply(self.contacts[cid], attrs)
            self.contacts[cid]["updated_at"] = self.now() if updated_at is None else updated_at
        self.webhooks.emit("update", cid)

    def phones_of(self, cid: int) -> list[str]:
        return [v["value"] for v in self.values_of(cid, 100)]

    def values_of(self, cid: int, field_id: int) -> list[dict[str, Any]]:
        for cf in self.contacts[cid]["custom_fields_values"] or []:
            if cf["field_id"] == field_id:
                return cf["values"]
        return []

    def new_refresh_token(self) -> str:
        return new_token("def", 16, self.refresh_tokens)

    # -- internals ---------------------------------------------------------------------------
    def _apply(self, record: dict[str, Any], attrs: dict[str, Any], request_id: str = "0") -> None:
        for key, value in attrs.items():
            if key == "responsible_user_id" and value not in self.users:
                raise Invalid([{"request_id": request_id, "errors": [{
                    "code": "NotSupportedChoice", "path": key,
                    "detail": "The value you selected is not a valid choice."}]}])
            if key in ("name", "first_name", "last_name", "responsible_user_id"):
                record[key] = value
            elif key == "custom_fields_values":
                for i, cf in enumerate(value or []):
                    fid = cf.get("field_id") or _CODES.get(cf.get("field_code"))
                    if fid not in FIELDS:
                        raise Invalid([{"request_id": request_id, "errors": [{
                            "code": "NotSupportedChoice", "path": f"custom_fields_values.{i}.field_id",
                            "detail": "The value you selected is not a valid choice."}]}])
                    current = [c for c in record["custom_fields_values"] or [] if c["field_id"] != fid]
                    if cf.get("values"):   # values replace the field's values; null clears it
                        code, name, ftype = FIELDS[fid]
                        current.append({"field_id": fid, "field_code": code, "field_name": name,
                                        "field_type": ftype, "values": list(cf["values"])})
                    record["custom_fields_values"] = current or None
            elif key not in ("id", "request_id", "updated_at", "created_at"):
                raise Invalid([{"request_id": request_id, "errors": [{
                    "code": "FieldMissing" if key == "" else "NotSupportedChoice", "path": key,
                    "detail": "This field is not expected."}]}])

    def take_token(self) -> bool:
        now = time.monotonic()
        while self._stamps and self._stamps[0] <= now - 1:
            self._stamps.popleft()
        if len(self._stamps) >= self.rate_per_s:
            return False
        self._stamps.append(now)
        return True


Handler = Callable[["KommoApp", Request, Any], Awaitable[Response]]


def _authorized(handler: Handler) -> Callable[["KommoApp", Request], Awaitable[Response]]:
    """An API endpoint: under the account's lock, a request that fails :meth:`KommoApp._auth`
    gets its answer; the others reach ``handler`` with the JSON body (``[]`` when empty)."""
    @functools.wraps(handler)
    async def endpoint(self: "KommoApp", request: Request) -> Response:
        with self.s.lock:
            denied = self._auth(request)
            if denied:
                return denied
            return await handler(self, request, json.loads(await request.body() or b"[]"))
    return endpoint


class KommoApp:
    def __init__(self, state: KommoState) -> None:
        self.s = state

    def _auth(self, request: Request) -> Response | None:
        s = self.s
        s.requests.append((request.method, request.url.path + ("?" + request.url.query if request.url.query else "")))
        if s.blocked:
            return problem(403, "Forbidden", "Account is blocked for exceeding the request limits")
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token != s.token and s.access_tokens.get(token, 0) < time.monotonic():
            return problem(401, "Unauthorized", "Authorization failed")
        if not s.take_token():
            return Response(status_code=429)
        return None

    @_authorized
    async def account(self, request: Request, body: Any) -> Response:
        return JSONResponse({"id": 31337, "name": "Fake", "subdomain": "fake"})

    @_authorized
    async def contacts(self, request: Request, body: Any) -> Response:
        if request.method == "GET":
            return self._list(request)
        if not isinstance(body, list):
            return problem(400, "Bad Request", "an array of contacts is expected")
        try:
            out = [self._write(request.method, i, item) for i, item in enumerate(body)]
        except Invalid as exc:
            return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": exc.errors})
        for item in out:   # all or nothing: apply only when every entity is valid
            item["commit"]()
        return JSONResponse({"_links": {}, "_embedded": {"contacts": [item["answer"] for item in out]}})

    def _write(self, method: str, i: int, item: dict[str, Any]) -> dict[str, Any]:
        s = self.s
        rid = str(item.get("request_id", i))
        if method == "PATCH":
            cid = item.get("id")
            if cid not in s.contacts:
                raise Invalid([{"request_id": rid, "errors": [{"code": "NotFound", "path": "id",
                                                               "detail": "Entity not found"}]}])
            record = json.loads(json.dumps(s.contacts[cid]))
        else:
            cid, record = None, {"id": 0, "name": "", "first_name": "", "last_name": "",
                                 "responsible_user_id": 1, "custom_fields_values": None}
        s._apply(record, {k: v for k, v in item.items() if k != "id"}, rid)

        def commit() -> None:
            nonlocal cid
            if cid is None:
                cid = next(s._ids)
                record.update(id=cid, created_at=s.now())
            record["updated_at"] = s.now()
            s.contacts[cid] = record
            answer.update(id=cid, updated_at=record["updated_at"])

        answer: dict[str, Any] = {"request_id": rid}
        return {"commit": commit, "answer": answer}

    def _list(self, request: Request) -> Response:
        s = self.s
        q = request.query_params
        rows = list(s.contacts.values())
        since = q.get("filter[updated_at][from]")
        if since and not s.ignore_updated_at_filter:
            rows = [r for r in rows if r["updated_at"] >= int(since)]
        ids = {int(v) for k, v in q.multi_items() if re.fullmatch(r"filter\[id\]\[\d*\]", k)}
        if ids:
            rows = [r for r in rows if r["id"] in ids]
        if q.get("query"):
            needle = re.sub(r"\D", "", q["query"]) or q["query"]
            rows = [r for r in rows if needle in json.dumps(r) or
                    any(needle in re.sub(r"\D", "", v["value"]) for cf in r["custom_fields_values"] or []
                        if cf["field_id"] == 100 for v in cf["values"])]
        rows.sort(key=lambda r: -r["id"])   # equal updated_at: unspecified order (here newest ID first)
        if q.get("order[updated_at]"):
            rows.sort(key=lambda r: r["updated_at"], reverse=q["order[updated_at]"] == "desc")
        elif q.get("order[id]"):
            rows.sort(key=lambda r: r["id"], reverse=q["order[id]"] == "desc")
        limit = min(int(q.get("limit", 50)), MAX_LIMIT)
        page = int(q.get("page", 1))
        chunk, nxt = offset_page(rows, (page - 1) * limit, limit)
        if not chunk:
            return Response(status_code=204)
        links: dict[str, Any] = {"self": {"href": str(request.url)}}
        if nxt is not None:
            links["next"] = {"href": str(request.url.include_query_params(page=page + 1))}
        return JSONResponse({"_page": page, "_links": links, "_embedded": {"contacts": chunk}})

    @_authorized
    async def calls(self, request: Request, body: Any) -> Response:
        s = self.s
        done, errors = [], []
        for i, item in enumerate(body):
            rid = str(item.get("request_id", i))
            missing = [k for k in ("direction", "duration", "source", "phone") if item.get(k) in (None, "")]
            if missing or item.get("direction") not in ("inbound", "outbound"):
                return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": [
                    {"request_id": rid, "errors": [{"code": "FieldMissing", "path": m, "detail": "required"}
                                                   for m in missing or ["direction"]]}]})
            uniq = item.get("uniq")
            if uniq and uniq in s.calls:       # the documented guard against repeats
                done.append({**s.calls[uniq]["answer"], "request_id": rid})
                continue
            digits = re.sub(r"\D", "", item["phone"])
            owner = next((r["id"] for r in s.contacts.values() if any(
                re.sub(r"\D", "", v["value"]) == digits for v in s.values_of(r["id"], 100))), None)
            if owner is None:
                errors.append({"request_id": rid, "status": 404, "title": "Not Found",
                               "detail": "Entity for the phone number is not found"})
                continue
            answer = {"id": next(s._call_ids), "entity_id": owner, "entity_type": "contacts",
                      "account_id": 31337}
            s.calls[uniq or secrets.token_hex(8)] = {"answer": answer, "item": item}
            done.append({**answer, "request_id": rid})
        return JSONResponse({"_embedded": {"calls": done}, "errors": errors})

    @_authorized
    async def notes(self, request: Request, body: Any) -> Response:
        """``PATCH /api/v4/contacts/notes`` (edit notes): an array of ``{id, note_type, params}``;
        the call notes ``POST /api/v4/calls`` made take new params. An id that is no note of
        the contacts, or a wrong note_type, fails the request with ``validation-errors``."""
        s = self.s
        by_id = {c["answer"]["id"]: c for c in s.calls.values()}
        bad, done = [], []
        for i, item in enumerate(body if isinstance(body, list) else []):
            rid = str(item.get("request_id", i))
            call = by_id.get(item.get("id"))
            want = None if call is None else ("call_in" if call["item"]["direction"] == "inbound" else "call_out")
            if call is None or item.get("note_type") != want:
                bad.append({"request_id": rid, "errors": [{"code": "NotFound" if call is None else "InvalidType",
                                                           "path": "id" if call is None else "note_type",
                                                           "detail": "note not found" if call is None
                                                           else f"note_type must be {want}"}]})
                continue
            done.append((rid, call, item.get("params") or {}))
        if bad or not isinstance(body, list):
            return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": bad})
        out = []
        for rid, call, params in done:
            call["item"].update(params)
            call["edits"] = call.get("edits", 0) + 1
            out.append({"id": call["answer"]["id"], "entity_id": call["answer"]["entity_id"],
                        "request_id": rid})
        return JSONResponse({"_embedded": {"notes": out}})

    async def oauth(self, request: Request) -> Response:
        s = self.s
        body = json.loads(await request.body() or b"{}")
        with s.lock:
            if body.get("client_id") != s.client_id or body.get("client_secret") != s.client_secret:
                return problem(401, "Unauthorized", "Client authentication failed", hint="invalid_client")
            if body.get("grant_type") != "refresh_token" or body.get("refresh_token") not in s.refresh_tokens:
                return problem(400, "Bad Request", "The refresh token is invalid", hint="invalid_grant")
            s.refresh_tokens.discard(body["refresh_token"])
            access = "eyJ" + secrets.token_hex(20)
            s.access_tokens[access] = time.monotonic() + 86400
            return JSONResponse({"token_type": "Bearer", "expires_in": 86400, "access_token": access,
                                 "refresh_token": s.new_refresh_token()})


@dataclass
class RunningKommo(RunningFake[KommoState]):
    """A running fake account; ``url`` is the account base URL, like ``https://<sub>.kommo.com``."""


def build_app(state: KommoState) -> Starlette:
    app = KommoApp(state)
    return Starlette(routes=[
        Route("/api/v4/account", app.account), Route("/oauth2/access_token", app.oauth, methods=["POST"]),
        Route("/api/v4/contacts", app.contacts, methods=["GET", "POST", "PATCH"]),
        Route("/api/v4/calls", app.calls, methods=["POST"]),
        Route("/api/v4/contacts/notes", app.notes, methods=["PATCH"])])


def running_kommo(state: KommoState | None = None, **knobs: Any) -> AbstractContextManager[RunningKommo]:
    """Start a fake Kommo account on loopback: ``with running_kommo() as fake: fake.url``."""
    state = state or KommoState(**knobs)
    return serve_state(RunningKommo, build_app(state), state)
