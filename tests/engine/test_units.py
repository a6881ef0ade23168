"""Rules, phones, outbox policy, cursors' arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.config import DialerRule
from syncd.engine.callwrites import is_forward
from syncd.engine.cursors import StreamCursor, window_start
from syncd.engine.outbox import Backoff, Lane, classify
from syncd.engine.rules import rule_matches, task_payload, wanted_dialers
from syncd.errors import (AuthenticationError, BudgetExhausted, InvalidRecord, InvalidRequest,
                          Throttled, TransientError)
from syncd.phones import normalize, normalize_many, timezone_for

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("raw,region,e164", [
    ("+38 (067) 123-45-67", "UA", "+380671234567"),
    ("0671234567", "UA", "+380671234567"),
    ("380671234567", "UA", "+380671234567"),
    ("48 601 234 567", "UA", "+48601234567"),
    ("601 234 567", "PL", "+48601234567"),
    ("+52 1 55 1234 5678", "UA", "+525512345678"),
    ("+52 55 1234 5678", "MX", "+525512345678"),
    ("55 1234 5678", "MX", "+525512345678"),
])
def test_numbers_in_mixed_formats_normalise_to_e164(raw, region, e164):
    assert normalize(raw, region) == e164


@pytest.mark.parametrize("raw", ["", "123", "abc", "+380 12", "0000000000000000"])
def test_invalid_numbers_raise_invalid_record_with_a_reason(raw):
    with pytest.raises(InvalidRecord) as exc:
        normalize(raw, "UA")
    assert exc.value.reason


def test_normalize_many_dedupes_and_reports_the_bad_ones():
    phones, problems = normalize_many(["0671234567", "+380671234567", "bad"], "UA")
    assert phones == ("+380671234567",) and len(problems) == 1


def test_timezone_of_a_number_is_deterministic():
    assert timezone_for("+380671234567") == "Europe/Kyiv"
    assert timezone_for("+48601234567") == "Europe/Warsaw"
    assert timezone_for("+12125550123") == "America/New_York"
    assert timezone_for("+79161234567") == timezone_for("+79161234567")
    assert timezone_for("not a number") is None


def rule(**kw):
    return DialerRule(name=kw.pop("name", "r"), dialer_id=kw.pop("dialer_id", 101), **kw)


def test_rule_matches_on_allowed_values_only():
    r = rule(when={"status": ["new", "callback"]})
    assert rule_matches(r, {"status": "new", "phones": ["+380671234567"]})
    assert not rule_matches(r, {"status": "won", "phones": ["+380671234567"]})
    assert not rule_matches(r, {"status": "new", "phones": []})
    assert not rule_matches(r, {"status": "new", "phones": ["+1"], "do_not_call": True})
    assert rule_matches(rule(when={"score": [5]}), {"score": "5", "phones": ["+1"]})


def test_first_rule_per_dialer_wins_and_task_payload_limits_phones():
    rules = [rule(name="a", when={"s": [1]}, priority=2), rule(name="b", when={}, dialer_id=102),
             rule(name="c", when={}, priority=0)]
    wanted = wanted_dialers(rules, {"s": 1, "phones": ["+380671234567"]})
    assert {d: r.name for d, r in wanted.items()} == {"101": "a", "102": "b"}
    payload = task_payload(rule(when={}, ttl="3d", region_from_phone=True, priority=1),
                           {"phones": [f"+38067123456{i}" for i in range(7)]})
    assert len(payload["phones"]) == 5 and payload["ttl_s"] == 259200
    assert payload["region"] == "Europe/Kyiv" and payload["priority"] == 1


def test_status_moves_only_forward():
    order = ["new", "callback", "contacted", "won"]
    assert is_forward("new", "contacted", order)
    assert not is_forward("contacted", "callback", order)
    assert not is_forward("won", "won", order)
    assert is_forward(None, "callback", order)
    assert not is_forward("new", "bogus", order)


def test_lanes_are_in_priority_order():
    assert [l.name for l in sorted(Lane)] == ["DO_NOT_CALL", "CALLS", "STATUSES", "TASKS",
                                              "CONTACTS", "BACKFILL"]


def test_backoff_grows_exponentially_up_to_the_cap():
    b = Backoff(base=1, factor=2, cap=10, jitter=0)
    assert [b.delay(n).total_seconds() for n in range(6)] == [1, 2, 4, 8, 10, 10]


@pytest.mark.parametrize("exc,action", [
    (InvalidRecord("bad"), "dead"),
    (InvalidRequest("422", status=422), "dead"),
    (AuthenticationError("401", status=401), "stop"),
    (BudgetExhausted("spent"), "stop"),
    (TransientError("503", status=503), "retry"),
])
def test_errors_map_to_retry_dead_or_stop(exc, action):
    assert classify(exc, attempts=0, now=NOW, backoff=Backoff()).action == action


def test_retry_after_is_honoured_and_not_counted_as_an_attempt():
    v = classify(Throttled("429", retry_after=timedelta(seconds=42)), attempts=3, now=NOW, backoff=Backoff())
    assert v.action == "retry" and v.at == NOW + timedelta(seconds=42) and not v.count_attempt


def test_retries_give_up_into_a_dead_letter():
    v = classify(TransientError("503"), attempts=9, now=NOW, backoff=Backoff(max_attempts=10))
    assert v.action == "dead" and "gave up after 10 attempts" in v.reason


def test_window_starts_overlap_before_the_cursor():
    cur = StreamCursor("s", NOW)
    assert window_start(cur, timedelta(minutes=10), initial=NOW) == NOW - timedelta(minutes=10)
    assert window_start(StreamCursor("s"), timedelta(minutes=10), initial=NOW - timedelta(days=1)) \
        == NOW - timedelta(days=1)


def test_an_old_mexican_mobile_written_with_the_00_prefix_is_normalised() -> None:
    from syncd.phones import normalize
    assert normalize("0052 1 55 12345678", "UA") == normalize("+52 55 1234 5678", "UA") == "+525512345678"


def test_a_crm_full_of_phones_is_not_an_edit_that_erases_the_others() -> None:
    from syncd.engine.ingest import _full_not_edited
    agreed = {"phones": ["+380933334455", "+380443334455"]}
    full = _full_not_edited({"phones": ["+380933334455"]}, agreed, cap=1)
    assert full["phones"] == agreed["phones"]
    edited = _full_not_edited({"phones": ["+380671112233"]}, agreed, cap=1)   # a new number
    assert edited["phones"] == ["+380671112233"]


def test_a_record_that_reads_fine_later_resolves_only_its_own_dead_letters(store) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from syncd.engine.context import OUTBOX
    from syncd.engine.ingest import _resolve_old_quarantine, quarantine
    now = datetime(2026, 11, 27, 10, tzinfo=UTC)
    with store.begin() as conn:
        for rid in ("42", "421", "4:2"):
            quarantine(conn, side="crm", record_id=rid, reason="no valid phone", payload={"id": rid},
                       now=now, stamp=now.isoformat())
        _resolve_old_quarantine(conn, "crm", ["42", "4:2"], now)
        states = dict(conn.execute(select(OUTBOX.c.idem_key, OUTBOX.c.status)).all())
    assert sorted(states.values()) == ["dead", "done", "done"]
    assert states[f"ingest:crm:421:{now.isoformat()}"] == "dead"
