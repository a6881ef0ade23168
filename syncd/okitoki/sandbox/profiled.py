"""Serving a given API profile: the sandbox's routes, methods, names and dates follow it.

The operations in :mod:`.api` speak the shipped profile's names. For another profile
(``syncd sandbox --profile PATH``) each one is wrapped at the edge: variables arrive under the
profile's names and in its date format and are renamed to the shipped ones; the answer's
fields, its records' fields and their dates are renamed and formatted the profile's way; 422
field errors name the profile's variables. So a client configured with the same file talks to
it as to the shipped sandbox, and a client with another profile meets the mismatches a real
account would show (404 path, 405 method, renamed fields, other dates, other paging).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Mapping

from ..endpoints import ENDPOINTS
from ..profile import DATE_FIELDS, DATE_PARAMS, Profile, format_date, parse_date
from . import dates
from .api import OPERATIONS
from .gateway import Handler, Operation
from .problems import ApiProblem, invalid

if TYPE_CHECKING:
    from .entities import Company, User
    from .runtime import Sandbox

__all__ = ["Routes", "routes", "SHIPPED_ROUTE"]

# path → (the sandbox's operation name, as journals and faults know it; the operation)
Routes = dict[str, tuple[str, Operation]]
API_PREFIX = "/api/v1/"
# syncd operation → the key of its handler in .api.OPERATIONS (its shipped path)
SHIPPED_ROUTE = {op: e.path[len(API_PREFIX):] for op, e in ENDPOINTS.items()}


def routes(profile: Profile | None = None) -> Routes:
    """The route table for ``profile`` (None: the shipped profile, served as written)."""
    table: Routes = {}
    if profile is None:
        for name, operation in OPERATIONS.items():
            table[API_PREFIX + name] = (name, operation)
        return table
    for op, endpoint in profile.operations.items():
        name = SHIPPED_ROUTE[op]
        methods, handler = OPERATIONS[name]
        if endpoint.method not in methods:
            methods = frozenset({endpoint.method})
        table[endpoint.path] = (name, (methods, _wrap(profile, op, handler)))
    return table


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    *heads, last = path.split(".")
    for head in heads:
        obj = obj.setdefault(head, {})
    obj[last] = value


def _reverse(mapping: Mapping[str, str]) -> dict[str, str]:
    return {wire: name for name, wire in mapping.items()}


def _wrap(profile: Profile, op: str, handler: Handler) -> Handler:
    endpoint = profile.operations[op]
    inbound = _reverse({**endpoint.params, **{k: v for k, v in endpoint.paging.items()
                                              if k in ("page", "per_page")}})
    task_names = _reverse(profile.operations["create_task"].params)
    outbound = {name: wire for wire, name in inbound.items()}
    renamed = {name for wire, name in inbound.items() if wire != name}
    request_fmt = profile.request_format(op)

    def local_date(value: Any, wire: str, company: "Company") -> str:
        try:
            moment = parse_date(value, request_fmt, profile.zone(company.timezone))
        except (ValueError, TypeError):
            raise invalid({wire: [f"must be a date as {request_fmt}"]}) from None
        return dates.format_local(int(moment.timestamp()), company.timezone)  # type: ignore[return-value]

    def served(sb: "Sandbox", params: dict[str, Any], user: "User", company: "Company") -> dict[str, Any]:
        # a variable under a name this profile renamed is unknown here, so ignored (as a
        # real server ignores variables it does not know)
        shipped = {inbound.get(k, k): v for k, v in params.items() if k in inbound or k not in renamed}
        for name in DATE_PARAMS.get(op, ()):
            if shipped.get(name) not in (None, ""):
                shipped[name] = local_date(shipped[name], endpoint.params.get(name, name), company)
        if op == "add_tasks":
            shipped["tasks"] = _tasks(shipped.get("tasks"), task_names, profile, company, local_date)
        try:
            result = handler(sb, shipped, user, company)
        except ApiProblem as problem:
            problem.errors = {outbound.get(k, k): v for k, v in problem.errors.items()}
            raise
        return _answer(profile, op, result, company)

    return served


def _tasks(raw: Any, names: dict[str, str], profile: Profile, company: "Company", local_date: Any) -> Any:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return raw
    if not isinstance(raw, list):
        return raw
    out = []
    for task in raw:
        if isinstance(task, dict):
            task = {names.get(k, k): v for k, v in task.items()}
            if task.get("date") not in (None, ""):
                wire = profile.operations["create_task"].params.get("date", "date")
                task["date"] = local_date(task["date"], wire, company)
        out.append(task)
    return out


def _answer(profile: Profile, op: str, result: Any, company: "Company") -> Any:
    endpoint = profile.operations[op]
    zone = profile.zone(company.timezone)
    fmt = profile.answer_format(op)

    def record(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        out = {k: v for k, v in item.items() if k not in endpoint.record}
        for name, wire in endpoint.record.items():
            if name in item:
                value = item[name]
                if name in DATE_FIELDS.get(op, ()) and value not in (None, ""):
                    seconds = value if isinstance(value, (int, float)) else dates.parse_local(value, company.timezone)
                    value = format_date(_instant(seconds), fmt, zone)
                _set_path(out, wire, value)
        return out

    if op == "dialers" and isinstance(result, dict):
        return {key: record(value) for key, value in result.items()}
    if endpoint.paging:
        shipped = ENDPOINTS[op].paging
        out = {k: v for k, v in result.items() if k not in (shipped["items"], shipped["pages"])}
        _set_path(out, endpoint.paging["items"], [record(x) for x in result[shipped["items"]]])
        _set_path(out, endpoint.paging["pages"], result[shipped["pages"]])
        return out
    if endpoint.record:
        return record(result)
    out = {k: v for k, v in result.items() if k not in endpoint.response}
    for name, wire in endpoint.response.items():
        if name in result:
            _set_path(out, wire, result[name])
    return out


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
