"""Canonical fields ⇄ each side's own fields, and validation of what a side sends.

A *canonical record* is ``{canonical field: JSON value}`` plus two reserved fields:
``phones`` (a list of E.164 numbers, in the side's order) and ``do_not_call`` (a bool, when
``[do_not_call] crm_field`` is set). Side field names come from ``[contacts.fields]``.
Anything that cannot be mapped raises :class:`InvalidRecord` with a reason a person can act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..config import Config
from ..errors import InvalidRecord
from ..model import Contact
from ..phones import normalize_many

__all__ = ["Side", "FieldSpec", "Mapping", "Observed", "PHONES", "DNC", "DELETED", "is_empty", "same"]

Side = Literal["crm", "okitoki"]
PHONES, DNC = "phones", "do_not_call"
DELETED = "__deleted"   # side-values key (never canonical): the record was deleted on that side
MAX_TEXT = 4000
MAX_PHONES = 20
_TRUE = {"1", "true", "yes", "y", "on", "t"}
_FALSE = {"0", "false", "no", "n", "off", "f", ""}


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field: its name on each side, the sync direction, the conflict policy."""

    name: str
    crm: str | None
    okitoki: str | None
    sync: str = "both"          # both | to_crm | to_okitoki
    conflict: str = "newest"    # crm | okitoki | newest | forward | manual

    def side_name(self, side: Side) -> str | None:
        return self.crm if side == "crm" else self.okitoki

    def flows_to(self, side: Side) -> bool:
        """Whether values of this field may be written to ``side``."""
        if self.side_name(side) is None and self.name not in (PHONES,):
            return False
        return self.sync == "both" or self.sync == f"to_{side}"


@dataclass(frozen=True)
class Observed:
    """A record as read from one side, in canonical form (validated)."""

    side: Side
    id: str
    values: dict[str, Any]
    updated_at: datetime | None
    deleted: bool = False
    dropped_phones: tuple[str, ...] = ()   # reasons for invalid numbers dropped from a contact


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def same(field: str, a: Any, b: Any) -> bool:
    """Equality as the merge sees it: phones compare as sets, empties are all alike."""
    if is_empty(a) and is_empty(b):
        return True
    if field == PHONES and isinstance(a, list) and isinstance(b, list):
        return set(a) == set(b)
    return bool(a == b)


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidRecord(f"{where}: {value!r} is not a yes/no value")


def _clean(value: Any, where: str) -> Any:
    """A plain JSON value, trimmed; raises InvalidRecord for what cannot be stored or sent."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRecord(f"{where}: contains a NUL character")
        if len(value) > MAX_TEXT:
            raise InvalidRecord(f"{where}: text longer than {MAX_TEXT} characters")
        value = value.strip()
        return value or None
    if isinstance(value, float) and value != value:
        raise InvalidRecord(f"{where}: NaN is not a value")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_clean(v, where) for v in value]
    if isinstance(value, dict):
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidRecord(f"{where}: not a JSON value") from None
        if "\\u0000" in text:
            raise InvalidRecord(f"{where}: contains a NUL character")
        return value
    raise InvalidRecord(f"{where}: unsupported value of type {type(value).__name__}")


class Mapping:
    """The field map of one configuration: reads sides into canonical records and back."""

    def __init__(self, config: Config) -> None:
        self.region = config.contacts.default_region
        specs: dict[str, FieldSpec] = {}
        for name, fm in config.contacts.fields.items():
            specs[name] = FieldSpec(name, fm.crm, fm.okitoki, fm.sync, fm.conflict)
        specs.setdefault(PHONES, FieldSpec(PHONES, None, None, "both", "newest"))
        dnc_field = config.do_not_call.crm_field
        if dnc_field and DNC not in specs:
            specs[DNC] = FieldSpec(DNC, dnc_field, None, "to_okitoki", "crm")
        self.specs = specs
        self.status_field = config.calls.status_field
        self.status_order = list(config.calls.status_order)

    @property
    def dnc_enabled(self) -> bool:
        return DNC in self.specs

    def crm_field_names(self) -> tuple[str, ...]:
        return tuple(s.crm for s in self.specs.values() if s.crm)

    def observe(self, side: Side, contact: Contact) -> Observed:
        """Validate and map one side's record; raises InvalidRecord with the reason."""
        if not isinstance(contact.id, str) or not contact.id.strip():
            raise InvalidRecord("record has no id")
        if contact.deleted:
            # Only the id matters (a hard delete found by verify has nothing else): what the
            # record held before, however malformed, must not keep its deletion out.
            at = contact.updated_at if isinstance(contact.updated_at, datetime) \
                and contact.updated_at.tzinfo is not None else None
            return Observed(side, contact.id, {}, at, True)
        if contact.updated_at is not None and contact.updated_at.tzinfo is None:
            raise InvalidRecord("updated_at has no time zone", record_id=contact.id)
        values: dict[str, Any] = {}
        try:
            for spec in self.specs.values():
                if spec.name == PHONES:
                    continue
                key = spec.side_name(side)
                if key is None or key not in contact.fields:
                    continue
                raw = contact.fields[key]
                if spec.name == DNC:
                    values[DNC] = _as_bool(raw, f"{side} field {key}")
                else:
                    values[spec.name] = _clean(raw, f"{side} field {key}")
            phones_raw = contact.phones
            if isinstance(phones_raw, str) or not isinstance(phones_raw, (list, tuple)):
                raise InvalidRecord("phones is not a list of numbers")
            if len(phones_raw) > MAX_PHONES:
                raise InvalidRecord(f"{len(phones_raw)} phone numbers (at most {MAX_PHONES})")
            for p in phones_raw:
                if not isinstance(p, str):
                    raise InvalidRecord(f"phone {p!r} is not text")
            phones, problems = normalize_many(phones_raw, self.region)
            if phones_raw and not phones:
                raise InvalidRecord("no valid phone number: " + "; ".join(problems))
        except InvalidRecord as exc:
            raise InvalidRecord(exc.reason, record_id=contact.id) from None
        values[PHONES] = list(phones)
        return Observed(side, contact.id, values, contact.updated_at, contact.deleted, tuple(problems))

    def writable(self, side: Side, values: dict[str, Any]) -> dict[str, Any]:
        """The values that may be written to ``side``: mapped there, allowed by ``sync``, non-empty."""
        out = {}
        for name, value in values.items():
            spec = self.specs.get(name)
            if spec is not None and spec.flows_to(side) and not is_empty(value):
                out[name] = value
        return out

    def to_side(self, side: Side, values: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...] | None]:
        """Canonical values → (side fields, phones or None) for a ContactWrite."""
        fields: dict[str, Any] = {}
        phones: tuple[str, ...] | None = None
        for name, value in values.items():
            if name == PHONES:
                phones = tuple(value or ())
                continue
            spec = self.specs.get(name)
            key = spec.side_name(side) if spec else None
            if key:
                fields[key] = value
        return fields, phones
