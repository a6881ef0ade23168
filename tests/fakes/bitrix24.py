"""A fake Bitrix24 portal: the REST methods the connector uses, over real HTTP on loopback.

Reproduced from the vendor documentation (https://apidocs.bitrix24.com,
https://dev.1c-bitrix.ru/rest_help/), including the traps:

* auth by inbound webhook ``/rest/<user_id>/<secret>/<method>[.json]`` or OAuth
  (``/rest/<method>?auth=<token>``; ``/oauth/token/`` rotates the refresh token);
* ``crm.contact.list`` filter prefixes (``>=``, ``>``, ``=``, ``<``, ``%``), ``order``, ``select``
  (``PHONE``/``EMAIL`` only when named), paging by ``start`` (50 rows, ``next``/``total``) and
  ``start=-1`` (no count);
* multi-value ``PHONE``: an entry without ``ID`` is appended, ``ID`` + value replaces,
  ``ID`` + empty value deletes;
* ``batch`` (≤ 50 commands, ``halt``, commands as ``method?query`` strings, per-command
  ``result_error``);
* the leaky bucket (50 then 2/s) answering HTTP 503 ``QUERY_LIMIT_EXCEEDED``, and the method
  block after 480 s of operating time in 10 minutes (``OPERATION_TIME_LIMIT``);
* ``telephony.externalcall.register`` returning the same ``CALL_ID`` for the same parameters
  within 30 minutes; ``insufficient_scope`` when the telephony scope is not granted.

Tests change data "behind the connector's back" through the :class:`Bitrix24State` methods.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._bitrix24_query import MULTI_FIELDS, BxError, as_list, matches, parse_php_query, render
from ._fake import RunningFake, UserEdits, new_token, offset_page, serve_state
from ._events import Webhooks, bitrix24_request

__all__ = ["Bitrix24State", "RunningBitrix24", "running_bitrix24", "parse_php_query"]

PAGE = 50
SCOPE_OF = {"crm": "crm", "telephony": "telephony", "batch": None, "scope": None, "profile": None}


@dataclass
class Bitrix24State(UserEdits):
    """The portal's data and knobs. Thread-safe; times are the fake clock's (``now``)."""

    webhook_user: int = 1
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(8))
    client_id: str = "local.app1"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    scopes: set[str] = field(default_factory=lambda: {"crm", "telephony", "user"})
    portal_tz: timezone = timezone(timedelta(hours=3))
    bucket_size: int = 50
    drain_per_s: float = 2.0
    operating_limit_s: float = 480.0
    method_cost_s: dict[str, float] = field(default_factory=dict)   # simulated run time
    required_fields: set[str] = field(default_factory=set)          # as a portal admin may set
    clock: Callable[[], datetime] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.contacts: dict[int, dict[str, Any]] = {}
        self.activities: dict[int, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.journal: list[str] = []             # method names, one per executed command
        self.http_requests = 0
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}   # token → expires (monotonic)
        self._ids = itertools.count(1)
        self._mf_ids = itertools.count(1001)
        self._act_ids = itertools.count(5001)
        self._bucket = 0.0
        self._bucket_stamp = time.monotonic()
        self._operating: dict[str, list[tuple[float, float]]] = {}
        self.webhooks = Webhooks(bitrix24_request)   # outbound events (subscribe to get them)

    # -- admin handle ----------------------------------------------------------------------
    def now(self) -> datetime:
        moment = self.clock() if self.clock else datetime.now(UTC)
        return moment.replace(microsecond=0).astimezone(self.portal_tz)

    def add_contact(self, phones: tuple[str, ...] = (), *, modified: datetime | None = None,
                    **fields: Any) -> int:
        """Create a contact directly (as a portal user would); returns its ID."""
        with self.lock:
            cid = next(self._ids)
            record = {"ID": cid, "NAME": "", "LAST_NAME": "", "DATE_CREATE": self.now(),
                      "PHONE": [], "EMAIL": []}
            self._write(record, {**fields, "PHONE": [{"VALUE": p, "VALUE_TYPE": "WORK"} for p in phones]})
            record["DATE_MODIFY"] = (modified or self.now()).astimezone(self.portal_tz)
            self.contacts[cid] = record
        self.webhooks.emit("add", cid)
        return cid

    def touch(self, cid: int, *, modified: datetime | None = None, **fields: Any) -> None:
        """Change a contact behind the connector's back."""
        with self.lock:
            record = self.contacts[cid]
            self._write(record, fields)
            record["DATE_MODIFY"] = (modified or self.now()).astimezone(self.portal_tz)
        self.webhooks.emit("update", cid)

    def phones_of(self, cid: int) -> list[str]:
        return [p["VALUE"] for p in self.contacts[cid]["PHONE"]]

    def new_refresh_token(self) -> str:
        return new_token("rt", 12, self.refresh_tokens)

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    def block_method(self, method: str) -> None:
        """Spend the operating-time budget of ``method`` (the next calls get OPERATION_TIME_LIMIT)."""
        with self.lock:
            self._operating.setdefault(method.lower(), []).append(
                (time.monotonic(), self.operating_limit_s + 1))

    # -- internals ---------------------------------------------------------------------------
    def _write(self, record: dict[str, Any], fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key in MULTI_FIELDS:
                self._write_multi(record.setdefault(key, []), as_list(value), key)
            elif key not in ("ID", "DATE_CREATE", "DATE_MODIFY"):
                record[key] = value

    def _write_multi(self, entries: list[dict[str, Any]], items: list[Any], type_id: str) -> None:
        for item in items:
            item = dict(item) if isinstance(item, dict) else {"VALUE": item}
            if item.get("ID") not in (None, ""):
                target = next((e for e in entries if str(e["ID"]) == str(item["ID"])), None)
                if target is None:
                    continue
                if item.get("VALUE", "") == "":
                    entries.remove(target)           # ID + empty VALUE deletes
                else:
                    target.update({k: v for k, v in item.items() if k in ("VALUE", "VALUE_TYPE")})
            elif item.get("VALUE"):
                # The documented trap: without ID the value is appended, even if already there.
                entries.append({"ID": str(next(self._mf_ids)), "VALUE_TYPE": item.get("VALUE_TYPE", "WORK"),
                                "VALUE": item["VALUE"], "TYPE_ID": type_id})

    def take_token(self) -> None:
        """Leaky bucket: each HTTP request adds 1; it drains ``drain_per_s``; full → 503."""
        with self.lock:
            now = time.monotonic()
            self._bucket = max(0.0, self._bucket - (now - self._bucket_stamp) * self.drain_per_s)
            self._bucket_stamp = now
            if self._bucket + 1 > self.bucket_size:
                raise BxError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            self._bucket += 1

    def operating(self, method: str) -> tuple[float, float | None]:
        """(summed operating seconds of ``method`` in the last 10 minutes, reset time)."""
        window = [(t, s) for t, s in self._operating.get(method, []) if t > time.monotonic() - 600]
        self._operating[method] = window
        total = sum(s for _, s in window)
        reset_at = (time.time() + 600 - (time.monotonic() - window[0][0])) if window else None
        return total, reset_at


class Bitrix24App:
    """The REST dispatcher; one method per Bitrix24 REST method used by the connector."""

    def __init__(self, state: Bitrix24State) -> None:
        self.s = state

    # -- entry -----------------------------------------------------------------------------
    async def rest(self, request: Request) -> JSONResponse:
        s = self.s
        path = request.path_params["path"].strip("/").split("/")
        params: dict[str, Any] = parse_php_query(request.url.query)
        body = await request.body()
        if body:
            ctype = request.headers.get("content-type", "")
            params.update(__import__("json").loads(body) if "json" in ctype else parse_php_query(body.decode()))
        try:
            with s.lock:
                s.http_requests += 1
                if len(path) == 3 and path[0].isdigit():
                    if int(path[0]) != s.webhook_user or path[1] != s.webhook_secret:
                        raise BxError(401, "NO_AUTH_FOUND", "Wrong authorization data")
                    method = path[2]
                elif len(path) == 1:
                    token = params.pop("auth", None) or request.headers.get("authorization", "")[7:]
                    if not token:
                        raise BxError(401, "NO_AUTH_FOUND", "Wrong authorization data")
                    if s.access_tokens.get(token, 0) < time.monotonic():
                        raise BxError(401, "expired_token", "The access token provided has expired.")
                    method = path[0]
                else:
                    raise BxError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
                method = method.removesuffix(".json").lower()
                s.take_token()
                result = self.call(method, params)
        except BxError as exc:
            return JSONResponse({"error": exc.error, "error_description": exc.description},
                                status_code=exc.status)
        if method == "crm.contact.list":
            payload = {"result": result.pop("rows"), **result, "time": self._time(method)}
        else:
            payload = {"result": result, "time": self._time(method)}
        return JSONResponse(payload)

    def _time(self, method: str) -> dict[str, Any]:
        operating, reset_at = self.s.operating(method)
        now = time.time()
        out: dict[str, Any] = {"start": now, "finish": now, "duration": 0.001, "processing": 0.0,
                               "operating": operating}
        if reset_at is not None:
            out["operating_reset_at"] = int(reset_at)
        return out

    def call(self, method: str, params: dict[str, Any]) -> Any:
        s = self.s
        scope = method.split(".")[0]
        needed = SCOPE_OF.get(scope, scope)
        if needed and needed not in s.scopes:
            raise BxError(401, "insufficient_scope", "The request requires higher privileges than provided by the webhook token")
        used, _ = s.operating(method)
        if used > s.operating_limit_s:
            raise BxError(503, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
        if s.method_cost_s.get(method):
            s._operating.setdefault(method, []).append((time.monotonic(), s.method_cost_s[method]))
        s.journal.append(method)
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            raise BxError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        return handler(params)

    # -- methods ---------------------------------------------------------------------------
    def m_scope(self, p: dict[str, Any]) -> list[str]:
        return sorted(self.s.scopes)

    def m_crm_contact_list(self, p: dict[str, Any]) -> dict[str, Any]:
        s = self.s
        flt = p.get("filter") or {}
        rows = [r for r in s.contacts.values() if matches(r, flt, s.portal_tz)]
        for key, direction in reversed(list((p.get("order") or {"ID": "ASC"}).items())):
            rows.sort(key=lambda r: r.get(key) if key != "ID" else int(r["ID"]),
                      reverse=str(direction).upper() == "DESC")
        select = as_list(p.get("select")) if p.get("select") else ["*"]
        start = int(p.get("start", 0) or 0)
        if start == -1:   # documented fast mode: no count, no "next"
            return {"rows": [render(r, select, s.portal_tz) for r in rows[:PAGE]]}
        page, nxt = offset_page(rows, start, PAGE)
        out: dict[str, Any] = {"rows": [render(r, select, s.portal_tz) for r in page], "total": len(rows)}
        if nxt is not None:
            out["next"] = nxt
        return out

    def _check_required(self, record: dict[str, Any], fields: dict[str, Any]) -> None:
        missing = [f for f in sorted(self.s.required_fields) if not fields.get(f, record.get(f))]
        if missing:
            raise BxError(400, "", "Required fields are not filled in: " + ", ".join(missing))

    def m_crm_contact_add(self, p: dict[str, Any]) -> int:
        fields = p.get("fields") or {}
        self._check_required({}, fields)
        cid = self.s.add_contact()
        self.s.touch(cid, **fields)
        return cid

    def m_crm_contact_update(self, p: dict[str, Any]) -> bool:
        cid = int(p.get("id") or p.get("ID") or 0)
        if cid not in self.s.contacts:
            raise BxError(400, "", "Not found")
        self._check_required(self.s.contacts[cid], p.get("fields") or {})
        self.s.touch(cid, **(p.get("fields") or {}))
        return True

    def m_crm_contact_delete(self, p: dict[str, Any]) -> bool:
        cid = int(p.get("id") or p.get("ID") or 0)
        if cid not in self.s.contacts:
            raise BxError(400, "", "Not found")
        self.s.delete(cid)
        return True

    def m_crm_duplicate_findbycomm(self, p: dict[str, Any]) -> Any:
        digits = {re.sub(r"\D", "", v) for v in as_list(p.get("values"))}
        found = [r["ID"] for r in self.s.contacts.values()
                 if any(re.sub(r"\D", "", e["VALUE"]) in digits for e in r["PHONE"])]
        return {"CONTACT": found} if found else []

    def m_crm_activity_list(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        rows = [a for a in self.s.activities.values() if matches(a, p.get("filter") or {}, self.s.portal_tz)]
        return [{**a, "ID": str(a["ID"])} for a in rows[:PAGE]]

    def m_crm_activity_add(self, p: dict[str, Any]) -> int:
        fields = dict(p.get("fields") or {})
        owner = int(fields.get("OWNER_ID") or 0)
        if owner not in self.s.contacts or not fields.get("COMMUNICATIONS"):
            raise BxError(400, "", "Communications or owner are not specified")
        aid = next(self.s._act_ids)
        self.s.activities[aid] = {**fields, "ID": aid, "OWNER_ID": owner, "PROVIDER_ID": "CRM_CALL"}
        return aid

    def m_crm_activity_update(self, p: dict[str, Any]) -> bool:
        aid = int(p.get("id") or 0)
        if aid not in self.s.activities:
            raise BxError(400, "", "Not found")
        self.s.activities[aid].update(p.get("fields") or {})
        return True

    def m_telephony_externalcall_register(self, p: dict[str, Any]) -> dict[str, Any]:
        s = self.s
        key = tuple(str(p.get(k, "")) for k in ("USER_ID", "PHONE_NUMBER", "TYPE", "CALL_START_DATE",
                                                "CRM_ENTITY_TYPE", "CRM_ENTITY_ID"))
        now = s.now()
        for call_id, call in s.calls.items():    # same parameters within 30 minutes → same CALL_ID
            if call["key"] == key and now - call["registered"] < timedelta(minutes=30):
                return call["answer"]
        entity = int(p.get("CRM_ENTITY_ID") or 0) or next(
            (r["ID"] for r in s.contacts.values() if any(e["VALUE"] == p.get("PHONE_NUMBER") for e in r["PHONE"])), 0)
        call_id = f"externalCall.{secrets.token_hex(16)}.{int(time.time())}"
        answer = {"CALL_ID": call_id, "CRM_CREATED_LEAD": None, "CRM_ENTITY_TYPE": "CONTACT" if entity else "",
                  "CRM_ENTITY_ID": entity or None}
        s.calls[call_id] = {"key": key, "registered": now, "answer": answer, "params": p, "finished": None}
        return answer

    def m_telephony_externalcall_finish(self, p: dict[str, Any]) -> dict[str, Any]:
        s = self.s
        call = s.calls.get(str(p.get("CALL_ID")))
        if call is None or call["finished"] is not None:
            raise BxError(400, "", "Call is not found or finished")
        entity = call["answer"]["CRM_ENTITY_ID"]
        aid = None
        if entity:
            aid = next(s._act_ids)
            inbound = str(call["params"].get("TYPE")) in ("2", "3")
            s.activities[aid] = {"ID": aid, "OWNER_ID": entity, "OWNER_TYPE_ID": 3, "TYPE_ID": 2,
                                 "PROVIDER_ID": "VOXIMPLANT_CALL", "ORIGIN_ID": "VI_" + call["answer"]["CALL_ID"],
                                 "DIRECTION": 1 if inbound else 2,
                                 "SUBJECT": "Incoming call" if inbound else "Outgoing call",
                                 "DURATION": int(p.get("DURATION", 0)), "STATUS_CODE": str(p.get("STATUS_CODE", "200")),
                                 "RECORDS": []}
        call["finished"] = {**p, "CRM_ACTIVITY_ID": aid}
        return {"CALL_ID": call["answer"]["CALL_ID"], "CRM_ACTIVITY_ID": aid,
                "CALL_DURATION": int(p.get("DURATION", 0)), "CALL_FAILED_CODE": str(p.get("STATUS_CODE", "200"))}

    def m_telephony_externalcall_attachrecord(self, p: dict[str, Any]) -> dict[str, Any]:
        call = self.s.calls.get(str(p.get("CALL_ID")))
        if call is None or not call["finished"]:
            raise BxError(400, "", "Call is not found or not finished")
        aid = call["finished"]["CRM_ACTIVITY_ID"]
        if aid:
            self.s.activities[aid]["RECORDS"].append(p.get("RECORD_URL"))
        return {"FILE_ID": len(self.s.activities.get(aid, {}).get("RECORDS", []))}

    def m_batch(self, p: dict[str, Any]) -> dict[str, Any]:
        cmds = p.get("cmd") or {}
        if len(cmds) > 50:
            raise BxError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(p.get("halt", "0")) not in ("0", "", "false")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for name, command in cmds.items():
            method, _, query = command.partition("?")
            try:
                results[name] = self.call(method.lower(), parse_php_query(query))
                if isinstance(results[name], dict) and "rows" in results[name]:
                    results[name] = results[name]["rows"]
            except BxError as exc:
                errors[name] = {"error": exc.error, "error_description": exc.description}
                if halt:
                    break
        return {"result": results, "result_error": errors, "result_total": {}, "result_next": {},
                "result_time": {}}

    async def oauth(self, request: Request) -> JSONResponse:
        s = self.s
        q = dict(request.query_params)
        with s.lock:
            if q.get("client_id") != s.client_id or q.get("client_secret") != s.client_secret:
                return JSONResponse({"error": "invalid_client", "error_description": "Invalid client"}, 401)
            if q.get("grant_type") != "refresh_token" or q.get("refresh_token") not in s.refresh_tokens:
                return JSONResponse({"error": "invalid_grant", "error_description": "Invalid grant"}, 400)
            s.refresh_tokens.discard(q["refresh_token"])   # rotation: the old one is spent
            access = "at" + secrets.token_hex(12)
            s.access_tokens[access] = time.monotonic() + 3600
            return JSONResponse({"access_token": access, "expires_in": 3600, "refresh_token": s.new_refresh_token(),
                                 "scope": ",".join(sorted(s.scopes)), "domain": "fake.bitrix24.test",
                                 "member_id": "m1", "status": "L"})


@dataclass
class RunningBitrix24(RunningFake[Bitrix24State]):
    """A running fake portal; ``url`` is the portal base URL."""

    @property
    def webhook_url(self) -> str:
        """The inbound-webhook URL (holds the secret): ``<url>/rest/<user>/<secret>/``."""
        return f"{self.url}/rest/{self.state.webhook_user}/{self.state.webhook_secret}/"


def build_app(state: Bitrix24State) -> Starlette:
    app = Bitrix24App(state)
    return Starlette(routes=[Route("/oauth/token/", app.oauth, methods=["GET", "POST"]),
                             Route("/rest/{path:path}", app.rest, methods=["GET", "POST"])])


def running_bitrix24(state: Bitrix24State | None = None,
                     **knobs: Any) -> AbstractContextManager[RunningBitrix24]:
    """Start a fake portal on a loopback port: ``with running_bitrix24() as fake: fake.url``."""
    state = state or Bitrix24State(**knobs)
    return serve_state(RunningBitrix24, build_app(state), state)
