"""The Oki-Toki event receiver (``/events/okitoki``), hardened: whoever reaches the listener
must not be able to crash it, fill its memory, or spend the paid API budget.

* The token is checked before the body is read when it comes in the query or an
  ``Authorization: Bearer`` header; a token that can only be in the body is looked for in a
  body read to at most ``MAX_BODY`` bytes (counted as it streams, chunked bodies too: 413
  past it), parsed with a depth and a field-count limit (400 past them).
* Every error is a 4xx; an unexpected one is logged and answered 400, never 500.
* An event names a call (``event`` empty or starting with ``call``) and carries an integer
  ``session_id``; anything else is answered 202 and ignored.
* Hints are de-duplicated per ``session_id`` and at most ``hints_per_minute`` reach the
  daemon; the rest are counted (``syncd_webhook_events_total{result="dropped"}``) and
  dropped: the call still arrives with the call-log walk. What a hint may cost is capped
  again where it is used (:class:`syncd.engine.calls.HintFetches`).
"""

from __future__ import annotations

import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

__all__ = ["EventReceiver", "BodyTooLarge", "MAX_BODY", "MAX_DEPTH", "MAX_FIELDS", "parse_json", "parse_body",
           "read_body", "HintWindow", "never_a_5xx", "too_large", "client_gone"]

log = structlog.get_logger("syncd.web")
MAX_BODY = 64 * 1024
MAX_DEPTH = 8
MAX_FIELDS = 100
RECENT = 10_000          # session ids remembered for de-duplication


class BodyTooLarge(Exception):
    pass


class Malformed(ValueError):
    pass


def _depth_ok(body: bytes, limit: int) -> bool:
    """Whether JSON ``body`` nests at most ``limit`` levels (strings skipped)."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:       # backslash
                escaped = True
            elif byte == 0x22:       # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):   # [ {
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def parse_json(body: bytes) -> Any:
    """Any JSON value within the depth and field limits (ValueError past them or if not JSON)."""
    if not _depth_ok(body, MAX_DEPTH):
        raise Malformed(f"the JSON body nests deeper than {MAX_DEPTH} levels")
    fields = [0]

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        fields[0] += len(items)
        if fields[0] > MAX_FIELDS:
            raise Malformed(f"the JSON body has more than {MAX_FIELDS} fields")
        return dict(items)

    try:
        return json.loads(body, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        raise Malformed(str(exc) if isinstance(exc, Malformed) else "the body is not JSON") from None


def _json_object(body: bytes) -> dict[str, Any]:
    data = parse_json(body or b"{}")
    if not isinstance(data, dict):
        raise Malformed("the JSON body is not an object")
    inner = data.get("json_request")
    if isinstance(inner, str):
        data = {**data, **_json_object(inner.encode("utf-8"))}
    return data


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, streamed and counted; BodyTooLarge past ``limit`` (Content-Length first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def too_large() -> JSONResponse:
    """The answer to a body past :data:`MAX_BODY`."""
    return JSONResponse({"error": f"the body is larger than {MAX_BODY} bytes"}, status_code=413)


def client_gone() -> JSONResponse:
    """The answer (nobody reads it) when the client went away while sending the body."""
    return JSONResponse({"error": "the client went away"}, status_code=400)


async def never_a_5xx(receive: Callable[[Request], Awaitable[JSONResponse]], request: Request, *,
                      log_event: str, malformed: Callable[[], None]) -> JSONResponse:
    """``receive(request)``, with any unexpected error logged (its type only: the request
    is not trusted), counted by ``malformed()`` and answered 400: never a 5xx for what a
    client sent."""
    try:
        return await receive(request)
    except Exception as exc:  # noqa: BLE001 - never a 5xx for what a client sent
        log.warning(log_event, error=type(exc).__name__)
        malformed()
        return JSONResponse({"error": "bad request"}, status_code=400)


class HintWindow:
    """At most ``per_minute`` hints in any sliding minute; ``clock`` is monotonic seconds.
    Not thread-safe: a receiver runs on the web server's event loop."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._sent: list[float] = []

    def take(self, wanted: int) -> int:
        """How many of ``wanted`` hints may go now (0 to ``wanted``); those are counted."""
        now = self.clock()
        self._sent = [t for t in self._sent if now - t < 60]
        taken = max(0, min(wanted, self.per_minute - len(self._sent)))
        self._sent += [now] * taken
        return taken


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and body.strip().startswith(b"{")):
        return _json_object(body)
    if not body:
        return {}
    try:
        text = body.decode("utf-8")
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the form body is not UTF-8 key=value pairs (or has too many fields)") from None


