"""The three-way merge: every policy, "empty never erases", deterministic ties, no echo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.engine.mapping import FieldSpec
from syncd.engine.merge import merge_fields

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ORDER = ["new", "callback", "contacted", "won"]


def spec(policy="newest", sync="both", name="f"):
    return FieldSpec(name, crm=name, okitoki=name, sync=sync, conflict=policy)


def merge(policy, base, crm, oki, *, crm_ts=T0, oki_ts=T0, sync="both"):
    return merge_fields([spec(policy, sync)], None if base is ... else {"f": base},
                        {"f": crm}, {"f": oki}, crm_ts=crm_ts, okitoki_ts=oki_ts, status_order=ORDER)


def test_value_written_back_is_not_an_echo():
    out = merge("newest", "a", "a", "a")
    assert out.to_crm == {} and out.to_okitoki == {} and out.conflicts == []


def test_change_on_one_side_goes_to_the_other():
    out = merge("newest", "a", "b", "a")
    assert out.to_okitoki == {"f": "b"} and out.to_crm == {} and out.agreed == {"f": "b"}
    out = merge("newest", "a", "a", "c")
    assert out.to_crm == {"f": "c"} and out.to_okitoki == {}


@pytest.mark.parametrize("policy,winner,value", [("crm", "crm", "b"), ("okitoki", "okitoki", "c")])
def test_side_policies_pick_their_side(policy, winner, value):
    out = merge(policy, "a", "b", "c")
    assert out.agreed == {"f": value}
    assert [(c.winner, c.rule) for c in out.conflicts] == [(winner, policy)]


def test_newest_takes_the_later_server_time():
    out = merge("newest", "a", "b", "c", crm_ts=T0, oki_ts=T0 + timedelta(seconds=1))
    assert out.agreed == {"f": "c"} and out.to_crm == {"f": "c"} and out.to_okitoki == {}
    out = merge("newest", "a", "b", "c", crm_ts=T0 + timedelta(seconds=1), oki_ts=T0)
    assert out.agreed == {"f": "b"} and out.to_okitoki == {"f": "b"}


def test_newest_tie_is_broken_deterministically_for_crm():
    for _ in range(3):
        assert merge("newest", "a", "b", "c").agreed == {"f": "b"}
    assert merge("newest", "a", "b", "c", crm_ts=None, oki_ts=None).agreed == {"f": "b"}


def test_forward_takes_the_further_status():
    assert merge("forward", "new", "callback", "won").agreed == {"f": "won"}
    assert merge("forward", "new", "won", "callback").agreed == {"f": "won"}
    assert merge("forward", "new", "unknown", "callback").agreed == {"f": "callback"}


def test_manual_holds_the_field_and_keeps_both_values():
    out = merge("manual", "a", "b", "c")
    assert out.to_crm == {} and out.to_okitoki == {} and out.agreed == {"f": "a"}
    (c,) = out.conflicts
    assert (c.winner, c.crm, c.okitoki, c.base) == ("held", "b", "c", "a")


@pytest.mark.parametrize("policy", ["crm", "okitoki", "newest", "forward"])
def test_empty_never_erases_a_non_empty_value(policy):
    out = merge(policy, "a", "", "c")          # CRM emptied, Oki-Toki changed: keep a value
    assert out.agreed["f"] == "c" and out.to_okitoki == {}
    out = merge(policy, "a", None, "a")        # CRM emptied alone: nothing erased on Oki-Toki
    assert out.to_okitoki == {} and out.agreed == {"f": "a"}


def test_emptied_side_is_not_refilled_and_repeats_write_nothing():
    out = merge("newest", "a", "", "a")
    assert out.to_crm == {} and out.to_okitoki == {}


def test_first_merge_fills_empty_fields_both_ways_and_journals_nothing():
    out = merge_fields([spec(name="x"), spec(name="y")], None, {"x": "1", "y": None},
                       {"x": None, "y": "2"})
    assert out.to_okitoki == {"x": "1"} and out.to_crm == {"y": "2"}
    assert out.agreed == {"x": "1", "y": "2"}


def test_first_merge_with_differing_values_applies_the_policy_without_journal():
    out = merge("crm", ..., "b", "c")
    assert out.agreed == {"f": "b"} and out.to_okitoki == {"f": "b"}
    assert all(not c.journal for c in out.conflicts)


def test_one_way_field_goes_only_its_way():
    out = merge("newest", "a", "a", "c", sync="to_okitoki")   # Oki-Toki edit of a CRM-owned field
    assert out.to_crm == {} and out.to_okitoki == {"f": "a"}
    out = merge("newest", "a", "b", "a", sync="to_crm")      # the owner side's value is restored
    assert out.to_okitoki == {} and out.to_crm == {"f": "a"}
    out = merge("newest", "a", "a", "a", sync="to_crm")
    assert out.to_okitoki == {} and out.to_crm == {}


def test_do_not_call_yes_wins_every_conflict():
    dnc = FieldSpec("do_not_call", crm="dnc", okitoki="details.dnc", conflict="okitoki")
    out = merge_fields([dnc], {"do_not_call": False}, {"do_not_call": True}, {"do_not_call": None})
    assert out.agreed == {"do_not_call": True}
    out = merge_fields([dnc], {"do_not_call": None}, {"do_not_call": False}, {"do_not_call": True})
    assert out.agreed == {"do_not_call": True} and out.to_crm == {"do_not_call": True}


def test_phones_compare_as_sets():
    ph = FieldSpec("phones", None, None)
    out = merge_fields([ph], {"phones": ["+1", "+2"]}, {"phones": ["+2", "+1"]}, {"phones": ["+1", "+2"]})
    assert out.to_crm == {} and out.to_okitoki == {}
