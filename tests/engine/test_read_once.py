"""Per-contact work the push and the pulls no longer repeat (issue 9 part 3, second pass):
a number we produced is not parsed again, an Oki-Toki batch's links are read once."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from syncd.engine.handlers import LINKED_FRESH, _LinkedNow
from syncd.engine.journalids import rows_records
from syncd.errors import InvalidRecord
from syncd.phones import normalize


class _NoStore:
    """A store that fails any read: proves a path did not go to the database."""

    def begin(self) -> Any:
        raise AssertionError("unexpected state-database read")

    read = begin


def test_a_number_read_back_in_its_e164_form_is_the_same_number_and_an_invalid_one_still_fails() -> None:
    e164 = normalize("+380 50 123 45 67")
    assert e164 == "+380501234567"
    # read back (as an Oki-Toki export returns it), in any default region: the same number
    assert normalize(e164) == e164 and normalize(e164, "US") == e164
    with pytest.raises(InvalidRecord):
        normalize("+3805012")          # never produced by a valid parse: still checked


def test_journal_record_ids_come_from_the_callers_link_read_when_it_holds_every_link() -> None:
    ctx = SimpleNamespace(store=_NoStore())
    rows = [SimpleNamespace(id=1, link_id=10, payload={}), SimpleNamespace(id=2, link_id=11, payload={})]
    links = {10: SimpleNamespace(crm_id="c10", okitoki_id="o10"),
             11: SimpleNamespace(crm_id="c11", okitoki_id=None)}
    assert rows_records(ctx, rows, links) == {1: ("crm:c10", "okitoki:o10"), 2: ("crm:c11",)}


def test_journal_record_ids_are_read_when_the_callers_links_miss_one() -> None:
    ctx = SimpleNamespace(store=_NoStore())
    rows = [SimpleNamespace(id=1, link_id=10, payload={}), SimpleNamespace(id=2, link_id=12, payload={})]
    with pytest.raises(AssertionError, match="unexpected state-database read"):
        rows_records(ctx, rows, {10: SimpleNamespace(crm_id="c10", okitoki_id=None)})


def test_a_create_sees_the_batch_link_read_while_it_is_fresh_and_reads_again_once_it_is_old() -> None:
    ctx = SimpleNamespace(store=_NoStore())
    links = {10: SimpleNamespace(okitoki_id=None), 11: SimpleNamespace(okitoki_id="o11")}
    fresh = _LinkedNow(ctx, [10, 11], seen=(links, time.monotonic()))
    assert fresh.get(10) is None and fresh.get(11) == "o11"      # no read: the view is fresh
    old = _LinkedNow(ctx, [10, 11], seen=(links, time.monotonic() - LINKED_FRESH - 0.1))
    with pytest.raises(AssertionError, match="unexpected state-database read"):
        old.get(10)                                                 # too old: read again
