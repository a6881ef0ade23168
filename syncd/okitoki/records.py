"""Oki-Toki records ⇄ the canonical model: dialers, contacts, calls and task payloads.

Pure functions, no I/O. Times leave here tz-aware UTC (see :mod:`.dates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Callable

from ..errors import InvalidRecord
from ..model import Call, CallDirection, CallOutcome, Contact, ContactWrite, TaskSpec
from .dates import parse_remote_time, to_okitoki

__all__ = [
    "Operator",
    "Dialer",
    "MAX_TASK_PHONES",
    "dialers_from_raw",
    "contact_from_raw",
    "contact_payload",
    "call_from_raw",
    "task_payload",
]

MAX_TASK_PHONES = 5


@dataclass(frozen=True)
class Operator:
    """An agent assigned to a dialer, as ``dialers/stat`` reports it.

    ``status`` is Oki-Toki's status code (``status_id``, e.g. ``offline``); ``status_text``
    its English label (``status_eng``).
    """

    id: str
    name: str
    status: str | None = None
    status_text: str | None = None
    skill: int | None = None


@dataclass(frozen=True)
class Dialer:
    """One dialer from ``dialers/stat``.

    ``status`` is the status code (``status_id``, e.g. ``no_phones``: waiting for tasks),
    ``status_text`` its English label, ``state`` e.g. ``enabled``.
    """

    id: str
    name: str
    status: str | None = None
    status_text: str | None = None
    state: str | None = None
    operators: tuple[Operator, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def dialers_from_raw(body: Any) -> dict[str, Dialer]:
    """``dialers/stat`` body (an object keyed by dialer id, or a list) → dialers by id."""
    items = body.values() if isinstance(body, dict) else body or []
    result: dict[str, Dialer] = {}
    for raw in items:
        if not isinstance(raw, dict) or "id" not in raw:
            continue
        operators = tuple(
            Operator(id=str(o.get("id")), name=str(o.get("name") or ""),
                     status=_str_or_none(o.get("status_id")),
                     status_text=_str_or_none(o.get("status_eng")),
                     skill=_int_or_none(o.get("skill")))
            for o in raw.get("operators") or [] if isinstance(o, dict))
        dialer = Dialer(id=str(raw["id"]), name=str(raw.get("name") or ""),
                        status=_str_or_none(raw.get("status_id")),
                        status_text=_str_or_none(raw.get("status_eng")),
                        state=_str_or_none(raw.get("state")), operators=operators, raw=raw)
        result[dialer.id] = dialer
    return result


def _phones(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return tuple(str(p) for p in value if p not in (None, ""))


def contact_from_raw(raw: dict[str, Any], zone: tzinfo) -> Contact:
    """An exported contact → Contact with fields ``name``, ``email``, ``tags``, ``details.<k>``;
    the whole entry, unknown fields included, is kept in ``raw``."""
    fields: dict[str, Any] = {"name": raw.get("name"), "email": raw.get("email"),
                              "tags": raw.get("tags")}
    details = raw.get("details")
    if isinstance(details, dict):
        for key, value in details.items():
            fields[f"details.{key}"] = value
    return Contact(id=str(raw["id"]), fields=fields, phones=_phones(raw.get("phones")),
                   updated_at=parse_remote_time(raw.get("updated_at"), zone),
                   deleted=bool(raw.get("deleted", False)), raw=dict(raw))


_CONTACT_FIELDS = ("name", "email", "tags")


def contact_payload(write: ContactWrite) -> dict[str, Any]:
    """A ContactWrite → the variables of ``contacts/add-update`` (``details`` as an object).

    Field names are Oki-Toki's: ``name``, ``email``, ``tags`` and ``details.<key>``; any
    other name is refused with InvalidRecord (the config maps to one of these).
    """
    payload: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for name, value in write.fields.items():
        if name in _CONTACT_FIELDS:
            payload[name] = value
        elif name.startswith("details.") and len(name) > len("details."):
            details[name[len("details."):]] = value
        else:
            raise InvalidRecord(f'Oki-Toki contacts have no field "{name}" (use name, email, '
                                'tags or details.<key>)', record_id=write.key)
    if write.id is not None:
        payload["contact_id"] = write.id
    if details:
        payload["details"] = details
    if write.phones is not None:
        payload["phones"] = list(write.phones)
    return payload


_DIRECTIONS = {"I": CallDirection.INBOUND, "O": CallDirection.OUTBOUND,
               "C": CallDirection.OUTBOUND, "P": CallDirection.DIALER}
_OUTCOMES = {
    "answered": CallOutcome.ANSWERED, "success": CallOutcome.ANSWERED,
    "connected": CallOutcome.ANSWERED,
    "no_answer": CallOutcome.NO_ANSWER, "noanswer": CallOutcome.NO_ANSWER,
    "not_answered": CallOutcome.NO_ANSWER, "no answer": CallOutcome.NO_ANSWER,
    "busy": CallOutcome.BUSY,
    "failed": CallOutcome.FAILED, "error": CallOutcome.FAILED,
}


def _outcome(raw: dict[str, Any]) -> CallOutcome:
    result = str(raw.get("result") or "").strip().lower()
    if result in _OUTCOMES:
        return _OUTCOMES[result]
    if not result and (_int_or_none(raw.get("ctime")) or 0) > 0:
        return CallOutcome.ANSWERED
    return CallOutcome.FAILED


def call_from_raw(raw: dict[str, Any], zone: tzinfo) -> Call:
    """A call-log entry → Call (UTC times, seconds). The raw entry is kept in ``details``.

    ``call_type`` I → INBOUND (customer = ``ani``); O, C → OUTBOUND and P → DIALER (customer
    = ``dnis``). InvalidRecord when ``session_id``, ``call_type`` or ``stime`` is unusable.
    """
    session = _str_or_none(raw.get("session_id"))
    kind = str(raw.get("call_type") or "").upper()
    if session is None or kind not in _DIRECTIONS:
        raise InvalidRecord(f"call-log entry without a usable session_id/call_type "
                            f"({raw.get('call_type')!r})", record_id=session)
    try:
        started = parse_remote_time(raw.get("stime"), zone)
        ended = parse_remote_time(raw.get("etime"), zone)
    except ValueError as exc:
        raise InvalidRecord(str(exc), record_id=session) from None
    if started is None:
        raise InvalidRecord("call-log entry without stime", record_id=session)
    direction = _DIRECTIONS[kind]
    phone = raw.get("ani") if direction is CallDirection.INBOUND else raw.get("dnis")
    duration = max(0, int((ended - started).total_seconds())) if ended else 0
    return Call(
        session_id=session, direction=direction, phone=str(phone or ""), started_at=started,
        duration_s=duration, talk_s=max(0, _int_or_none(raw.get("ctime")) or 0),
        outcome=_outcome(raw), agent=_str_or_none(raw.get("user_id")),
        recording_url=_str_or_none(raw.get("record_url")),
        dialer_id=_str_or_none(raw.get("dialer_id")), task_id=_str_or_none(raw.get("task_id")),
        details=dict(raw),
    )


def task_payload(spec: TaskSpec, zone: tzinfo,
                 when: Callable[[datetime], Any] | None = None) -> dict[str, Any]:
    """A TaskSpec → ``create_task`` variables; InvalidRecord for 0 or more than 5 phones.
    ``when`` writes the ``date`` variable (default: Oki-Toki's format in ``zone``)."""
    phones = [p for p in spec.phones if p]
    if not phones:
        raise InvalidRecord("a dialer task needs at least one phone number",
                            record_id=spec.contact_id)
    if len(phones) > MAX_TASK_PHONES:
        raise InvalidRecord(f"a dialer task takes at most {MAX_TASK_PHONES} phone numbers, "
                            f"got {len(phones)} (split the numbers over several tasks)",
                            record_id=spec.contact_id)
    if spec.priority is not None and not 0 <= spec.priority <= 2:
        raise InvalidRecord(f"task priority must be 0..2, got {spec.priority}",
                            record_id=spec.contact_id)
    payload: dict[str, Any] = {"dialer_id": spec.dialer_id, "phones": phones}
    optional = {"contact_id": spec.contact_id, "priority": spec.priority, "ttl": spec.ttl_s,
                "user_id": spec.user_id,
                "date": None if spec.date is None else
                        when(spec.date) if when is not None else to_okitoki(spec.date, zone)}
    payload.update({k: v for k, v in optional.items() if v is not None})
    if spec.region is not None:
        payload["region"] = spec.region     # "" is meaningful: no time-zone correction
    if spec.details:
        payload["details"] = dict(spec.details)
    if spec.force_create:
        payload["force_create"] = 1
    return payload
