"""The daemon's engine between the Oki-Toki sandbox and the fake Kommo account (built from
config): every flow, end to end over loopback HTTP."""

from __future__ import annotations

import time

import pytest

from syncd.engine.build import build_syncer
from syncd.store import open_store
from tests.daemon_checks import cycle as _cycle
from tests.daemon_checks import okitoki_writes as _okitoki_writes
from tests.daemon_checks import pending_tasks as _pending
from tests.daemon_checks import sandbox_contact as _contact
from tests.engine.conftest import make_config
from tests.fakes.kommo import running_kommo

EMAIL, DNC, STATUS = 101, 555, 556          # the fake account's field ids
FIELDS = {"name": {"crm": "name", "okitoki": "name", "sync": "both", "conflict": "newest"},
          "email": {"crm": "cf:EMAIL", "okitoki": "email", "sync": "both", "conflict": "crm"},
          "status": {"crm": f"cf:{STATUS}", "okitoki": "details.status", "sync": "to_okitoki"}}


@pytest.fixture
def world(sandbox, tmp_path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    with running_kommo() as fake:
        config = make_config(state_url, sandbox.url, sandbox.token,
                             crm={"connector": "kommo", "options": {"url": fake.url, "token": fake.state.token}},
                             contacts={"default_region": "UA", "create_in_okitoki": True,
                                       "create_in_crm": True, "fields": FIELDS},
                             do_not_call={"crm_field": f"cf:{DNC}", "list_id": 7})
        syncer = build_syncer(config, state_dir=tmp_path / "crm", instance_id="test")
        yield syncer, sandbox, fake.state
        syncer.close()


def _crm_writes(account) -> list[tuple[str, str]]:
    with account.lock:
        return [r for r in account.requests if r[0] in ("POST", "PATCH")]


def _calls_on(account, cid):
    with account.lock:
        return [c for c in account.calls.values() if c["answer"]["entity_id"] == cid]


def _value(account, cid, field_id):
    values = account.values_of(cid, field_id)
    return values[0]["value"] if values else None


def test_every_flow_between_okitoki_and_kommo_then_quiet_cycles(world):
    syncer, sb, account = world
    old = account.now() - 300
    ivan = account.add_contact("Ivan", ("+38 (067) 123-45-67",), updated_at=old,
                               **{f"f{EMAIL}": "ivan@example.com", f"f{STATUS}": "new"})
    petro = account.add_contact("Petro", ("+380 67 111 22 33",), updated_at=old, **{f"f{STATUS}": "new"})
    mykola = account.add_contact("Mykola", ("0501112244",), updated_at=old, **{f"f{STATUS}": "callback"})
    _cycle(syncer, 2)

    # CRM → Oki-Toki: created, names and details.status as in the account
    ok_ivan, ok_petro = _contact(sb, "Ivan"), _contact(sb, "Petro")
    assert ok_ivan["email"] == "ivan@example.com" and ok_ivan["details"].get("status") == "new"
    assert ok_petro["details"].get("status") == "new"
    # Oki-Toki → CRM (create_in_crm): the sandbox's demo contacts
    made = {r["name"] for r in account.contacts.values()}
    assert {"Olena Kovalenko", "Taras Shevchuk", "Iryna Bondar"} <= made

    # dialer tasks: one pending task per matching contact in dialer 101
    [ivan_task] = _pending(sb, "380671234567")
    [petro_task] = _pending(sb, "380671112233")
    assert len(_pending(sb, "380501112244")) == 1

    # an Oki-Toki edit reaches the account
    sb.edit_contact(ok_ivan["id"], name="Ivan Franko")
    _cycle(syncer)
    assert account.contacts[ivan]["name"] == "Ivan Franko"

    # dialer calls: one answered, one not → one call per session, statuses forward
    sb.add_call(task_id=ivan_task["id"], direction="dialer", outcome="answered")
    sb.add_call(task_id=petro_task["id"], direction="dialer", outcome="no_answer")
    _cycle(syncer, 2)
    assert len(_calls_on(account, ivan)) == 1
    assert len(_calls_on(account, petro)) == 1
    assert _value(account, ivan, STATUS) == "contacted"
    assert _value(account, petro, STATUS) == "callback"
    assert _pending(sb, "380671234567") == []          # the answered contact no longer dialled

    # do-not-call set in the account → the number on list 7, its pending task deleted
    assert len(_pending(sb, "380501112244")) == 1
    time.sleep(1.1)    # updated_at has one-second resolution: a later second than syncd's writes
    account.touch(mykola, custom_fields_values=[{"field_id": DNC, "values": [{"value": True}]}])
    _cycle(syncer, 2)  # Kommo orders a second's records arbitrarily: read once a later second is seen
    blacklist = next(lst for lst in sb.state()["lists"] if lst["id"] == 7)
    assert any("380501112244" in v for v in blacklist["values"])
    assert _pending(sb, "380501112244") == []

    # two more cycles write nothing to either side
    okitoki, crm = _okitoki_writes(sb), _crm_writes(account)
    assert crm and okitoki["contacts/add-update"]   # the counters do see writes
    _cycle(syncer, 2)
    assert _okitoki_writes(sb) == okitoki
    assert _crm_writes(account) == crm
    assert len(_calls_on(account, ivan)) == len(_calls_on(account, petro)) == 1


def test_a_call_reaches_a_contact_whose_number_is_stored_in_national_form(world):
    syncer, sb, account = world
    oksana = account.add_contact("Oksana", ("0671115566",), updated_at=account.now() - 300,
                                 **{f"f{STATUS}": "new"})
    _cycle(syncer)
    sb.add_call(phone="380671115566", direction="in", outcome="answered")
    for _ in range(2):
        syncer.cycle()
    # Kommo attaches a call by the number as the contact stores it: the connector sends that form
    assert len(_calls_on(account, oksana)) == 1
    assert _value(account, oksana, STATUS) == "contacted"
