"""Checks of a configuration that span several keys, or need the installed connector.

Each check returns problem lines ``<key path>: <what is wrong>`` (the loader prefixes the
file name). Checks run on whatever sections validated on their own, so one broken section
does not hide the problems of the others: every problem is reported at once.
"""

from __future__ import annotations

import difflib
import json
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Mapping

from pydantic import BaseModel, TypeAdapter, ValidationError

from .config_models import (
    CallsConfig,
    Config,
    ContactsConfig,
    CrmConfig,
    DaemonConfig,
    DialerRule,
    DoNotCallConfig,
    OkitokiConfig,
    format_validation_errors,
)
from .config_values import http_url_problems, listen_address, state_url_problems
from .errors import ConfigError
from .redact import is_secret_key

__all__ = ["Sections", "partial_sections", "cross_field_problems", "connector_problems",
           "capability_problems", "config_capability_problems", "OUTCOMES",
           "deprecation_warnings", "MAX_CALL_WINDOW"]

OUTCOMES = ("answered", "no_answer", "busy", "failed")
# Durations that may be zero; every other duration must be positive.
_ZERO_OK = {"jitter", "settle_delay", "overlap", "clock_skew"}


@dataclass
class Sections:
    """The sections that are valid on their own (None: that section has problems)."""

    daemon: DaemonConfig | None = None
    okitoki: OkitokiConfig | None = None
    crm: CrmConfig | None = None
    contacts: ContactsConfig | None = None
    dialer: list[tuple[int, DialerRule]] = field(default_factory=list)
    calls: CallsConfig | None = None
    do_not_call: DoNotCallConfig | None = None


def _try(model: type[BaseModel], value: Any) -> Any:
    try:
        return TypeAdapter(model).validate_python(value if value is not None else {})
    except ValidationError:
        return None


def partial_sections(data: Mapping[str, Any]) -> Sections:
    s = Sections()
    for name in ("daemon", "okitoki", "crm", "contacts", "calls", "do_not_call"):
        setattr(s, name, _try(Config.model_fields[name].annotation, data.get(name)))
    rules = data.get("dialer")
    if isinstance(rules, list):
        s.dialer = [(i, r) for i, r in enumerate(_try(DialerRule, x) for x in rules) if r]
    return s


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _durations(prefix: str, model: BaseModel | None) -> list[str]:
    if model is None:
        return []
    return [f"{prefix}.{name}: must be longer than zero"
            for name, value in model.__dict__.items()
            if isinstance(value, timedelta) and value <= timedelta(0) and name not in _ZERO_OK]


def cross_field_problems(s: Sections) -> list[str]:
    """Problems that involve several keys, or values pydantic cannot judge alone."""
    p: list[str] = []
    for name in ("daemon", "okitoki", "crm", "calls"):
        p += _durations(name, getattr(s, name))
    for i, rule in s.dialer:
        p += _durations(f"dialer[{i}]", rule)
    if s.daemon:
        p += _daemon(s.daemon)
    if s.okitoki:
        p += _okitoki(s.okitoki)
    if s.contacts:
        p += _contacts(s.contacts, s.calls)
    p += _dialers(s)
    if s.calls:
        p += _calls(s.calls, s.contacts)
    if s.do_not_call:
        dnc = s.do_not_call
        if dnc.crm_field and dnc.list_id is None:
            p.append("do_not_call.list_id: is required when do_not_call.crm_field is set "
                     "(the Oki-Toki list that do-not-call numbers go to)")
        if dnc.list_id is not None and not dnc.crm_field:
            p.append("do_not_call.crm_field: is required when do_not_call.list_id is set "
                     "(the CRM field that flags do-not-call)")
    return p


def _daemon(d: DaemonConfig) -> list[str]:
    p: list[str] = []
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", d.state_url):
        p.append(f'daemon.state_url: "{_no_password(d.state_url)}" is not a SQLite or '
                 f"PostgreSQL URL (e.g. sqlite:////var/lib/syncd/state.db)")
    else:
        p += [f"daemon.state_url: {why}" for why in state_url_problems(d.state_url)]
    if d.http_listen is not None and listen_address(d.http_listen) is None:
        p.append(f'daemon.http_listen: "{d.http_listen}" is not HOST:PORT with an IP address '
                 f'or host name and a port 0-65535 (e.g. "127.0.0.1:9410")')
    return p


def _quoted(name: str) -> str:
    return name if re.match(r"^[A-Za-z0-9_-]+$", name) else json.dumps(name, ensure_ascii=False)


def _no_password(url: str) -> str:
    return re.sub(r"(://[^/:@]*:)[^@/]+@", r"\1***@", url)


