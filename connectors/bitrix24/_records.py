"""Bitrix24 contact rows ⇄ :class:`syncd.model.Contact`, and multi-value fields changed in place.

Multi-value fields (``PHONE``, ``EMAIL``, ``WEB``, ``IM``) are lists of ``{ID, VALUE,
VALUE_TYPE}``. Bitrix24 *appends* an entry sent without ``ID``; an entry with ``ID`` replaces
that value, and ``ID`` with an empty ``VALUE`` deletes it
(https://apidocs.bitrix24.com/api-reference/crm/universal/crm-multifield.html). So a phone set
is written as the minimal list of operations against the stored entries, never as a new list.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from syncd.model import Contact

__all__ = ["MULTI_FIELDS", "to_contact", "multi_ops", "first_value_ops", "parse_bx_time",
           "bx_time", "to_flag", "from_flag"]

MULTI_FIELDS = ("PHONE", "EMAIL", "WEB", "IM")
_TRUE = {"Y", "1", "TRUE", "YES"}


def parse_bx_time(value: Any) -> datetime | None:
    """Bitrix24's ISO time with the portal's offset → aware UTC (None if absent)."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:   # should not happen; the portal always sends an offset
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def bx_time(moment: datetime) -> str:
    """An aware time as the ISO string Bitrix24 filters and fields accept (seconds, UTC)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def to_flag(value: Any) -> bool:
    """A Bitrix24 yes/no user field ("Y"/"N", "1"/"0", bool) → bool."""
    return str(value).strip().upper() in _TRUE if value is not None else False


def from_flag(value: Any) -> str:
    """bool → the "1"/"0" a boolean user field (``UF_CRM_*``) accepts."""
    return "1" if (value is True or str(value).strip().upper() in _TRUE) else "0"


def to_contact(row: dict[str, Any], field_names: tuple[str, ...], dnc_field: str | None) -> Contact:
    """One ``crm.contact.list`` row → Contact (multi-value fields: their first value)."""
    fields: dict[str, Any] = {}
    for name in field_names:
        value = row.get(name)
        if name in MULTI_FIELDS:
            entries = value or []
            value = entries[0].get("VALUE") if entries else None
        fields[name] = value
    if dnc_field:
        fields[dnc_field] = to_flag(row.get(dnc_field))
    phones = tuple(e.get("VALUE", "") for e in row.get("PHONE") or () if e.get("VALUE"))
    return Contact(id=str(row["ID"]), fields=fields, phones=phones,
                   updated_at=parse_bx_time(row.get("DATE_MODIFY")))


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def multi_ops(existing: list[dict[str, Any]], wanted: tuple[str, ...], value_type: str = "WORK"
              ) -> list[dict[str, Any]]:
    """The entries to send so the stored multi-value set becomes ``wanted`` (in place).

    Numbers are compared by their digits, so ``"+38 050 111"`` already stored satisfies
    ``"+38050111"`` (kept as typed). Stored entries that are no longer wanted are reused for
    new values (``ID`` + new ``VALUE``), the rest deleted (``ID`` + empty ``VALUE``); only
    values left over are appended without ``ID``. Duplicates in the store are removed.
    Returns [] when nothing changes.
    """
    wanted_keys: list[str] = []
    wanted_values: dict[str, str] = {}
    for value in wanted:
        key = _digits(value) or value
        if key not in wanted_values:
            wanted_keys.append(key)
            wanted_values[key] = value
    satisfied: set[str] = set()
    spare: list[dict[str, Any]] = []
    for entry in existing:
        key = _digits(entry.get("VALUE", "")) or entry.get("VALUE", "")
        if key in wanted_values and key not in satisfied:
            satisfied.add(key)
        else:
            spare.append(entry)
    ops: list[dict[str, Any]] = []
    for key in wanted_keys:
        if key in satisfied:
            continue
        if spare:
            entry = spare.pop(0)
            ops.append({"ID": str(entry["ID"]), "VALUE": wanted_values[key],
                        "VALUE_TYPE": entry.get("VALUE_TYPE") or value_type})
        else:
            ops.append({"VALUE": wanted_values[key], "VALUE_TYPE": value_type})
    ops.extend({"ID": str(entry["ID"]), "VALUE": ""} for entry in spare)
    return ops


def first_value_ops(existing: list[dict[str, Any]], value: Any, value_type: str = "WORK"
                    ) -> list[dict[str, Any]]:
    """Set the first entry of a multi-value field (e.g. ``EMAIL``) in place; "" clears it."""
    if existing:
        if (existing[0].get("VALUE") or "") == (value or ""):
            return []
        return [{"ID": str(existing[0]["ID"]), "VALUE": value or ""}]
    return [{"VALUE": value, "VALUE_TYPE": value_type}] if value else []
