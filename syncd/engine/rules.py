"""``[[dialer]]`` rules: which dialers a contact belongs in, and the task to create there."""

from __future__ import annotations

from typing import Any

from ..config import DialerRule
from ..phones import timezone_for
from .mapping import DNC, PHONES

__all__ = ["rule_matches", "unmet", "wanted_dialers", "task_payload", "MAX_TASK_PHONES"]

MAX_TASK_PHONES = 5  # Oki-Toki's create_task limit


def _value_in(value: Any, allowed: list[Any]) -> bool:
    if value in allowed:
        return True
    return value is not None and str(value) in {str(a) for a in allowed}


def rule_matches(rule: DialerRule, values: dict[str, Any]) -> bool:
    """True when every ``when`` field's value is one of the allowed values.

    A contact on do-not-call, or without a phone number, never matches any rule.
    """
    if values.get(DNC) or not values.get(PHONES):
        return False
    return all(_value_in(values.get(name), list(allowed)) for name, allowed in rule.when.items())


def unmet(rule: DialerRule, values: dict[str, Any]) -> list[str]:
    """Why ``rule`` does not match ``values``, one reason per failed condition (empty: it matches)."""
    reasons = []
    if values.get(DNC):
        reasons.append("do-not-call")
    if not values.get(PHONES):
        reasons.append("no phone number")
    reasons += [f"{name} is {values.get(name)!r}, not one of {list(allowed)}"
                for name, allowed in rule.when.items() if not _value_in(values.get(name), list(allowed))]
    return reasons


def wanted_dialers(rules: list[DialerRule], values: dict[str, Any]) -> dict[str, DialerRule]:
    """dialer_id (as text) → the first rule that puts the contact in that dialer."""
    wanted: dict[str, DialerRule] = {}
    for rule in rules:
        if rule_matches(rule, values):
            wanted.setdefault(str(rule.dialer_id), rule)
    return wanted


def task_payload(rule: DialerRule, values: dict[str, Any]) -> dict[str, Any]:
    """The outbox payload of a task: at most 5 E.164 numbers, priority, ttl (s), region."""
    phones = list(values.get(PHONES) or [])[:MAX_TASK_PHONES]
    payload: dict[str, Any] = {"dialer_id": str(rule.dialer_id), "phones": phones, "rule": rule.name}
    if rule.priority is not None:
        payload["priority"] = rule.priority
    if rule.ttl is not None:
        payload["ttl_s"] = int(rule.ttl.total_seconds())
    if rule.region_from_phone and phones:
        payload["region"] = timezone_for(phones[0]) or ""
    return payload
