"""Phone numbers as a SQL CRM keeps them: several columns, mixed spellings.

Stored values are compared by their E.164 form. A value written without a country code
(``067 123 4567``) is read in the country of the number being looked for, which is how a
person reading the CRM would take it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from syncd.phones import normalize_or_none

__all__ = ["e164", "distinct_phones", "like_pattern"]


def e164(value: Any, region: str | None = None) -> str | None:
    """``value`` in E.164, or None when it is empty or not a valid number. The engine's own
    normalisation (:func:`syncd.phones.normalize_or_none`), so that this connector and the
    engine always match the same contacts; without ``region`` only numbers written with their
    country code are read."""
    if value is None:
        return None
    return normalize_or_none(str(value).strip(), region or "ZZ")


def distinct_phones(phones: Iterable[str]) -> list[str]:
    """``phones`` without blanks and without a second spelling of the same number (order kept)."""
    seen: set[str] = set()
    out: list[str] = []
    for phone in phones:
        text = (phone or "").strip()
        if not text:
            continue
        key = e164(text) or "".join(ch for ch in text if ch.isdigit())
        if key in seen:
            continue
        seen.add(key)
        out.append(text)
    return out


def like_pattern(e164_number: str, digits: int = 7) -> str:
    """A LIKE pattern that every spelling of the number matches (the last ``digits`` digits in
    order, anything between them); a superset that is then verified exactly."""
    tail = [ch for ch in e164_number if ch.isdigit()][-digits:]
    return "%" + "%".join(tail) + "%"
