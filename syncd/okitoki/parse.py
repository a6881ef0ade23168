"""Checking Oki-Toki responses: every answer becomes a JSON body or one taxonomy error.

:func:`make_check` builds the ``check`` hook of :class:`syncd.http.RemoteSystem`, which sees
every response before anything else, so the errors below are journaled and retried (or not)
by the shared layer:

=====================================  ===================================================
answer                                 error
=====================================  ===================================================
401                                    AuthenticationError (token wrong / object missing)
403                                    PermissionDenied (the rights the token's user needs)
404                                    NotFound (base URL or ``[okitoki.endpoints] <op>``)
405                                    MethodNotAllowed
422 and other 4xx                      InvalidRequest with the body's field errors
429                                    Throttled with ``Retry-After`` (seconds or HTTP date)
5xx                                    TransientError
200 with ``error`` / result "error"    the class of the code inside; InvalidRequest if it
                                       lists field errors; else TransientError
2xx non-JSON, HTML, truncated JSON     TransientError ("malformed response")
3xx (a redirect)                       NotFound (wrong scheme or host in ``[okitoki] url``)
=====================================  ===================================================

Messages name the operation and the HTTP status and are passed through
:func:`syncd.redact.redact`, so the API token never appears in them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Callable

import httpx

from ..errors import (
    AuthenticationError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    RemoteError,
    Throttled,
    TransientError,
)
from ..http import parse_retry_after
from ..redact import redact

__all__ = ["SYSTEM", "HINTS", "make_check", "body_of", "hint_for"]

SYSTEM = "okitoki"

HINTS: dict[int, str] = {
    401: "the api_token is wrong, or the object the request names does not exist",
    403: ('the token\'s user needs the "Manage users" right, and "Manage external resources, '
          'integrations and events" for integrations and webhooks'),
    404: "check [okitoki] url (the account's base URL) or the endpoint override "
         "[okitoki.endpoints] {operation} (profile key operations.{operation}.path; "
         "`syncd probe` checks every path)",
    405: "the endpoint refused this HTTP method; check the endpoint override "
         "[okitoki.endpoints] {operation} (profile key operations.{operation}.method)",
}

_BODY_KEY = "syncd.okitoki.body"   # where the decoded JSON is kept on the response


def hint_for(status: int, operation: str) -> str | None:
    hint = HINTS.get(status)
    return hint.format(operation=operation) if hint else None


def body_of(response: httpx.Response) -> Any:
    """The JSON body decoded by the check hook (decoded again if the hook did not run)."""
    if _BODY_KEY in response.extensions:
        return response.extensions[_BODY_KEY]
    return response.json()


def _decode(response: httpx.Response) -> tuple[Any, str | None]:
    """(body, None) for JSON; (None, why) when the body is not usable JSON."""
    raw = response.content
    # JSON is UTF-8 (RFC 8259) unless the answer names a charset; httpx's own reading of the
    # Content-Type (``response.encoding``) costs more than the decoding, so only then.
    declared = "charset=" in response.headers.get("content-type", "").lower()
    text = raw.decode((response.encoding if declared else None) or "utf-8", errors="replace").strip()
    if not text:
        return None, "empty body"
    if text[:1] == "<":
        return None, "an HTML page instead of JSON"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        # A body cut off in transit fails at (or just before) its very end.
        if text[:1] in "{[" and (exc.pos >= len(text) - 1 or exc.msg.startswith("Unterminated")):
            return None, f"truncated JSON ({len(raw)} bytes)"
        return None, f"not JSON ({exc.msg} at character {exc.pos})"


def _field_errors(body: Any) -> dict[str, list[str]]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, dict):
        return {}
    return {str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in errors.items()}


def _message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("text") or json.dumps(err)[:300])
    for key in ("message", "error", "error_description", "msg"):
        value = body.get(key)
        if value not in (None, "", True):
            return str(value)
    return None


def _embedded_code(body: dict[str, Any]) -> int | None:
    err = body.get("error")
    for holder in (err if isinstance(err, dict) else {}, body):
        for key in ("code", "status", "error_code"):
            value = holder.get(key)
            try:
                code = int(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            if 400 <= code <= 599:
                return code
    return None


_CLASSES: dict[int, type[RemoteError]] = {
    401: AuthenticationError, 403: PermissionDenied, 404: NotFound, 405: MethodNotAllowed,
}


def _error(code: int, status: int, operation: str, message: str, *, body: Any,
           response: httpx.Response, now: datetime, system: str) -> RemoteError:
    kw: dict[str, Any] = dict(system=system, operation=operation, status=status,
                              hint=hint_for(code, operation), field_errors=_field_errors(body))
    message = redact(message)
    if code == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return Throttled(message, retry_after=retry_after, **kw)
    if code >= 500:
        return TransientError(message, **kw)
    return _CLASSES.get(code, InvalidRequest)(message, **kw)


def make_check(system: str = SYSTEM, now: Callable[[], datetime] | None = None,
               ) -> Callable[[httpx.Response, str], None]:
    """The ``check`` hook for Oki-Toki; ``now`` is the clock HTTP-date Retry-After is read with."""
    clock = now or (lambda: datetime.now(UTC))

    def check(response: httpx.Response, operation: str) -> None:
        status = response.status_code
        if 300 <= status < 400:
            # Oki-Toki does not redirect API calls: a redirect means a wrong host or scheme.
            where = redact(response.headers.get("Location", "elsewhere"))
            raise NotFound(f"redirected to {where}", system=system, operation=operation,
                           status=status, hint="check [okitoki] url (scheme and host of the account)")
        body, problem = _decode(response)
        if status >= 400:
            message = _message(body) or (
                f"{response.reason_phrase or 'error'}; the body is {problem}" if problem
                else response.reason_phrase or "error")
            raise _error(status, status, operation, message, body=body,
                         response=response, now=clock(), system=system)
        if problem is not None:
            raise TransientError(f"malformed response: {problem}", system=system,
                                 operation=operation, status=status)
        if isinstance(body, dict) and (body.get("result") == "error" or body.get("error")):
            # The code inside decides; field errors mean the request itself was refused;
            # without either, treat it like a 5xx (Oki-Toki's "try again later").
            code = _embedded_code(body) or (422 if _field_errors(body) else 500)
            message = f"error in a {status} answer: {_message(body) or 'no message'}"
            raise _error(code, status, operation, message, body=body, response=response,
                         now=clock(), system=system)
        response.extensions[_BODY_KEY] = body

    return check
