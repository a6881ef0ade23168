"""The Oki-Toki operations the client uses, as read from the shipped profile, and the
``[okitoki.endpoints]`` short form for paths.

The whole profile (paths, methods, variable names, answer fields, paging, dates) is data:
``profile.toml`` next to this module, overridable by a user's file (see :mod:`.profile`).
:data:`ENDPOINTS` is the shipped profile's operations; any path can also be replaced in the
configuration::

    [okitoki.endpoints]
    call_log = "/api/v1/calls/log"

``form`` pins how an endpoint's variables travel: ``"plain"`` (query string for GET, form
body for POST), ``"json_request"`` (all variables as one JSON string in the variable
``json_request``), or ``None`` to follow the client's ``form`` setting (the default for all).
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping


__all__ = [
    "Endpoint",
    "ENDPOINTS",
    "OPERATIONS",
    "Form",
    "PROFILE_FILE",
    "endpoint_from_table",
    "validate_overrides",
]

Form = Literal["plain", "json_request"]
PROFILE_FILE = Path(__file__).with_name("profile.toml")


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
    # syncd's name → Oki-Toki's: variables sent, answer fields, fields of each record, paging
    # (page, per_page: variables; pages, items: answer fields). Field paths may be dotted.
    params: Mapping[str, str] = field(default_factory=dict, compare=False)
    response: Mapping[str, str] = field(default_factory=dict, compare=False)
    record: Mapping[str, str] = field(default_factory=dict, compare=False)
    paging: Mapping[str, str] = field(default_factory=dict, compare=False)
    date_format: str | None = None          # None: the profile's [dates] format
    answer_date_format: str | None = None


def endpoint_from_table(operation: str, table: Mapping[str, Any]) -> Endpoint:
    """One ``[operations.<op>]`` table of a (validated) profile → Endpoint."""
    form = table.get("form", "auto")
    paging = dict(table.get("paging") or {})
    return Endpoint(
        operation=operation, method=table["method"], path=table["path"], paged=bool(paging),
        confirmed=bool(table.get("confirmed", False)),
        form=None if form == "auto" else form, max_items=table.get("max_items"),
        idempotent=bool(table.get("idempotent", True)),
        params=dict(table.get("params") or {}), response=dict(table.get("response") or {}),
        record=dict(table.get("record") or {}), paging=paging,
        date_format=table.get("date_format"), answer_date_format=table.get("answer_date_format"))


def _shipped() -> dict[str, Endpoint]:
    with PROFILE_FILE.open("rb") as handle:
        operations = tomllib.load(handle)["operations"]
    return {op: endpoint_from_table(op, table) for op, table in operations.items()}


# The shipped profile (profile.toml), one entry per operation.
ENDPOINTS: dict[str, Endpoint] = _shipped()
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