class EventReceiver:
    """The ``/events/okitoki`` endpoint of one daemon."""

    def __init__(self, token: str | None, hint: Any, metrics: Any, *, hints_per_minute: int = 30,
                 clock: Any = time.monotonic) -> None:
        self.token, self.hint, self.metrics = token, hint, metrics
        self.window = HintWindow(hints_per_minute, clock)
        self._recent: OrderedDict[str, None] = OrderedDict()

    def _count(self, result: str) -> None:
        self.metrics.events.labels(result=result).inc()

    def _authorised(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), (self.token or "").encode())

    async def handle(self, request: Request) -> JSONResponse:
        return await never_a_5xx(self._receive, request, log_event="webhook_error",
                                 malformed=lambda: self._count("malformed"))

    async def _receive(self, request: Request) -> JSONResponse:
        if not self.token:
            return JSONResponse({"error": "the event receiver is off: set okitoki.webhook_token"},
                                status_code=404)
        params: dict[str, Any] = dict(request.query_params)
        auth = request.headers.get("authorization", "")
        outside = str(params.get("token") or auth.removeprefix("Bearer ").strip() or "")
        if outside and not self._authorised(outside):
            return self._unauthorised(request)
        if request.method == "POST":
            try:
                body = await read_body(request)
                params.update(parse_body(body, request.headers.get("content-type", "")))
            except BodyTooLarge:
                self._count("too_large")
                return too_large()
            except Malformed as exc:
                self._count("malformed")
                return JSONResponse({"error": str(exc) if outside else "malformed body"}, status_code=400)
            except ClientDisconnect:
                return client_gone()
        if not outside and not self._authorised(str(params.get("token") or "")):
            return self._unauthorised(request)
        event = str(params.get("event") or "")
        session_id = str(params.get("session_id") or "").strip()
        if event and not event.lower().startswith("call"):
            self._count("ignored")
            return JSONResponse({"accepted": False, "reason": f"event {event[:40]!r} is not a call event"},
                                status_code=202)
        if not session_id:
            self._count("ignored")
            return JSONResponse({"accepted": False, "reason": "no session_id"}, status_code=202)
        if not session_id.isdigit() or len(session_id) > 20:
            self._count("malformed")
            return JSONResponse({"error": "session_id must be an integer"}, status_code=400)
        return self._hint(session_id, event)

    def _unauthorised(self, request: Request) -> JSONResponse:
        self._count("unauthorized")
        log.warning("webhook_unauthorized", client=request.client.host if request.client else None)
        return JSONResponse({"error": "wrong or missing token"}, status_code=401)

    def _hint(self, session_id: str, event: str) -> JSONResponse:
        if session_id in self._recent:
            self._count("duplicate")
            return JSONResponse({"accepted": False, "reason": "already hinted"}, status_code=202)
        if not self.window.take(1):
            self._count("dropped")
            return JSONResponse({"accepted": False, "reason": "too many hints this minute; the call "
                                 "arrives with the call-log walk"}, status_code=202)
        self._recent[session_id] = None
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        self._count("hint")
        log.info("webhook_call_event", oki_event=event or None, session_id=session_id)
        self.hint(session_id)
        return JSONResponse({"accepted": True, "session_id": session_id}, status_code=202)
