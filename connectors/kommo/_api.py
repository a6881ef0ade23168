"""amoCRM/Kommo API v4 transport: bearer auth (long-lived token or rotating OAuth2), errors.

Errors are RFC 7807-style bodies (``{"title", "status", "detail"}``); a write array that has
one invalid entity fails as a whole with 400 and ``validation-errors`` naming each bad entity's
``request_id`` (https://developers.kommo.com/reference/errors). :func:`check_response` maps
them; :func:`rejected_request_ids` reads the per-entity failures back from the error.
Lists answer ``204 No Content`` when empty.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from syncd.errors import (
    AuthenticationError,
    InvalidRequest,
    PermissionDenied,
    Throttled,
)
from syncd.http import RemoteSystem, parse_retry_after
from syncd.redact import redact

from .._oauth import OAuthSession, bearer

__all__ = ["KommoApi", "check_response", "rejected_request_ids", "THROTTLE_WAIT"]

THROTTLE_WAIT = timedelta(seconds=1)   # Kommo's 429 carries no Retry-After (limits are per second)
_SEP = " · "


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def check_response(response: httpx.Response, operation: str) -> None:
    """Map Kommo's status codes and problem bodies to :mod:`syncd.errors`."""
    status = response.status_code
    if status < 400:
        return
    body = _body(response)
    detail = redact(str(body.get("detail") or body.get("title") or response.reason_phrase or ""))
    kw: dict[str, Any] = dict(system="crm", operation=operation, status=status)
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After")) or THROTTLE_WAIT
        raise Throttled(detail or "too many requests", retry_after=wait, **kw)
    if status == 401:
        raise AuthenticationError(detail or "unauthorized",
                                  hint="the token is wrong, expired or was revoked", **kw)
    if status == 403:
        raise PermissionDenied(detail or "forbidden",
                               hint="the user lacks a right, or Kommo blocked the integration "
                                    "for exceeding its request limits", **kw)
    if status == 400 and isinstance(body.get("validation-errors"), list):
        field_errors: dict[str, list[str]] = {}
        for entity in body["validation-errors"]:
            rid = str((entity or {}).get("request_id", ""))
            for err in (entity or {}).get("errors") or []:
                key = f"{rid}{_SEP}{err.get('path', '')}"
                field_errors.setdefault(key, []).append(
                    redact(f"{err.get('code', '')}: {err.get('detail', '')}"))
        raise InvalidRequest(detail or "validation failed", field_errors=field_errors, **kw)
    # other 4xx and 5xx: the shared mapping (InvalidRequest / TransientError)


def rejected_request_ids(error: InvalidRequest) -> dict[str, str]:
    """request_id → reason for each entity a 400 ``validation-errors`` answer named."""
    out: dict[str, str] = {}
    for key, messages in error.field_errors.items():
        rid, _, path = key.partition(_SEP)
        reason = f"{path}: {', '.join(messages)}" if path else ", ".join(messages)
        out[rid] = f"{out[rid]}; {reason}" if rid in out else reason
    return out


class KommoApi:
    """GET/POST/PATCH against ``/api/v4`` with the current bearer token."""

    def __init__(self, remote: RemoteSystem, *, token: str | None = None,
                 oauth: OAuthSession | None = None) -> None:
        self.remote = remote
        self.token = token
        self.oauth = oauth

    def request(self, method: str, path: str, *, operation: str, idempotent: bool = True,
                **kwargs: Any) -> httpx.Response:

        def send(token: str) -> httpx.Response:
            return self.remote.request(method, path, operation=operation, headers=bearer(token),
                                       idempotent=idempotent, **kwargs)

        if self.oauth is not None:
            return self.oauth.call(send)
        return send(self.token or "")

    def json(self, method: str, path: str, *, operation: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON body ({} for 204 No Content); InvalidRequest if it is not an object."""
        response = self.request(method, path, operation=operation, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise InvalidRequest("the answer is not JSON", system="crm", operation=operation)
        if not isinstance(body, dict):
            raise InvalidRequest("the answer is not a JSON object", system="crm", operation=operation)
        return body
