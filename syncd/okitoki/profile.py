"""The Oki-Toki API profile as data: load, override, validate, and translate names and dates.

The shipped ``profile.toml`` holds every operation's path, method, variable form, variable
names, paging, answer fields and date rules. ``[okitoki] profile = "PATH"`` names a user's
file with the same keys that overrides any part of it (tables merge key by key);
``[okitoki.endpoints]`` then replaces paths. :func:`load_profile` validates the result and
raises one ``ConfigError`` naming every bad key, so a bad profile stops the daemon at start
(exit 78).

Translation is done at the edge only: the client speaks syncd's names inside and renames
variables on the way out (:func:`wire_params`) and answers on the way in (:func:`read_answer`,
:func:`read_record`). Unknown fields of a record are kept under their own names; a missing
required one is :class:`MissingField` (answer) or :class:`MissingRecordField` (one record),
both naming the operation, the field and the profile key that maps it.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, InvalidRecord, TransientError
from .dates import _local_to_utc, account_zone
from .endpoints import PROFILE_FILE, Endpoint, endpoint_from_table, validate_overrides

__all__ = [
    "Profile", "MissingField", "MissingRecordField", "load_profile", "profile_problems",
    "shipped_data", "merge", "validate", "get_path", "wire_params", "read_answer",
    "read_record", "require", "format_date", "parse_date", "REQUIRED_ANSWER", "REQUIRED_RECORD",
    "DATE_PARAMS", "DATE_FIELDS", "resolve_endpoints",
]

# What syncd cannot do without (the rest of an answer is optional and read tolerantly).
REQUIRED_ANSWER: dict[str, tuple[str, ...]] = {
    "create_task": ("task_id",), "add_tasks": ("task_ids",), "remove_task": ("deleted",),
    "list_add": ("added",), "list_check": ("exists",), "list_remove": ("removed",),
    "upsert_contact": ("contact_id",)}
REQUIRED_RECORD: dict[str, tuple[str, ...]] = {
    "call_log": ("session_id", "call_type", "stime"), "call_data": ("session_id", "call_type", "stime"),
    "export_contacts": ("id",), "dialers": ("id",)}
# Variables and record fields that are dates (formatted by the profile's date rules).
DATE_PARAMS: dict[str, tuple[str, ...]] = {
    "create_task": ("date",), "export_contacts": ("updated_from", "updated_to"),
    "call_log": ("date_from", "date_to")}
DATE_FIELDS: dict[str, tuple[str, ...]] = {
    "export_contacts": ("updated_at",), "call_log": ("stime", "etime"), "call_data": ("stime", "etime")}

_OP_KEYS = {"method", "path", "form", "confirmed", "idempotent", "max_items", "date_format",
            "answer_date_format", "params", "response", "record", "paging"}
_MAPS = ("params", "response", "record", "paging")
_PAGING = ("page", "per_page", "pages", "items")


class MissingField(TransientError):
    """An answer lacks a field syncd needs. ``key`` is the profile key that maps it."""

    def __init__(self, operation: str, field: str, wire: str, key: str) -> None:
        self.field, self.wire, self.key = field, wire, key
        super().__init__(f'malformed response: no "{wire}" in the answer ({field}; profile key '
                         f"{key})", system="okitoki", operation=operation, status=200)


class MissingRecordField(InvalidRecord):
    """One record lacks a required field; it is quarantined and the walk goes on."""

    def __init__(self, operation: str, field: str, wire: str, key: str,
                 record_id: str | None = None) -> None:
        self.operation, self.field, self.wire, self.key = operation, field, wire, key
        super().__init__(f'{operation}: record without "{wire}" ({field}; profile key {key})',
                         record_id=record_id)


@dataclass(frozen=True)
class Profile:
    """A validated profile: its operations and date rules."""

    operations: Mapping[str, Endpoint]
    date_format: str = "%d.%m.%Y %H:%M:%S"
    timezone: str = "account"          # "account": [okitoki] timezone; else an IANA zone
    source: str = "the shipped profile"

    def zone(self, account: str) -> tzinfo:
        return account_zone(account) if self.timezone == "account" else account_zone(self.timezone)

    def with_paths(self, endpoints: Mapping[str, Any]) -> "Profile":
        """This profile with ``[okitoki.endpoints]`` paths applied (ConfigError if bad)."""
        problems = validate_overrides(dict(endpoints))
        if problems:
            raise ConfigError(problems)
        ops = {op: replace(e, path=endpoints.get(op, e.path)) for op, e in self.operations.items()}
        return Profile(ops, self.date_format, self.timezone, self.source)

    def request_format(self, op: str) -> str:
        return self.operations[op].date_format or self.date_format

    def answer_format(self, op: str) -> str:
        return self.operations[op].answer_date_format or self.date_format


@lru_cache(maxsize=1)
def _shipped_cached() -> dict[str, Any]:
    with PROFILE_FILE.open("rb") as handle:
        return tomllib.load(handle)


def shipped_data() -> dict[str, Any]:
    """The shipped profile as plain data (a fresh copy)."""
    return copy.deepcopy(_shipped_cached())


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` key by key (tables recursively); returns ``base``."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _format_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return 'must be a strftime pattern such as "%d.%m.%Y %H:%M:%S", "unix" or "iso"'
    if value in ("unix", "iso"):
        return None
    if "%" not in value:
        return f'"{value}" has no % directive; use a strftime pattern, "unix" or "iso"'
    sample = datetime(2026, 3, 9, 14, 5, 7)
    try:
        if datetime.strptime(sample.strftime(value), value) != sample:
            return f'"{value}" does not keep date and time to the second'
    except ValueError as exc:
        return f'"{value}" is not a usable strftime pattern ({exc})'
    return None


def validate(data: Mapping[str, Any]) -> list[str]:
    """Problems of a merged profile, one line each, naming the key (``operations.x.y``)."""
    shipped = _shipped_cached()
    problems: list[str] = []
    for key in data:
        if key not in ("dates", "operations"):
            problems.append(f'{key}: unknown table{_suggest(key, ("dates", "operations"))}; '
                            "a profile has [dates] and [operations.<name>]")
    dates = data.get("dates", {})
    if not isinstance(dates, Mapping):
        problems.append("dates: must be a table")
        dates = {}
    for key in dates:
        if key not in ("format", "timezone"):
            problems.append(f"dates.{key}: unknown key{_suggest(key, ('format', 'timezone'))}")
    if (p := _format_problem(dates.get("format"))) is not None:
        problems.append(f"dates.format: {p}")
    zone = dates.get("timezone", "account")
    if zone != "account":
        try:
            account_zone(str(zone))
        except ConfigError:
            problems.append(f'dates.timezone: "{zone}" is neither "account" nor an IANA time zone')
    operations = data.get("operations", {})
    for op, table in operations.items():
        problems += _operation_problems(op, table, shipped["operations"])
    return problems


def _operation_problems(op: str, table: Any, shipped: Mapping[str, Any]) -> list[str]:
    key = f"operations.{op}"
    if op not in shipped:
        return [f"{key}: unknown operation{_suggest(op, shipped)}; valid: {', '.join(shipped)}"]
    if not isinstance(table, Mapping):
        return [f"{key}: must be a table"]
    problems = []
    for name, value in table.items():
        k = f"{key}.{name}"
        if name not in _OP_KEYS:
            problems.append(f"{k}: unknown key{_suggest(name, _OP_KEYS)}")
        elif name == "method" and value not in ("GET", "POST"):
            problems.append(f'{k}: must be "GET" or "POST", not {value!r}')
        elif name == "path" and (not isinstance(value, str) or not value.startswith("/")
                                 or any(c.isspace() for c in value) or "?" in value):
            problems.append(f'{k}: {value!r} is not a path (leading "/", no spaces, no query)')
        elif name == "form" and value not in ("auto", "plain", "json_request"):
            problems.append(f'{k}: must be "auto", "plain" or "json_request", not {value!r}')
        elif name in ("confirmed", "idempotent") and not isinstance(value, bool):
            problems.append(f"{k}: must be true or false")
        elif name == "max_items" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(f"{k}: must be a whole number >= 1")
        elif name in ("date_format", "answer_date_format") and (p := _format_problem(value)):
            problems.append(f"{k}: {p}")
        elif name in _MAPS:
            problems += _map_problems(k, value, shipped[op].get(name) or {}, name)
    return problems


def _map_problems(key: str, value: Any, known: Mapping[str, Any], name: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{key}: must be a table of syncd name = Oki-Toki name"]
    if name == "paging" and not known:
        return [f"{key}: this operation is not paged"]
    allowed = _PAGING if name == "paging" else tuple(known)
    problems = []
    for field, wire in value.items():
        if field not in allowed:
            what = ", ".join(allowed) or "none"
            problems.append(f"{key}.{field}: unknown name{_suggest(field, allowed)}; known: {what}")
        elif not isinstance(wire, str) or not wire.strip() or any(c.isspace() for c in wire):
            problems.append(f"{key}.{field}: must be a field name without spaces, not {wire!r}")
    return problems


def _read(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f'okitoki.profile: cannot read "{path}" ({exc.strerror})') from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f'okitoki.profile: "{path}" is not valid TOML ({exc})') from None


def profile_problems(path: str | Path | None = None,
                     endpoints: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem of the shipped profile + the file at ``path`` + ``endpoints`` overrides."""
    try:
        load_profile(path, endpoints)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def load_profile(path: str | Path | None = None,
                 endpoints: Mapping[str, Any] | None = None) -> Profile:
    """The shipped profile, overridden by the file at ``path`` and then ``endpoints``
    (operation → path). ConfigError with one line per problem, each naming its key."""
    data = shipped_data()
    where = "the shipped profile"
    if path is not None:
        merge(data, _read(path))
        where = str(path)
    problems = [f"okitoki.profile: {p} (in {where})" for p in validate(data)]
    problems += validate_overrides(dict(endpoints or {}))
    if problems:
        raise ConfigError(problems)
    for op, op_path in (endpoints or {}).items():
        data["operations"][op]["path"] = op_path
    dates = data.get("dates", {})
    return Profile(operations={op: endpoint_from_table(op, t) for op, t in data["operations"].items()},
                   date_format=dates.get("format", "%d.%m.%Y %H:%M:%S"),
                   timezone=dates.get("timezone", "account"), source=where)