def _okitoki(o: OkitokiConfig) -> list[str]:
    p: list[str] = []
    p += [f"okitoki.url: {why}" for why in http_url_problems(o.url)]
    try:
        zoneinfo.ZoneInfo(o.timezone)
    except Exception:  # noqa: BLE001 - not found, a folder of the tz database, bad bytes...
        p.append(f'okitoki.timezone: "{o.timezone}" is not an IANA time zone '
                 f'(e.g. "Europe/Kyiv")')
    from .okitoki.profile import profile_problems
    p += profile_problems(o.profile, o.endpoints)   # the shipped profile, the user's, the paths
    return p


def _contacts(c: ContactsConfig, calls: CallsConfig | None) -> list[str]:
    import phonenumbers

    p: list[str] = []
    if c.default_region not in phonenumbers.SUPPORTED_REGIONS:
        p.append(f'contacts.default_region: "{c.default_region}" is not a region code '
                 f'(two capital letters such as "UA", "PL", "MX")')
    for name, fm in c.fields.items():
        key = f"contacts.fields.{_quoted(name)}"
        if not name.strip():
            p.append(f"{key}: a field name must not be empty or blank")
        if fm.crm is None and fm.okitoki is None:
            p.append(f"{key}: needs crm = ... and/or okitoki = ...")
        if fm.conflict == "forward" and not (calls and calls.status_order):
            p.append(f'{key}.conflict: "forward" needs calls.status_order')
    return p + _mapped_twice(c)


def _mapped_twice(c: ContactsConfig) -> list[str]:
    """A CRM column or Oki-Toki field that two canonical fields map, one of them writing it:
    the writes would overwrite each other (reading one column into two fields is fine)."""
    p: list[str] = []
    for side, what, writes in (("crm", "a CRM column", ("both", "to_crm")),
                               ("okitoki", "an Oki-Toki field", ("both", "to_okitoki"))):
        first: dict[str, str] = {}
        for name, fm in c.fields.items():
            target = getattr(fm, side)
            if target is None:
                continue
            other = first.setdefault(target, name)
            if other != name and (fm.sync in writes or c.fields[other].sync in writes):
                p.append(f'contacts.fields.{_quoted(name)}.{side}: "{target}" is already mapped '
                         f"by contacts.fields.{_quoted(other)}; {what} that syncd writes takes "
                         f"one canonical field")
    return p


def _dialers(s: Sections) -> list[str]:
    p: list[str] = []
    seen: dict[str, int] = {}
    known = list(s.contacts.fields) if s.contacts else None
    for i, rule in s.dialer:
        if rule.name in seen:
            p.append(f'dialer[{i}].name: "{rule.name}" is already the name of dialer[{seen[rule.name]}]')
        seen.setdefault(rule.name, i)
        for key, allowed in rule.when.items():
            if not allowed:
                p.append(f"dialer[{i}].when.{_quoted(key)}: an empty list matches no contact; "
                         f"list the values, or remove the key")
        for key in rule.when if known is not None else ():
            if key not in known:
                p.append(f'dialer[{i}].when.{_quoted(key)}: "{key}" is not a field of [contacts.fields]'
                         f"{_did_you_mean(key, known)}")
    return p


MAX_CALL_WINDOW = timedelta(days=1)   # the longest call-log re-read (syncd verify goes further)


def deprecation_warnings(data: Mapping[str, Any]) -> list[str]:
    """Keys still accepted but no longer needed: one line each, naming the key."""
    calls = data.get("calls")
    if isinstance(calls, dict) and "overlap" in calls:
        return ["calls.overlap: deprecated and no longer needed: the call log is re-read for "
                "calls.max_call_duration (default \"4h\", grows when longer calls show); a "
                "longer overlap still widens that window. Remove the key."]
    return []


def _calls(c: CallsConfig, contacts: ContactsConfig | None) -> list[str]:
    p: list[str] = []
    if c.max_call_duration > MAX_CALL_WINDOW:
        p.append(f"calls.max_call_duration: at most 24h (got {c.max_call_duration}); calls "
                 f"longer than that are found by syncd verify")
    if c.overlap is not None and c.overlap > MAX_CALL_WINDOW:
        p.append(f"calls.overlap: at most 24h (got {c.overlap}); the key is deprecated, "
                 f"use calls.max_call_duration")
    for outcome, status in c.outcome_status.items():
        if outcome not in OUTCOMES:
            p.append(f'calls.outcome_status.{_quoted(outcome)}: unknown call outcome'
                     f"{_did_you_mean(outcome, list(OUTCOMES))}; outcomes: {', '.join(OUTCOMES)}")
        if c.status_order and status not in c.status_order:
            p.append(f'calls.outcome_status.{_quoted(outcome)}: "{status}" is not in calls.status_order')
    if any(not str(v).strip() for v in [*c.status_order, *c.outcome_status.values()]):
        p.append("calls.status_order: a status must not be empty or blank")
    if len(set(c.status_order)) != len(c.status_order):
        p.append("calls.status_order: a status appears more than once")
    if c.outcome_status and contacts is not None and c.status_field not in contacts.fields:
        p.append(f'calls.status_field: "{c.status_field}" is not a field of [contacts.fields]'
                 f"{_did_you_mean(c.status_field, list(contacts.fields))}")
    return p


