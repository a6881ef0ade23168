"""Small helpers of the conformance suite: changed-since walks, phone numbers, comparisons."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable

import phonenumbers

from ..connector import CrmConnector
from ..model import Contact, Cursor

__all__ = ["walk", "walk_to_end", "digits_e164", "phone_set", "fresh_phone", "same_nsn_other_country",
           "unique_text", "settle", "international_format"]


def walk(connector: CrmConnector, after: Cursor, limit: int, *, max_pages: int = 10_000
         ) -> tuple[list[Contact], Cursor, int]:
    """Follow ``changed_contacts`` from ``after`` until ``more`` is False.

    Returns (every contact in order, the final cursor, pages read). Fails loudly when a page
    breaks the protocol (more than ``limit`` records, or ``more`` without progress).
    """
    out: list[Contact] = []
    cursor, pages = after, 0
    while True:
        page = connector.changed_contacts(cursor, limit)
        pages += 1
        assert len(page.contacts) <= limit, (
            f"changed_contacts(limit={limit}) returned {len(page.contacts)} contacts")
        out.extend(page.contacts)
        if page.more:
            assert page.contacts or page.next != cursor, (
                f"changed_contacts returned more=True without progress at {cursor}")
        cursor = page.next
        if not page.more:
            return out, cursor, pages
        assert pages < max_pages, f"changed-since walk did not end after {max_pages} pages"


def walk_to_end(connector: CrmConnector, limit: int = 100) -> Cursor:
    """The cursor after everything the CRM holds now (where a test's own changes start)."""
    return walk(connector, Cursor(), limit)[1]


def digits_e164(phone: str) -> str:
    """E.164 of ``phone`` when it parses (with or without '+'), else its digits."""
    text = phone.strip()
    for candidate in (text, "+" + text.lstrip("+")):
        try:
            parsed = phonenumbers.parse(candidate, None)
        except phonenumbers.NumberParseException:
            continue
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return "+" + "".join(ch for ch in text if ch.isdigit())


def phone_set(phones: Iterable[str]) -> list[str]:
    """Normalised phones, sorted (duplicates kept, so a duplicated number shows)."""
    return sorted(digits_e164(p) for p in phones if p)


_rng = random.Random()


def fresh_phone(country: str = "UA") -> str:
    """A random valid mobile number in E.164 that no earlier test used (with high odds)."""
    prefixes = {"UA": ("+38067", 7), "PL": ("+4851", 7), "MX": ("+5255", 8)}
    prefix, n = prefixes[country]
    for _ in range(1000):
        number = prefix + "".join(str(_rng.randrange(10)) for _ in range(n))
        if phonenumbers.is_valid_number(phonenumbers.parse(number, None)):
            return number
    raise AssertionError(f"no valid {country} number with prefix {prefix}")  # pragma: no cover


def same_nsn_other_country(e164: str) -> str | None:
    """A valid number in another country with the same national digits (a substring trap)."""
    parsed = phonenumbers.parse(e164, None)
    nsn = phonenumbers.national_significant_number(parsed)
    for code in (48, 380, 49, 52, 1):
        if code == parsed.country_code:
            continue
        other = f"+{code}{nsn}"
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(other, None)):
                return other
        except phonenumbers.NumberParseException:
            continue
    return None


def international_format(e164: str) -> str:
    """``+380 67 123 4567``-style spelling of an E.164 number (spaces and dashes)."""
    parsed = phonenumbers.parse(e164, None)
    text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return text.replace(" ", "-", 2).replace("-", " ", 1)


def unique_text(prefix: str = "conf") -> str:
    """A short ASCII value no other test wrote."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def settle(seconds: float) -> None:
    """Let the CRM's clock and indexes move on (see ``ConformanceCrm.settle_seconds``)."""
    if seconds > 0:
        time.sleep(seconds)
