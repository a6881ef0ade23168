"""What the CLI prints: a readable rendering and plain-words errors (JSON-safe conversion is
:func:`syncd.jsonable.jsonable`, re-exported here).

Everything here returns text; the caller redacts it before printing.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    AuthenticationError,
    BudgetExhausted,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    RemoteError,
    RetriableRemoteError,
)
from .jsonable import jsonable

__all__ = ["jsonable", "render", "explain_remote_error", "OKITOKI_RIGHTS_HINT"]

OKITOKI_RIGHTS_HINT = (
    "give the token's user the rights syncd needs in Oki-Toki: the dialers (add and remove "
    "tasks), the lists (blacklist), the CRM contacts and the call log; receiving event "
    'webhooks also needs "Manage external resources, integrations and events"')


def render(value: Any, indent: int = 0) -> str:
    """A readable, indented rendering of a JSON-like value (for the console)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return f"{pad}(none)"
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(render(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return f"{pad}(none)"
        if all(not isinstance(v, (dict, list)) for v in value):
            return "\n".join(f"{pad}- {_scalar(v)}" for v in value)
        blocks = []
        for item in value:
            text = render(item, indent + 1)
            blocks.append(f"{pad}- {text.lstrip()}")
        return "\n".join(blocks)
    return f"{pad}{_scalar(value)}"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return "(none)"
    return str(value)


def explain_remote_error(exc: RemoteError) -> str:
    """One line saying what the remote refused and what a person should do about it."""
    okitoki = exc.system == "okitoki"
    who = "Oki-Toki" if okitoki else (f"the CRM ({exc.system})" if exc.system else "the remote")
    op = f" for {exc.operation}" if exc.operation else ""
    if isinstance(exc, AuthenticationError):
        if okitoki:
            return (f"Oki-Toki refused the API token{op} (HTTP 401): the token is wrong or was "
                    "revoked (Oki-Toki also answers 401 when the object a request names does not "
                    "exist); create a token in the user's profile, Security, and point "
                    "okitoki.api_token_file at it")
        return (f"{who} refused the credentials{op} (HTTP 401): check the token or key in "
                "[crm.options] and that it has not expired or been revoked")
    if isinstance(exc, PermissionDenied):
        if okitoki:
            return f"Oki-Toki accepted the token but its user lacks a right{op} (HTTP 403): {OKITOKI_RIGHTS_HINT}"
        return (f"{who} accepted the credentials but its user lacks a permission{op} (HTTP 403): "
                "allow it to read and write contacts (and calls/activities if calls go to the CRM)")
    if isinstance(exc, (NotFound, MethodNotAllowed)):
        where = "okitoki.url or [okitoki.endpoints]" if okitoki else "the URL in [crm.options]"
        return f"{who} has no such endpoint{op} (HTTP {exc.status}): check {where}"
    if isinstance(exc, BudgetExhausted):
        return f"{who}: the daily request budget is spent; it resets at midnight UTC"
    if isinstance(exc, RetriableRemoteError):
        return f"{who} is unreachable or failing{op}: {exc.message} (try again later)"
    return str(exc)