def connector_problems(data: Mapping[str, Any], s: Sections,
                       read_file: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """Problems (and warnings) about ``[crm]``: the connector, its options, its capabilities.

    Resolves ``X_file`` keys of ``crm.options`` into ``X`` in place when the connector's
    ``Options`` model has a field ``X`` but none named ``X_file``.
    """
    if s.crm is None:
        return [], []
    from .connector import load_connector

    try:
        cls = load_connector(s.crm.connector)
    except ConfigError as exc:
        return list(exc.problems), []
    except Exception as exc:  # noqa: BLE001 - a broken plug-in is a configuration problem
        return [f'crm.connector: connector "{s.crm.connector}" is installed but cannot be '
                f"loaded: {type(exc).__name__}: {exc}"], []
    problems: list[str] = []
    options_model = getattr(cls, "Options", None)
    options = data["crm"].get("options", {}) if isinstance(data.get("crm"), dict) else {}
    if options_model is not None and isinstance(options, dict):
        fields = options_model.model_fields
        for key in [k for k in options if k.endswith("_file")]:
            target = key.removesuffix("_file")
            if target in fields and key not in fields and isinstance(options[key], str):
                try:
                    options[target] = read_file(options.pop(key))
                except ValueError as exc:
                    problems.append(f"crm.options.{_quoted(key)}: {exc}")
        for key, value in options.items():
            if is_secret_key(str(key)) and isinstance(value, str) and not value.strip():
                problems.append(f"crm.options.{_quoted(key)}: must not be empty or blank")
        try:
            options_model.model_validate(options)
        except ValidationError as exc:
            problems += format_validation_errors(exc.errors(), options_model, "crm.options")
    errors, warnings = capability_problems(data, s, cls)
    return problems + errors, warnings


def capability_problems(data: Mapping[str, Any], s: Sections, cls: type) -> tuple[list[str], list[str]]:
    """What the configuration needs but the connector cannot do.

    A need the file states explicitly is a problem; one that only comes from a default is a
    warning (the flow is then skipped).
    """
    from .connector import Capabilities

    caps = Capabilities.declared_by(cls)
    if caps is None:   # only known per instance: nothing to say offline
        return [], []
    name = s.crm.connector if s.crm else "?"
    errors: list[str] = []
    warnings: list[str] = []

    def need(ok: bool, key: str, explicit: bool, what: str, fix: str) -> None:
        if ok:
            return
        line = f'{key}: the "{name}" connector cannot {what}; {fix}'
        (errors if explicit else warnings).append(line)

    calls_raw = data.get("calls") if isinstance(data.get("calls"), dict) else {}
    if s.calls and s.calls.to_crm:
        need(caps.calls_write, "calls.to_crm", "to_crm" in calls_raw, "write calls",
             "set calls.to_crm = false")
    if s.do_not_call and s.do_not_call.crm_field:
        need(caps.do_not_call, "do_not_call.crm_field", True, "read a do-not-call flag",
             "remove [do_not_call] or use a connector that supports it")
    if s.contacts:
        need(caps.contacts_create or not s.contacts.create_in_crm, "contacts.create_in_crm",
             True, "create contacts", "set contacts.create_in_crm = false")
        if s.contacts.on_delete == "propagate":
            need(getattr(caps, "contacts_delete", False), "contacts.on_delete", True,
                 "delete contacts", 'set contacts.on_delete = "unlink"')
            warnings.append('contacts.on_delete: "propagate" deletes the CRM records of contacts '
                            "deleted in Oki-Toki; Oki-Toki's API has no contact delete, so a "
                            "contact deleted in the CRM is only unlinked in Oki-Toki")
        writes = [n for n, f in s.contacts.fields.items() if f.sync in ("both", "to_crm") and f.crm]
        if writes and not caps.contacts_write:
            errors.append(f'contacts.fields.{_quoted(writes[0])}.sync: the "{name}" connector cannot '
                          f'write contacts; use sync = "to_okitoki"')
    for note in getattr(caps, "notes", ()):
        warnings.append(f"crm.connector: {note}")
    return errors, warnings


def config_capability_problems(config: Config, connector: Any) -> tuple[list[str], list[str]]:
    """:func:`capability_problems` for a loaded ``config`` and a connector class or instance
    (an instance knows what its remote really allows, e.g. the SQL schema it reflected).
    Explicitness comes from the keys the file set (``model_fields_set``)."""
    data = {name: {key: True for key in getattr(config, name).model_fields_set}
            for name in ("calls", "contacts", "do_not_call")}
    sections = Sections(crm=config.crm, contacts=config.contacts, calls=config.calls,
                        do_not_call=config.do_not_call)
    return capability_problems(data, sections, connector)
