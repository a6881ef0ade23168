"""Kommo contacts ⇄ :class:`syncd.model.Contact`.

Field names in the configuration are the contact's own attributes (``name``, ``first_name``,
``last_name``, ``responsible_user_id``) or custom fields written ``cf:<field_id>`` or
``cf:<FIELD_CODE>`` (e.g. ``cf:EMAIL``, ``cf:583921``). A custom field reads as its first
value; a checkbox (the usual do-not-call place) as a bool. Phones are the values of the
predefined multitext field ``PHONE``; writing them sends the whole set, which Kommo stores in
place of the old one (no duplicates), keeping each kept number's label (``enum_code``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from syncd.model import Contact, ContactWrite

__all__ = ["ATTRIBUTES", "to_contact", "to_payload", "phone_entries", "custom_key"]

ATTRIBUTES = ("name", "first_name", "last_name", "responsible_user_id")


def custom_key(name: str) -> dict[str, Any] | None:
    """``cf:123`` → {"field_id": 123}; ``cf:EMAIL`` → {"field_code": "EMAIL"}; else None."""
    if not name.startswith("cf:"):
        return None
    ref = name[3:]
    return {"field_id": int(ref)} if ref.isdigit() else {"field_code": ref}


def _custom(row: dict[str, Any], key: dict[str, Any]) -> dict[str, Any] | None:
    for cf in row.get("custom_fields_values") or []:
        if ("field_id" in key and cf.get("field_id") == key["field_id"]) or \
                ("field_code" in key and cf.get("field_code") == key["field_code"]):
            return cf
    return None


def _first(cf: dict[str, Any] | None) -> Any:
    values = (cf or {}).get("values") or []
    return values[0].get("value") if values else None


def phone_entries(row: dict[str, Any]) -> list[dict[str, Any]]:
    return list((_custom(row, {"field_code": "PHONE"}) or {}).get("values") or [])


def to_contact(row: dict[str, Any], field_names: tuple[str, ...], dnc_field: str | None) -> Contact:
    """One ``_embedded.contacts`` item → Contact (``updated_at`` unix seconds → UTC)."""
    fields: dict[str, Any] = {}
    for name in (*field_names, *([dnc_field] if dnc_field else [])):
        key = custom_key(name)
        fields[name] = _first(_custom(row, key)) if key else row.get(name)
    if dnc_field:
        fields[dnc_field] = bool(fields[dnc_field])
    phones = tuple(str(v.get("value")) for v in phone_entries(row) if v.get("value"))
    updated = row.get("updated_at")
    return Contact(id=str(row["id"]), fields=fields, phones=phones,
                   updated_at=datetime.fromtimestamp(int(updated), UTC) if updated else None)


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def to_payload(write: ContactWrite, request_id: str, existing: dict[str, Any] | None,
               dnc_field: str | None, phone_enum: str = "WORK") -> dict[str, Any]:
    """The body item of ``POST``/``PATCH /api/v4/contacts`` for one write."""
    item: dict[str, Any] = {"request_id": request_id}
    if write.id is not None:
        item["id"] = int(write.id)
    customs: list[dict[str, Any]] = []
    for name, value in write.fields.items():
        key = custom_key(name)
        if key is None:
            item[name] = value
        elif name == dnc_field:
            customs.append({**key, "values": [{"value": bool(value)}]})
        elif value in (None, ""):
            customs.append({**key, "values": None})     # null clears the field
        else:
            customs.append({**key, "values": [{"value": value}]})
    if write.phones is not None:
        labels = {_digits(str(v.get("value"))): v.get("enum_code") for v in phone_entries(existing or {})}
        seen: set[str] = set()
        values = []
        for phone in write.phones:
            digits = _digits(phone) or phone
            if digits in seen:
                continue
            seen.add(digits)
            values.append({"value": phone, "enum_code": labels.get(digits) or phone_enum})
        customs.append({"field_code": "PHONE", "values": values or None})
    if customs:
        item["custom_fields_values"] = customs
    return item
