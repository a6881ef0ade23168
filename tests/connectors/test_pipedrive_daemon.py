"""The daemon's engine between the Oki-Toki sandbox and the fake Pipedrive (built from config)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.engine.build import build_syncer
from syncd.store import open_store
from tests.engine.conftest import make_config
from tests.fakes.pipedrive import API_TOKEN, running_pipedrive

DNC = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6dnc0"
STATUS = "9dc80c50d78a15643bfc4ca79d76156a73a1ca0e"
FIELDS = {"name": {"crm": "name", "okitoki": "name", "sync": "both", "conflict": "newest"},
          "email": {"crm": "email", "okitoki": "email", "sync": "both", "conflict": "crm"},
          "status": {"crm": STATUS, "okitoki": "details.status", "sync": "to_okitoki"}}


@pytest.fixture
def world(sandbox, tmp_path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    with running_pipedrive() as fake:
        config = make_config(state_url, sandbox.url, sandbox.token,
                             crm={"connector": "pipedrive",
                                  "options": {"url": fake.url, "api_token": API_TOKEN}},
                             contacts={"default_region": "UA", "create_in_okitoki": True,
                                       "create_in_crm": True, "fields": FIELDS},
                             do_not_call={"crm_field": DNC, "list_id": 7})
        syncer = build_syncer(config, state_dir=tmp_path / "crm", instance_id="test")
        yield syncer, sandbox, fake
        syncer.close()


def _writes(fake):
    return [r for r in fake.requests if r[0] in ("POST", "PATCH")]


def test_contacts_both_ways_calls_once_dnc_and_a_quiet_second_cycle(world):
    syncer, sb, fake = world
    old = datetime.now(UTC) - timedelta(minutes=5)
    pid = fake.add_person("Ivan", ["+38 (067) 123-45-67"], updated_at=old,
                          emails=[{"value": "ivan@example.com", "primary": True, "label": "work"}],
                          custom_fields={STATUS: "new"})
    report = syncer.cycle()
    assert not report.errors, report.errors
    syncer.cycle()
    ivan = next(c for c in sb.state()["contacts"] if c["name"] == "Ivan")
    assert ivan["email"] == "ivan@example.com" and ivan["details"].get("status") == "new"
    assert {"Olena Kovalenko", "Taras Shevchuk", "Iryna Bondar"} <= {p["name"] for p in fake.persons.values()}
    sb.add_call(phone="380671234567", direction="in", outcome="answered")
    syncer.cycle()
    syncer.cycle()
    [log] = fake.call_logs
    assert log["person_id"] == int(pid) and log["outcome"] == "connected"
    assert fake.persons[int(pid)]["custom_fields"][STATUS] == "contacted"
    # a user's edit, old enough to be past the connector's settle time (no sleeping here)
    fake.edit_person(pid, updated_at=datetime.now(UTC) - timedelta(seconds=3),
                     custom_fields={STATUS: "contacted", DNC: "yes"})
    syncer.cycle()
    blacklist = next(lst for lst in sb.state()["lists"] if lst["id"] == 7)
    assert any("380671234567" in v for v in blacklist["values"])
    writes = _writes(fake)
    for _ in range(2):
        assert not syncer.cycle().errors
    assert _writes(fake) == writes
