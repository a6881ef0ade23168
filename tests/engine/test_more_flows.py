"""The less travelled paths: deletions, do-not-call and back, unknown numbers, webhook hints,
dead-letter commands, resync, housekeeping, connector options."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from syncd.engine.build import build_syncer, connector_options
from syncd.engine.status import (drop_dead_letters, list_dead_letters, resync,
                                 retry_dead_letters, status_report)
from syncd.errors import ConfigError
from syncd.model import Contact
from syncd.store.tables import TaskRow

from .conftest import make_config
from .test_flows import _okitoki_contact, _writes

TASK = TaskRow.__table__


def test_deleted_crm_contact_loses_its_task_and_is_not_deleted_in_okitoki(world):
    syncer, sb, crm = world
    cid = crm.add(("0677770001",), name="Gone Soon", status="new")
    syncer.cycle()
    row = crm.rows.pop(cid)
    crm.injected.append(Contact(cid, dict(row.fields), row.phones, row.updated_at.replace(year=2027),
                                deleted=True))
    syncer.cycle()
    with syncer.store.begin() as conn:
        states = [r.state for r in conn.execute(select(TASK))]
    assert states == ["removed"]
    assert _okitoki_contact(sb, "Gone Soon")


def test_do_not_call_and_back_removes_the_numbers_it_listed(world):
    syncer, sb, crm = world
    cid = crm.add(("0677770002",), name="Flip", status="won", do_not_call=True)
    syncer.cycle()
    blacklist = lambda: next(l for l in sb.state()["lists"] if l["id"] == 7)["values"]  # noqa: E731
    assert any("380677770002" in v for v in blacklist())
    crm.edit(cid, do_not_call=False)
    syncer.cycle()
    assert not any("380677770002" in v for v in blacklist())
    writes = _writes(sb)
    syncer.cycle()
    assert _writes(sb) == writes


def test_unknown_number_gets_a_crm_contact_when_configured(state_url, sandbox, crm, tmp_path):
    from syncd.store import open_store
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         calls={"to_crm": True, "settle_delay": "0s", "overlap": "10m",
                                "unknown_numbers": "create_contact",
                                "status_order": ["new", "contacted"],
                                "outcome_status": {"answered": "contacted"}})
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "c", instance_id="t")
    try:
        syncer.cycle()
        sandbox.add_call(phone="380671118888", direction="in", outcome="answered")
        sandbox.add_call(phone="380671118888", direction="in", outcome="answered")
        for _ in range(3):
            syncer.cycle()
        made = [r for r in crm.rows.values() if "+380671118888" in r.phones]
        assert len(made) == 1
        assert len(crm.calls) == 2 and {c.contact_id for c in crm.calls.values()} == {made[0].id}
    finally:
        syncer.close()


def test_webhook_hint_reads_a_call_before_the_settle_delay(state_url, sandbox, crm, tmp_path):
    from syncd.store import open_store
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         calls={"to_crm": True, "settle_delay": "1h", "overlap": "10m"})
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "c", instance_id="t")
    try:
        crm.add(("0671117777",), name="Hinted", status="won")
        syncer.cycle()
        call = sandbox.add_call(phone="380671117777", direction="in", outcome="answered")
        syncer.cycle()
        assert crm.calls == {}
        syncer.hint_call(str(call["session_id"]))
        syncer.cycle()
        assert list(crm.calls) == [str(call["session_id"])]
    finally:
        syncer.close()


def test_dead_letters_can_be_retried_or_dropped(world):
    syncer, sb, crm = world
    crm.refuse.add("Refused")
    crm.injected.append(Contact("bad-1", {"name": "x"}, ("123",), None))
    sb.seed(contacts=[{"name": "Refused", "phones": ["380671116666"]}])
    syncer.cycle()
    dead = {d["operation"]: d for d in list_dead_letters(syncer.store)}
    assert set(dead) == {"ingest", "contact_create"}
    crm.refuse.clear()
    assert retry_dead_letters(syncer.store, [dead["contact_create"]["id"]]) == 1
    assert retry_dead_letters(syncer.store, [dead["ingest"]["id"]]) == 0   # fixed at the source only
    syncer.cycle()
    assert [r for r in crm.rows.values() if r.fields.get("name") == "Refused"]
    assert drop_dead_letters(syncer.store, None) == 1
    assert list_dead_letters(syncer.store) == []


def test_resync_rereads_everything_and_writes_nothing(world):
    syncer, sb, crm = world
    for i in range(5):
        crm.add((f"067888000{i}",), name=f"R{i}", status="new")
    syncer.cycle()
    syncer.cycle()
    writes = (_writes(sb), crm.writes)
    assert resync(syncer.store)["cursors_reset"] >= 2
    report = syncer.cycle()
    assert report.runs[0].counts.get("unchanged", 0) >= 5
    assert (_writes(sb), crm.writes) == writes


def test_housekeeping_prunes_old_settled_rows(world):
    from datetime import timedelta
    syncer, sb, crm = world
    crm.add(("0678880100",), name="Old", status="won")
    syncer.cycle()
    now = syncer.ctx.clock
    syncer.ctx.clock = lambda: now() + timedelta(days=40)
    report = syncer.housekeeping()
    assert report.counts.get("pruned_outbox", 0) >= 1 and report.counts.get("pruned_journal", 0) >= 1
    assert status_report(syncer.store)["outbox"] == {}


def test_connector_options_errors_name_the_key():
    class Connector:
        class Options(BaseModel):
            model_config = {"extra": "forbid"}
            url: str
            batch: int = 10

    with pytest.raises(ConfigError) as exc:
        connector_options(Connector, {"batch": "many", "typo": 1})
    lines = exc.value.problems
    assert any(l.startswith("crm.options.url:") for l in lines)
    assert any(l.startswith("crm.options.batch:") for l in lines)
    assert any(l.startswith("crm.options.typo:") for l in lines)


def test_a_call_read_before_its_contact_is_logged_once_the_crm_is_read(world):
    syncer, sb, crm = world
    cid = crm.add(("0671119991",), name="Read Late", status="new")
    sb.add_call(phone="380671119991", direction="in", outcome="answered")
    syncer.pull_okitoki_calls()            # the CRM has not been read yet: the number is unknown
    syncer.cycle()
    syncer.cycle()
    assert [c.contact_id for c in crm.calls.values()] == [cid]


def test_a_call_waits_for_a_crm_contact_not_read_yet_instead_of_being_skipped(world):
    """At first start the call log may be read before the CRM walk reaches the caller's
    contact: such a call waits (the calls cursor holds) instead of being skipped for good."""
    syncer, sb, crm = world
    sb.add_call(phone="380671112299", direction="in", outcome="answered", duration=30)
    report = syncer.pull_okitoki_calls()          # the CRM has not been read at all yet
    assert report.counts.get("waiting_for_crm") == 1 and not report.counts.get("unknown_number")
    crm.add(("0671112299",), name="Read Late", status="new")
    for _ in range(2):
        syncer.cycle()
    assert len(crm.calls) == 1
    sb.add_call(phone="380679990000", direction="in", outcome="answered", duration=30)
    syncer.cycle()                                 # the CRM walk began after this call ended
    syncer.cycle()
    assert len(crm.calls) == 1                     # a truly unknown number is skipped
