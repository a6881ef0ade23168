"""Do-not-call both ways: a number an agent put on the Oki-Toki blacklist during a call sets
the CRM contact's do-not-call flag (and its task comes off the dialer); the check costs one
request per answered number per day."""

from __future__ import annotations

import httpx
import pytest


SQLITE_ONLY = pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)


def _blacklist(sb, phone):
    httpx.post(f"{sb.api_url}/lists/add", data={"api_token": sb.token, "list_id": 7, "values": phone}
               ).raise_for_status()


def _checks(sb):
    return sb.requests()["by_operation"].get("lists/check", 0)


@SQLITE_ONLY
def test_a_number_blacklisted_by_an_agent_sets_do_not_call_in_the_crm(world):
    syncer, sb, crm = world
    listed = crm.add(("0671231111",), name="Asked Not To", status="new", do_not_call=False)
    other = crm.add(("0671232222",), name="Happy", status="new", do_not_call=False)
    syncer.cycle()
    assert len([t for t in sb.state()["tasks"] if t["status"] == "pending"]) == 2
    sb.add_call(phone="380671231111", direction="in", outcome="answered")
    sb.add_call(phone="380671232222", direction="in", outcome="answered")
    sb.add_call(phone="380671232222", direction="in", outcome="no_answer")
    _blacklist(sb, "380671231111")           # the agent, during the call
    for _ in range(3):
        assert not syncer.cycle().errors
    assert crm.rows[listed].fields["do_not_call"] is True
    assert crm.rows[other].fields["do_not_call"] is False
    pending = [t for t in sb.state()["tasks"] if t["status"] == "pending"]
    assert all("380671231111" not in "".join(t["phones"]) for t in pending)
    assert _checks(sb) == 2                  # one per answered number, none for no_answer
    sb.add_call(phone="380671232222", direction="in", outcome="answered")
    for _ in range(2):
        syncer.cycle()
    assert _checks(sb) == 2, "a number checked twice the same day"
