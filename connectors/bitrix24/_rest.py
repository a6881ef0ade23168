"""Bitrix24 REST transport: authentication, vendor error bodies, and ``batch``.

Two ways in (https://apidocs.bitrix24.com/local-integrations/local-webhooks.html and
.../oauth/index.html):

* inbound webhook ``https://<portal>/rest/<user_id>/<secret>/`` — the secret segment is a
  credential and is registered for redaction;
* OAuth2: ``https://<portal>/rest/<method>.json`` with ``auth=<access token>`` in the body; the
  refresh token rotates on every refresh and is kept by :mod:`connectors._oauth`.

Every method is called as ``POST <method>.json`` with a JSON body. Errors arrive as
``{"error": CODE, "error_description": text}`` and are mapped by :func:`check_response`;
``batch`` (≤ 50 commands, ``halt=0``) reports per-command errors as :class:`CommandError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Iterable
from urllib.parse import urlencode

import httpx
import structlog

from syncd.batches import chunks
from syncd.errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RemoteError,
    Throttled,
)
from syncd.http import RemoteSystem
from syncd.redact import redact

from .._oauth import OAuthSession

__all__ = ["Bitrix24Rest", "CommandError", "check_response", "php_query", "BATCH_LIMIT"]

log = structlog.get_logger()

BATCH_LIMIT = 50
LEAK_WAIT = timedelta(seconds=1)          # the bucket drains 2 requests a second
OPERATING_WINDOW = timedelta(minutes=10)  # a blocked method is free again within this
OPERATING_LIMIT_S = 480.0                 # summed run time of one method per 10 minutes
OPERATING_WARN_S = 0.8 * OPERATING_LIMIT_S

_AUTH = {"expired_token", "invalid_token", "NO_AUTH_FOUND", "WRONG_AUTH_TYPE", "INVALID_CREDENTIALS",
         "invalid_client", "invalid_grant", "authorization_error"}
_PERMISSION = {"insufficient_scope", "ACCESS_DENIED", "user_access_error", "PAYMENT_REQUIRED"}
_HINTS = {
    "NO_AUTH_FOUND": "the inbound webhook URL is wrong or the webhook was deleted",
    "expired_token": "the OAuth access token expired and could not be refreshed",
    "insufficient_scope": "add the missing scope (crm, telephony) to the webhook or app",
    "ACCESS_DENIED": "the webhook's user lacks a CRM right (contacts: read/edit)",
}


@dataclass(frozen=True)
class CommandError:
    """One failed command of a ``batch`` (the others went through)."""

    code: str
    description: str

    @property
    def retriable(self) -> bool:
        return self.code in ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "INTERNAL_SERVER_ERROR")

    def __str__(self) -> str:
        return redact(f"{self.code or 'error'}: {self.description}".strip(": "))


def _error_body(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return "", "", {}
    if not isinstance(body, dict):
        return "", "", {}
    return str(body.get("error") or ""), str(body.get("error_description") or ""), body


def operating_retry_after(body: dict[str, Any], now: datetime | None = None) -> timedelta:
    """How long a method blocked for operating time stays blocked (``time.operating_reset_at``)."""
    reset_at = (body.get("time") or {}).get("operating_reset_at")
    if isinstance(reset_at, (int, float)):
        now = now or datetime.now(UTC)
        return max(timedelta(seconds=1), datetime.fromtimestamp(reset_at, UTC) - now)
    return OPERATING_WINDOW


def check_response(response: httpx.Response, operation: str) -> None:
    """Map Bitrix24's error bodies to :mod:`syncd.errors` (503 may mean throttling)."""
    code, description, body = _error_body(response)
    if not code:
        return  # plain HTTP mapping by the shared layer
    kw: dict[str, Any] = dict(system="crm", operation=operation, status=response.status_code)
    text = redact(f"{code}: {description}" if description else code)
    if code == "QUERY_LIMIT_EXCEEDED":
        raise Throttled(text, retry_after=LEAK_WAIT, **kw)
    if code == "OPERATION_TIME_LIMIT":
        raise Throttled(text, retry_after=operating_retry_after(body), **kw)
    if code in _AUTH:
        raise AuthenticationError(text, hint=_HINTS.get(code), **kw)
    if code in _PERMISSION:
        raise PermissionDenied(text, hint=_HINTS.get(code), **kw)
    if code in ("ERROR_METHOD_NOT_FOUND", "NOT_FOUND"):
        raise NotFound(text, **kw)
    if response.status_code >= 500:
        return  # the shared layer makes it a TransientError
    if response.status_code >= 400:
        raise InvalidRequest(text, **kw)