# -- names --------------------------------------------------------------------------------

_MISSING = object()


def get_path(obj: Any, path: str, default: Any = None) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; ``default`` when any step is missing."""
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return default
        obj = obj[part]
    return obj


def wire_params(endpoint: Endpoint, variables: Mapping[str, Any]) -> dict[str, Any]:
    """syncd's variable names → the profile's (names it does not map pass unchanged)."""
    names = {**endpoint.params, **{k: v for k, v in endpoint.paging.items() if k in ("page", "per_page")}}
    return {names.get(k, k): v for k, v in variables.items()}


def read_answer(endpoint: Endpoint, body: Any, field: str, *, section: str = "response") -> Any:
    """The answer's ``field`` (syncd's name) through the profile; MissingField when absent."""
    mapping = endpoint.paging if section == "paging" else endpoint.response
    wire = mapping.get(field, field)
    value = get_path(body, wire)
    if value is None:
        raise MissingField(endpoint.operation, field, wire,
                           f"operations.{endpoint.operation}.{section}.{field}")
    return value


def read_record(endpoint: Endpoint, raw: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """One record in syncd's names: mapped fields renamed, unknown fields kept as they are.
    MissingRecordField for a required field that is absent (``strict``; see :func:`require`)."""
    out = {k: v for k, v in raw.items() if k not in {w.split(".")[0] for w in endpoint.record.values()}}
    for field, wire in endpoint.record.items():
        value = get_path(raw, wire, _MISSING)
        if value is not _MISSING:
            out[field] = value
    return require(endpoint, out) if strict else out


def require(endpoint: Endpoint, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (syncd's names) if it has every required field, else MissingRecordField."""
    out = record
    for field in REQUIRED_RECORD.get(endpoint.operation, ()):
        if out.get(field) in (None, ""):
            wire = endpoint.record.get(field, field)
            first = REQUIRED_RECORD[endpoint.operation][0]
            rid = out.get(first)
            raise MissingRecordField(endpoint.operation, field, wire,
                                     f"operations.{endpoint.operation}.record.{field}",
                                     record_id=None if rid in (None, "") else str(rid))
    return out


