"""Simulated calls: an admin request → a call-log row in Oki-Toki's vocabulary.

A call is written at "hangup" (the admin request), shows in ``calls/log`` only after the
settle delay, and, when a call update delay is set, first appears without its recording and
gets ``record_url`` once, that many seconds after it appeared. A dialer call for a task
finishes the task. The ``call_finished`` event (webhooks) fires at hangup, before the call is
visible, as a real event would: a reader must treat it as a hint.
"""

from __future__ import annotations

from typing import Any

from . import dates
from .entities import Call, Company
from .settings import seconds_of
from .state import SandboxState
from .validation import normalise_phone, phone_key

__all__ = ["simulate_call", "call_view", "update_call", "DIRECTIONS", "OUTCOMES"]

DIRECTIONS = {"in": "I", "out": "O", "dialer": "P", "callback": "C"}
OUTCOMES = {"answered": "normal_clearing", "no_answer": "no_answer", "busy": "user_busy",
            "failed": "network_error"}
_HIDDEN = {"company_id", "visible_at", "late_fields", "late_at"}
_EDITABLE = {"record_url", "details", "result", "disconnect_reason", "user_id", "contact_id",
             "queue_id", "ctime", "atime", "connect_time", "etime"}


def _company_of(state: SandboxState, spec: dict[str, Any]) -> Company:
    for key, table in (("task_id", state.tasks), ("dialer_id", state.dialers), ("user_id", state.users)):
        if spec.get(key) is not None:
            obj = table.get(int(spec[key]))
            if obj is None:
                raise ValueError(f"no {key[:-3]} {spec[key]}")
            return state.companies[obj.company_id]
    if spec.get("company_id") is not None:
        return state.companies[int(spec["company_id"])]
    if len(state.companies) == 1:
        return next(iter(state.companies.values()))
    raise ValueError("say which company (company_id, dialer_id, task_id or user_id)")


def _contact_by_phone(state: SandboxState, company_id: int, phone: str) -> int | None:
    key = phone_key(phone)
    for contact in state.contacts.values():
        if contact.company_id == company_id and not contact.deleted and any(phone_key(p) == key for p in contact.phones):
            return contact.id
    return None


def simulate_call(state: SandboxState, spec: dict[str, Any]) -> Call:
    """Record a finished call described by ``spec``; see ``docs/sandbox.md`` for the keys.
    Raises ``ValueError`` for a bad spec."""
    direction = spec.get("direction", "dialer" if spec.get("task_id") else "in")
    outcome = spec.get("outcome", "answered")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}")
    settings = state.settings
    with state.lock:
        company = _company_of(state, spec)
        task = state.tasks.get(int(spec["task_id"])) if spec.get("task_id") is not None else None
        phone = spec.get("phone") or (task.phones[0] if task else None)
        if not phone:
            raise ValueError("phone is required (or a task_id to take it from)")
        phone = normalise_phone(str(phone))
        duration = int(spec.get("duration", 30 if outcome == "answered" else 20))
        answered = outcome == "answered"
        atime = int(spec.get("wait", 5 if answered else duration))
        ctime = duration if answered else 0
        now = state.now()
        stime = (dates.parse_instant(spec["started_at"]) if spec.get("started_at") is not None
                 else int(now) - atime - ctime)
        session_id = state.new_id("call", spec.get("session_id"))
        line = str(spec.get("line") or settings.line_number)
        inbound = direction == "in"
        record_url = spec.get("record_url", f"{settings.record_base_url}/{session_id}.mp3" if answered else None)
        contact_id = spec.get("contact_id") or (task.contact_id if task else None) \
            or _contact_by_phone(state, company.id, phone)
        call = Call(
            session_id=session_id, company_id=company.id, call_type=DIRECTIONS[direction],
            ani=phone if inbound else line, dnis=line if inbound else phone,
            stime=stime, etime=stime + atime + ctime, result=outcome,
            connect_time=stime + atime if answered else None, atime=atime, ctime=ctime,
            queue_id=spec.get("queue_id", 1 if inbound else None),
            dialer_id=spec.get("dialer_id") or (task.dialer_id if task else None),
            task_id=task.id if task else None, contact_id=contact_id, user_id=spec.get("user_id"),
            disconnect_reason=OUTCOMES[outcome], details=dict(spec.get("details") or {}),
            record_url=record_url)
        settle = seconds_of(spec.get("settle_delay"))
        call.visible_at = now + (settings.settle_delay if settle is None else settle)
        update = seconds_of(spec["update_delay"]) if "update_delay" in spec else settings.call_update_delay
        if update is not None and record_url:
            call.record_url = None
            call.late_fields, call.late_at = {"record_url": record_url}, call.visible_at + update
        state.insert_call(call)
    if task is not None and direction == "dialer":
        state.finish_task(task, session_id, outcome)
    variables = call_view(call, company.timezone)
    variables.update(phone=phone, record_url=record_url or "", event="call_finished")
    state.emit("call_finished", company.id, variables)
    return call


def call_view(call: Call, timezone: str | None = None) -> dict[str, Any]:
    """The call as ``calls/log`` and ``calls/data`` render it (unix seconds, as Oki-Toki)."""
    data = {name: getattr(call, name) for name in call.__slots__ if name not in _HIDDEN}
    if timezone:
        data["date"] = dates.format_local(call.stime, timezone)
    return data


def update_call(state: SandboxState, session_id: int, changes: dict[str, Any]) -> Call:
    """Admin edit of a call (e.g. a late recording); ``details`` is merged by key."""
    with state.lock:
        call = state.calls[session_id]
        for key, value in changes.items():
            if key not in _EDITABLE:
                raise ValueError(f"{key!r} cannot be edited (editable: {sorted(_EDITABLE)})")
            if key == "details":
                call.details = {**call.details, **value}
            else:
                setattr(call, key, value)
        state.changed()
        return call
