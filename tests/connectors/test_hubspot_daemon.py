"""The daemon's engine between the Oki-Toki sandbox and the fake HubSpot (built from config)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.engine.build import build_syncer
from syncd.store import open_store
from tests.engine.conftest import make_config
from tests.fakes.hubspot import TOKEN, running_hubspot

FIELDS = {"name": {"crm": "firstname", "okitoki": "name", "sync": "both", "conflict": "newest"},
          "email": {"crm": "email", "okitoki": "email", "sync": "both", "conflict": "crm"},
          "status": {"crm": "hs_lead_status", "okitoki": "details.status", "sync": "to_okitoki"}}


@pytest.fixture
def world(sandbox, tmp_path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    with running_hubspot() as fake:
        config = make_config(state_url, sandbox.url, sandbox.token,
                             crm={"connector": "hubspot", "options": {"url": fake.url, "token": TOKEN}},
                             contacts={"default_region": "UA", "create_in_okitoki": True,
                                       "create_in_crm": True, "fields": FIELDS},
                             do_not_call={"crm_field": "syncd_do_not_call", "list_id": 7})
        syncer = build_syncer(config, state_dir=tmp_path / "crm", instance_id="test")
        yield syncer, sandbox, fake
        syncer.close()


def test_contacts_both_ways_calls_once_dnc_and_a_quiet_second_cycle(world):
    syncer, sb, fake = world
    old = datetime.now(UTC) - timedelta(minutes=5)
    cid = fake.add_contact(old, firstname="Ivan", email="ivan@example.com", hs_lead_status="new",
                           phone="+38 (067) 123-45-67")
    report = syncer.cycle()
    assert not report.errors, report.errors
    syncer.cycle()
    ivan = next(c for c in sb.state()["contacts"] if c["name"] == "Ivan")
    assert ivan["details"].get("status") == "new"
    made = {r.properties.get("firstname") for r in fake.contacts.values()}
    assert {"Olena Kovalenko", "Taras Shevchuk", "Iryna Bondar"} <= made   # create_in_crm
    sb.add_call(phone="380671234567", direction="in", outcome="answered")
    syncer.cycle()
    syncer.cycle()
    [call] = [c for c in fake.calls.values()]
    assert call.associations == [int(cid)]
    assert fake.contacts[int(cid)].properties["hs_lead_status"] == "contacted"
    # a user's edit, old enough to be past the connector's settle time (no sleeping here)
    fake.edit_contact(cid, updated_at=datetime.now(UTC) - timedelta(seconds=40),
                      syncd_do_not_call="true")
    syncer.cycle()
    blacklist = next(lst for lst in sb.state()["lists"] if lst["id"] == 7)
    assert any("380671234567" in v for v in blacklist["values"])
    writes = [r for r in fake.requests if r[0] == "POST" and "search" not in r[1] and "read" not in r[1]]
    for _ in range(2):
        assert not syncer.cycle().errors
    assert [r for r in fake.requests if r[0] == "POST" and "search" not in r[1]
            and "read" not in r[1]] == writes
