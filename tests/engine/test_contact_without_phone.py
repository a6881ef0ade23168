"""A CRM contact with no phone number has a defined outcome: with contacts.without_phone =
"report" (the default) it is not created in Oki-Toki, logged once, counted in status and never
a dead letter; with "create" it is created; once it gets a number it is created either way."""

from __future__ import annotations

from structlog.testing import capture_logs

from syncd.engine import build_syncer
from syncd.engine.status import list_dead_letters, status_report
from syncd.store import open_store

from .conftest import make_config


def _names(sb) -> set[str]:
    return {c["name"] for c in sb.state()["contacts"]}


def test_contact_without_phone_is_reported_once_and_counted_not_dead_lettered(world):
    syncer, sb, crm = world
    cid = crm.add((), name="No Number", status="new")
    crm.add(("0671110001",), name="With Number", status="new")
    with capture_logs() as logs:
        for _ in range(3):
            syncer.cycle()
        crm.edit(cid, name="No Number Still")       # a change: reconciled again, not re-reported
        for _ in range(2):
            syncer.cycle()
    assert "With Number" in _names(sb)
    assert not {"No Number", "No Number Still"} & _names(sb)
    assert [e for e in logs if e["event"] == "contact_without_phone"] == [
        next(e for e in logs if e["event"] == "contact_without_phone")]
    assert list_dead_letters(syncer.store) == []
    assert status_report(syncer.store)["contacts_without_phone"] == 1


def test_contact_without_phone_is_created_once_it_has_a_number(world):
    syncer, sb, crm = world
    cid = crm.add((), name="Later Number", status="new")
    syncer.cycle()
    crm.edit(cid, phones=("0671110077",))
    for _ in range(3):
        syncer.cycle()
    assert "Later Number" in _names(sb)
    assert status_report(syncer.store)["contacts_without_phone"] == 0


def test_contact_without_phone_is_created_where_the_configuration_allows(state_url, sandbox, crm, tmp_path):
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         contacts={**make_config(state_url).contacts.model_dump(),
                                   "without_phone": "create"})
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="test")
    try:
        crm.add((), name="No Number", status="won")
        for _ in range(3):
            syncer.cycle()
        assert "No Number" in _names(sandbox)
        assert status_report(syncer.store)["contacts_without_phone"] == 0
        assert list_dead_letters(syncer.store) == []
    finally:
        syncer.close()
