"""The daemon's engine between the Oki-Toki sandbox and the fake Bitrix24 portal (built from
config): every flow, end to end over loopback HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from syncd.engine.build import build_syncer
from syncd.store import open_store
from tests.daemon_checks import cycle as _cycle
from tests.daemon_checks import okitoki_writes as _okitoki_writes
from tests.daemon_checks import pending_tasks as _pending
from tests.daemon_checks import sandbox_contact as _contact
from tests.engine.conftest import make_config
from tests.fakes.bitrix24 import running_bitrix24

STATUS, DNC = "UF_CRM_CALL_STATUS", "UF_CRM_DNC"
FIELDS = {"name": {"crm": "NAME", "okitoki": "name", "sync": "both", "conflict": "newest"},
          "email": {"crm": "EMAIL", "okitoki": "email", "sync": "both", "conflict": "crm"},
          "status": {"crm": STATUS, "okitoki": "details.status", "sync": "to_okitoki"}}
CRM_WRITES = ("crm.contact.add", "crm.contact.update", "crm.activity.add", "crm.activity.update",
              "telephony.externalcall.register", "telephony.externalcall.finish",
              "telephony.externalcall.attachrecord")


@pytest.fixture
def world(sandbox, tmp_path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    with running_bitrix24() as fake:
        config = make_config(state_url, sandbox.url, sandbox.token,
                             crm={"connector": "bitrix24", "options": {"webhook_url": fake.webhook_url}},
                             contacts={"default_region": "UA", "create_in_okitoki": True,
                                       "create_in_crm": True, "fields": FIELDS},
                             do_not_call={"crm_field": DNC, "list_id": 7})
        syncer = build_syncer(config, state_dir=tmp_path / "crm", instance_id="test")
        yield syncer, sandbox, fake.state
        syncer.close()


def _crm_writes(portal) -> int:
    with portal.lock:
        return sum(1 for method in portal.journal if method.lower() in CRM_WRITES)


def _calls_on(portal, cid):
    """Call activities on contact ``cid`` (telephony external calls or the fallback)."""
    with portal.lock:
        return [a for a in portal.activities.values() if int(a["OWNER_ID"]) == cid]


def test_every_flow_between_okitoki_and_bitrix24_then_quiet_cycles(world):
    syncer, sb, portal = world
    old = datetime.now(UTC) - timedelta(minutes=5)
    ivan = portal.add_contact(("+38 (067) 123-45-67",), modified=old, NAME="Ivan",
                              EMAIL=[{"VALUE": "ivan@example.com", "VALUE_TYPE": "WORK"}], **{STATUS: "new"})
    petro = portal.add_contact(("0671112233",), modified=old, NAME="Petro", **{STATUS: "new"})
    mykola = portal.add_contact(("0501112244",), modified=old, NAME="Mykola", **{STATUS: "callback"})
    _cycle(syncer, 2)

    # CRM → Oki-Toki: created, names and details.status as in the portal
    ok_ivan, ok_petro = _contact(sb, "Ivan"), _contact(sb, "Petro")
    assert ok_ivan["email"] == "ivan@example.com" and ok_ivan["details"].get("status") == "new"
    assert ok_petro["details"].get("status") == "new"
    # Oki-Toki → CRM (create_in_crm): the sandbox's demo contacts
    made = {r.get("NAME") for r in portal.contacts.values()}
    assert {"Olena Kovalenko", "Taras Shevchuk", "Iryna Bondar"} <= made

    # dialer tasks: one pending task per matching contact in dialer 101
    [ivan_task] = _pending(sb, "380671234567")
    [petro_task] = _pending(sb, "380671112233")
    assert len(_pending(sb, "380501112244")) == 1

    # an Oki-Toki edit reaches the portal
    sb.edit_contact(ok_ivan["id"], name="Ivan Franko")
    _cycle(syncer)
    assert portal.contacts[ivan]["NAME"] == "Ivan Franko"

    # dialer calls: one answered, one not → one call activity per session, statuses forward
    sb.add_call(task_id=ivan_task["id"], direction="dialer", outcome="answered")
    sb.add_call(task_id=petro_task["id"], direction="dialer", outcome="no_answer")
    _cycle(syncer, 2)
    assert len(_calls_on(portal, ivan)) == 1
    assert len(_calls_on(portal, petro)) == 1
    assert portal.contacts[ivan][STATUS] == "contacted"
    assert portal.contacts[petro][STATUS] == "callback"
    assert _pending(sb, "380671234567") == []          # the answered contact no longer dialled

    # do-not-call set in the portal → the number on list 7, its pending task deleted
    assert len(_pending(sb, "380501112244")) == 1
    time.sleep(1.1)    # DATE_MODIFY has one-second resolution: a later second than syncd's writes
    portal.touch(mykola, **{DNC: "Y"})
    _cycle(syncer)
    blacklist = next(lst for lst in sb.state()["lists"] if lst["id"] == 7)
    assert any("380501112244" in v for v in blacklist["values"])
    assert _pending(sb, "380501112244") == []

    # two more cycles write nothing to either side
    okitoki, crm = _okitoki_writes(sb), _crm_writes(portal)
    assert crm and okitoki["contacts/add-update"]   # the counters do see writes
    _cycle(syncer, 2)
    assert _okitoki_writes(sb) == okitoki
    assert _crm_writes(portal) == crm
    assert len(_calls_on(portal, ivan)) == len(_calls_on(portal, petro)) == 1