# -- dates --------------------------------------------------------------------------------

def format_date(moment: datetime, fmt: str, zone: tzinfo) -> Any:
    """A tz-aware instant as the profile writes it (whole seconds, floored)."""
    if moment.tzinfo is None:
        raise ValueError(f"refusing a naive datetime ({moment.isoformat()}): give it a time zone")
    if fmt == "unix":
        return int(moment.timestamp())
    local = moment.astimezone(zone).replace(microsecond=0)
    return local.isoformat() if fmt == "iso" else local.strftime(fmt)


def parse_date(value: Any, fmt: str, zone: tzinfo) -> datetime:
    """A date exactly as the profile's ``fmt`` says → tz-aware UTC. ValueError otherwise."""
    if fmt == "unix":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"not unix seconds: {value!r}")
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"not unix seconds: {value!r}") from None
    if not isinstance(value, str):
        raise ValueError(f"not a date as {fmt}: {value!r}")
    if fmt == "iso":
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        parsed = datetime.strptime(value.strip(), fmt)
    if parsed.tzinfo is None:
        return _local_to_utc(parsed, zone, "earlier", False, value)
    return parsed.astimezone(UTC)


def resolve_endpoints(overrides: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """The shipped profile's operations with ``overrides`` (operation → path) applied.

    Raises ``ConfigError`` listing every problem (unknown operations name the valid ones).
    """
    return dict(load_profile(None, overrides).operations)
