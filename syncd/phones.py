"""Phone numbers: E.164 normalisation and the time zone of a number.

Both sides store numbers however people typed them (``"+38 (067) 123-45-67"``,
``"0671234567"``, ``"48 601 234 567"``, ``"+52 1 55 1234 5678"``). Matching and dialer tasks
need one canonical form: E.164 (``"+380671234567"``). Parsing is done by ``phonenumbers``
(Google's libphonenumber metadata), with the configured default region for numbers written
without a country code.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from phonenumbers import timezone as pn_timezone

from .errors import InvalidRecord

__all__ = ["normalize", "normalize_or_none", "normalize_many", "timezone_for", "is_valid",
           "region_of", "national_number"]

_UNKNOWN_ZONE = "Etc/Unknown"
_CANONICAL_MAX = 65536
# E.164 numbers this process has produced from a valid parse: the same text read back (an
# Oki-Toki export returns what we wrote) is already canonical and needs no second parse.
# Bounded: cleared when full (the parse cache below still answers).
_canonical: set[str] = set()


@lru_cache(maxsize=65536)
def _parse(raw: str, region: str) -> str:
    text = raw.strip()
    if not text:
        raise InvalidRecord("empty phone number")
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    # "48 601 234 567" / "380671234567": an international number written without the "+".
    if not text.startswith(("+", "0")) and len(digits) >= 11:
        candidates.append("+" + digits)
    # Mexico dropped the mobile "1" after +52 in 2019; old records still carry it.
    intl = digits[2:] if text.startswith("00") else digits   # "00" is the international prefix
    if intl.startswith("521") and len(intl) == 13 and text.startswith(("+", "00", "52")):
        candidates.append("+52" + intl[3:])
    last_error = "not a phone number"
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except NumberParseException as exc:
            last_error = str(exc.args[0]) if exc.args else "not a phone number"
            continue
        if phonenumbers.is_valid_number(number):
            e164: str = phonenumbers.format_number(number, PhoneNumberFormat.E164)
            if len(_canonical) >= _CANONICAL_MAX:
                _canonical.clear()
            _canonical.add(e164)
            return e164
        last_error = "not a valid number for its country"
    raise InvalidRecord(f"phone {raw!r}: {last_error} (default region {region})")


def normalize(raw: str, default_region: str = "UA") -> str:
    """``raw`` as E.164 (``"+380671234567"``); raises :class:`InvalidRecord` with the reason.

    Numbers without a country code are read in ``default_region`` (ISO 3166 code, e.g. "UA").
    Pure and cached: safe to call for every record of a large sync.
    """
    if not isinstance(raw, str):
        raise InvalidRecord(f"phone {raw!r}: not a string")
    if raw in _canonical:
        # a valid number's E.164 form parses back to itself whatever the default region
        return raw
    return _parse(raw, (default_region or "ZZ").upper())


def normalize_or_none(raw: str | None, default_region: str = "UA") -> str | None:
    """Like :func:`normalize`, but None for an empty or invalid number (for comparisons)."""
    if not raw:
        return None
    try:
        return normalize(raw, default_region)
    except InvalidRecord:
        return None


def is_valid(raw: str, default_region: str = "UA") -> bool:
    try:
        normalize(raw, default_region)
    except InvalidRecord:
        return False
    return True


def normalize_many(raws: Iterable[str], default_region: str = "UA") -> tuple[tuple[str, ...], list[str]]:
    """Normalise several numbers: (unique E.164 numbers in input order, reasons for the invalid)."""
    seen: dict[str, None] = {}
    problems: list[str] = []
    for raw in raws:
        try:
            seen.setdefault(normalize(raw, default_region), None)
        except InvalidRecord as exc:
            problems.append(exc.reason)
    return tuple(seen), problems


def region_of(e164: str) -> str | None:
    """The country (ISO 3166 code) of an E.164 number, for reading a CRM's national spellings
    of it; None when it does not parse or belongs to no single country."""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return None
    return phonenumbers.region_code_for_number(number)


def national_number(e164: str) -> str | None:
    """The national significant number of an E.164 number (``+380671234567`` → ``671234567``),
    what CRM full-text searches find; None when it does not parse."""
    try:
        return str(phonenumbers.parse(e164, None).national_number)
    except NumberParseException:
        return None


@lru_cache(maxsize=65536)
def timezone_for(e164: str) -> str | None:
    """The IANA time zone of an E.164 number, for a dialer task's ``region``; None if unknown.

    When the number's prefix spans several zones (large countries), the alphabetically first
    zone is returned, so the answer is deterministic; callers that need better precision
    should send no region (the dialer then uses its own schedule).
    """
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return None
    zones = [z for z in pn_timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE]
    return sorted(zones)[0] if zones else None
