"""`syncd trace`: one contact's story answers "why was this customer called, or not?"."""

from __future__ import annotations

import pytest

from syncd.engine.trace import render_trace, trace

SQLITE_ONLY = pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_the_story_of_a_called_contact_then_put_on_do_not_call(world):
    syncer, sb, crm = world
    cid = crm.add(("0671230000",), name="Caller", status="new", do_not_call=False)
    syncer.cycle()
    sb.add_call(phone="380671230000", direction="in", outcome="answered")
    syncer.cycle()
    syncer.cycle()    # the status the call set is read back, and the contact leaves the dialer
    report = trace(syncer.store, syncer.ctx.config, f"crm:{cid}")
    [story] = report["contacts"]
    assert story["link"]["crm_id"] == cid and story["link"]["okitoki_id"]
    assert story["fields"]["name"] == {"crm": "Caller", "okitoki": "Caller", "agreed": "Caller"}
    [task] = story["tasks"]
    assert task["dialer_id"] == "101" and task["state"] == "removed" and task["task_id"]
    rule = story["dialer_rules"][0]
    # the call moved the status to "contacted", which the new-leads rule does not take
    assert not rule["matches"] and "status is 'contacted', not one of ['new', 'callback']" in rule["why"]
    kinds = [(e["kind"], e.get("operation")) for e in story["events"]]
    assert {("queued", "add_task"), ("queued", "log_call"), ("queued", "status"),
            ("queued", "remove_task")} <= set(kinds)
    assert any(e["kind"] == "call" and e["outcome"] == "answered" and e["status"] == "logged"
               for e in story["events"])
    times = [e["at"] for e in story["events"]]
    assert times == sorted(times)

    crm.edit(cid, do_not_call=True)
    syncer.cycle()
    by_phone = trace(syncer.store, syncer.ctx.config, "+380 67 123 0000")
    assert by_phone["looked_up"] == "phone +380671230000"
    [story] = by_phone["contacts"]
    assert "do-not-call" in story["dialer_rules"][0]["why"]
    assert any(e.get("operation") == "dnc_add" for e in story["events"])
    text = render_trace(by_phone)
    assert "✗ new-leads (dialer 101): do-not-call" in text and "dnc_add" in text


def test_unknown_and_unreadable_names(world):
    syncer, _, _ = world
    assert trace(syncer.store, syncer.ctx.config, "crm:nope")["contacts"] == []
    with pytest.raises(ValueError, match="neither crm:ID, okitoki:ID nor a phone number"):
        trace(syncer.store, syncer.ctx.config, "hello")