def php_query(params: dict[str, Any]) -> str:
    """PHP ``http_build_query`` (nested ``a[b][0]=v``): the form of a ``batch`` command."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(value, bool):
            pairs.append((prefix, "1" if value else "0"))
        else:
            pairs.append((prefix, "" if value is None else str(value)))

    walk("", params)
    return urlencode(pairs)


class Bitrix24Rest:
    """Calls Bitrix24 REST methods through the shared :class:`RemoteSystem`."""

    def __init__(self, remote: RemoteSystem, oauth: OAuthSession | None = None) -> None:
        self.remote = remote
        self.oauth = oauth
        self._warned: set[str] = set()

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             idempotent: bool = True) -> dict[str, Any]:
        """One method; returns the whole answer (``result``, ``next``, ``total``, ``time``).

        ``idempotent=False`` (creates): an ambiguous failure (timeout, 5xx) is raised at once
        instead of being retried, so the caller can look the record up first.
        """
        params = dict(params or {})
        operation = f"bitrix24 {method}"

        def send(token: str | None) -> httpx.Response:
            body = {**params, "auth": token} if token else params
            return self.remote.request("POST", f"{method}.json", operation=operation, json=body,
                                       idempotent=idempotent)

        response = self.oauth.call(send) if self.oauth else send(None)
        try:
            answer = response.json()
        except ValueError:
            raise InvalidRequest("the answer is not JSON", system="crm", operation=operation)
        if not isinstance(answer, dict) or "result" not in answer:
            raise InvalidRequest("the answer has no result", system="crm", operation=operation)
        self._watch_operating(method, answer.get("time"))
        return answer

    def _watch_operating(self, method: str, timing: Any) -> None:
        """Warn (once per method) when a method nears the 480 s / 10 min operating limit."""
        operating = timing.get("operating") if isinstance(timing, dict) else None
        if isinstance(operating, (int, float)) and operating > OPERATING_WARN_S:
            if method not in self._warned:
                self._warned.add(method)
                log.warning("bitrix24.operating_time_high", method=method, operating_s=round(operating, 1),
                            limit_s=OPERATING_LIMIT_S)
        elif method in self._warned and isinstance(operating, (int, float)):
            self._warned.discard(method)

    def batch(self, commands: Iterable[tuple[str, str, dict[str, Any]]], *,
              idempotent: bool = True) -> dict[str, Any | CommandError]:
        """Run ``(name, method, params)`` commands, 50 per ``batch`` request with ``halt=0``.

        Returns name → result, or a :class:`CommandError` for commands that failed alone.
        Failures of the request as a whole (auth, throttling after retries) raise.
        """
        commands = list(commands)
        out: dict[str, Any | CommandError] = {}
        for chunk in chunks(commands, BATCH_LIMIT):
            cmd = {name: f"{method}?{php_query(params)}" for name, method, params in chunk}
            answer = self.call("batch", {"halt": 0, "cmd": cmd}, idempotent=idempotent)["result"]
            results = answer.get("result") or {}
            errors = answer.get("result_error") or {}
            for name, _, _ in chunk:
                if isinstance(errors, dict) and name in errors:
                    err = errors[name] or {}
                    out[name] = CommandError(str(err.get("error") or ""), str(err.get("error_description") or ""))
                elif isinstance(results, dict) and name in results:
                    out[name] = results[name]
                else:
                    out[name] = CommandError("NO_RESULT", "the batch returned nothing for this command")
        return out


def command_error(error: RemoteError | CommandError) -> str:
    """A readable, redacted reason for a WriteResult."""
    return redact(str(error))


def webhook_parts(url: str) -> tuple[str, str]:
    """``https://p/rest/1/abc/`` → (the URL with a trailing slash, the secret segment)."""
    parts = httpx.URL(url).path.strip("/").split("/")
    if len(parts) < 3 or parts[-3] != "rest" or not parts[-2].isdigit():
        raise ConfigError("crm.options.webhook_url: must look like https://<portal>/rest/<user_id>/<secret>/")
    return url.rstrip("/") + "/", parts[-1]


