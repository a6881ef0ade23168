"""The one table of Oki-Toki endpoints the client uses, and its configuration overrides.

Each operation has a method, a path under the account's base URL, whether it is paged, and
whether its path is *confirmed* by Oki-Toki's public documentation or *provisional* (our
reconstruction, see ``okitoki-api.md``). Any path can be replaced in the configuration::

    [okitoki.endpoints]
    call_log = "/api/v1/calls/log"

so a user who sees the real documentation adapts the daemon without a code change.

``form`` pins how an endpoint's variables travel: ``"plain"`` (query string for GET, form
body for POST), ``"json_request"`` (all variables as one JSON string in the variable
``json_request``), or ``None`` to follow the client's ``form`` setting (the default for all).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Literal, Mapping

from ..errors import ConfigError

__all__ = [
    "Endpoint",
    "ENDPOINTS",
    "OPERATIONS",
    "Form",
    "validate_overrides",
    "resolve_endpoints",
]

Form = Literal["plain", "json_request"]


@dataclass(frozen=True)
class Endpoint:
    """One operation of the Oki-Toki API as this client calls it."""

    operation: str
    method: Literal["GET", "POST"]
    path: str
    paged: bool = False
    confirmed: bool = False         # True: documented by Oki-Toki; False: provisional (P)
    form: Form | None = None        # None: the client's form setting
    max_items: int | None = None    # largest batch one request may carry
    # False: repeating a request that may have been performed makes a second record, so a
    # timeout / 5xx / garbled answer is not retried blindly (the outbox looks up first).
    idempotent: bool = True


def _ep(operation: str, method: Literal["GET", "POST"], path: str, **kw: object) -> Endpoint:
    return Endpoint(operation, method, path, **kw)  # type: ignore[arg-type]


# The profile table of okitoki-api.md, one row per operation.
ENDPOINTS: dict[str, Endpoint] = {e.operation: e for e in (
    _ep("create_task", "POST", "/api/v1/dialers/create_task", confirmed=True, max_items=5,
        idempotent=False),
    _ep("add_tasks", "POST", "/api/v1/imports/tasks/add", max_items=1000, idempotent=False),
    _ep("remove_task", "POST", "/api/v1/dialers/delete_task"),
    _ep("dialers", "GET", "/api/v1/dialers/stat", confirmed=True),
    _ep("list_add", "POST", "/api/v1/lists/add", confirmed=True),
    _ep("list_check", "GET", "/api/v1/lists/check"),
    _ep("list_remove", "POST", "/api/v1/lists/remove"),
    _ep("upsert_contact", "POST", "/api/v1/contacts/add-update", idempotent=False),  # creates
    _ep("export_contacts", "GET", "/api/v1/contacts/export", paged=True, max_items=1000),
    _ep("call_log", "GET", "/api/v1/calls/log", paged=True, max_items=1000),
    _ep("call_data", "GET", "/api/v1/calls/data"),
    _ep("add_call_data", "POST", "/api/v1/calls/data/add"),
)}

OPERATIONS: tuple[str, ...] = tuple(ENDPOINTS)


def validate_overrides(overrides: Mapping[str, object]) -> list[str]:
    """Problems of an ``[okitoki.endpoints]`` mapping, one line each (empty list: valid).

    Each line names the key (``okitoki.endpoints.<op>``) so the config loader can print it.
    """
    problems: list[str] = []
    for op, path in overrides.items():
        key = f"okitoki.endpoints.{op}"
        if op not in ENDPOINTS:
            close = difflib.get_close_matches(str(op), OPERATIONS, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            problems.append(f'{key}: unknown operation "{op}"{hint}; '
                            f"valid operations: {', '.join(OPERATIONS)}")
            continue
        if not isinstance(path, str):
            problems.append(f"{key}: must be a path string such as \"{ENDPOINTS[op].path}\"")
        elif not path.startswith("/") or any(c.isspace() for c in path) or "?" in path:
            problems.append(f'{key}: "{path}" is not a path; write it like '
                            f'"{ENDPOINTS[op].path}" (leading "/", no spaces, no query)')
    return problems


def resolve_endpoints(overrides: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """The endpoint table with ``overrides`` (operation → path) applied.

    Raises ``ConfigError`` listing every problem (unknown operations name the valid ones).
    """
    overrides = dict(overrides or {})
    problems = validate_overrides(overrides)
    if problems:
        raise ConfigError(problems)
    table = dict(ENDPOINTS)
    for op, path in overrides.items():
        table[op] = replace(table[op], path=path)
    return table
