"""The connectors read stored numbers exactly as the engine does (one normalisation,
:mod:`syncd.phones`), so a lookup in a CRM finds the contacts the engine would link."""

from __future__ import annotations

import pytest

from connectors.bottlecrm import e164 as bottlecrm_e164
from connectors.sql.phones import e164 as sql_e164
from syncd.phones import normalize_or_none, region_of

# (spelling as stored in a CRM, country it is read in when written without a country code)
TRICKY = [
    # Mexico: mobiles stored with the "1" after +52 that was dropped in 2019
    ("+52 1 55 1234 5678", "MX"), ("+5215512345678", "MX"), ("00 52 1 55 1234 5678", "MX"),
    ("52 1 55 1234 5678", "MX"), ("+52 55 1234 5678", "MX"), ("55 1234 5678", "MX"),
    ("044 55 1234 5678", "MX"),
    # Ukraine: with and without the trunk 0, with the country code, with a stray 0 after it
    ("+380 67 123 4567", "UA"), ("0671234567", "UA"), ("67 123 4567", "UA"),
    ("380671234567", "UA"), ("+38 (067) 123-45-67", "UA"), ("+380 067 123 4567", "UA"),
    # Poland
    ("+48 601 234 567", "PL"), ("48601234567", "PL"), ("601 234 567", "PL"),
    # invalid: one digit short or long, too short, a number no country gives out
    ("+48 601 234 56", "PL"), ("+380 67 123 45 678", "UA"), ("12345", "UA"),
    ("+52 1 55 1234 567", "MX"), ("+48 000 000 000", "PL"),
]
WANTED = ["+525512345678", "+380671234567", "+48601234567"]


@pytest.mark.parametrize("connector_e164", [sql_e164, bottlecrm_e164], ids=["sql", "bottlecrm"])
@pytest.mark.parametrize("raw, region", TRICKY)
def test_connector_normalisation_is_the_engines(connector_e164, raw, region):
    assert connector_e164(raw, region) == normalize_or_none(raw, region)


def test_sql_lookup_finds_exactly_the_contacts_the_engine_matches(sql_backend):
    """Every tricky spelling stored in a SQL CRM is found by the number the engine turns it
    into (reading it in the looked-for number's country), and invalid ones by none."""
    ids = {sql_backend.create_contact({"name": f"n{i}"}, [raw]): raw for i, (raw, _) in enumerate(TRICKY)}
    connector = sql_backend.connector()
    for wanted in WANTED:
        engine = {i for i, raw in ids.items() if normalize_or_none(raw, region_of(wanted)) == wanted}
        assert engine, wanted
        assert {c.id for c in connector.find_by_phone(wanted)} == engine, wanted
