"""Request-side helpers of the fake Bitrix24 portal: PHP query strings (the form of ``batch``
commands), list filters with their prefixes (``>=``, ``>``, ``=``, ``!``, ``%``), and ``select``.

https://apidocs.bitrix24.com/api-reference/how-to-call-rest-api/batch.html,
https://apidocs.bitrix24.com/api-reference/crm/contacts/crm-contact-list.html
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["BxError", "MULTI_FIELDS", "parse_php_query", "as_list", "matches", "render"]

MULTI_FIELDS = ("PHONE", "EMAIL", "WEB", "IM")


class BxError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        self.status, self.error, self.description = status, error, description


def parse_php_query(query: str) -> dict[str, Any]:
    """PHP's ``parse_str``: ``a[b][0]=1`` → ``{"a": {"b": {"0": "1"}}}`` (lists stay dicts)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parts = [key.split("[", 1)[0]] + re.findall(r"\[([^\]]*)\]", key)
        node = out
        for i, part in enumerate(parts[:-1]):
            if part == "":
                part = str(len(node))
            node = node.setdefault(part, {})
        last = parts[-1] if parts[-1] != "" else str(len(node))
        node[last] = value
    return out


def as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=lambda k: int(k) if k.isdigit() else 0)]
    return list(value or [])


def _parse_time(value: Any, tz: timezone) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def matches(record: dict[str, Any], flt: dict[str, Any], tz: timezone) -> bool:
    for raw_key, want in flt.items():
        m = re.match(r"^(>=|<=|>|<|=|!|%|@)?(.+)$", raw_key)
        op, key = m.group(1) or "=", m.group(2)
        have = record.get(key)
        if have is None and key not in MULTI_FIELDS:
            return False
        if key in MULTI_FIELDS:
            values = [e["VALUE"] for e in have or []]
            wants = as_list(want) if isinstance(want, (list, dict)) else [want]
            if not any(w in values for w in wants):
                return False
            continue
        if key in ("DATE_MODIFY", "DATE_CREATE"):
            want = _parse_time(want, tz)
        elif key == "ID" and not isinstance(want, (list, dict)):
            want = int(want)
        if isinstance(want, (list, dict)):
            if int(have) not in {int(w) for w in as_list(want)}:
                return False
        elif op == "%":
            if str(want).lower() not in str(have or "").lower():
                return False
        elif not {"=": have == want, "!": have != want, ">": have > want, ">=": have >= want,
                  "<": have < want, "<=": have <= want}[op]:
            return False
    return True


def render(record: dict[str, Any], select: list[str], tz: timezone) -> dict[str, Any]:
    wanted = set(select or ["*"])
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in MULTI_FIELDS:
            if key not in wanted or not value:
                continue
        elif not ({"*", key} & wanted or (key.startswith("UF_") and "UF_*" in wanted) or key == "ID"):
            continue
        if isinstance(value, datetime):
            value = value.astimezone(tz).isoformat()
        out[key] = str(value) if key == "ID" else value
    return out
