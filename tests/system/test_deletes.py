"""Deletes and number changes, end to end: the daemon's engine built from configuration, the
SQL connector on a SQLite CRM, the Oki-Toki sandbox over loopback HTTP (issue 8, part 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from syncd.engine.build import build_syncer
from syncd.engine.ingest import record_contacts
from syncd.model import Contact
from syncd.store import open_store
from syncd.testing.scenario import SqlCrm
from tests.daemon_checks import cycle, okitoki_writes, pending_tasks, sandbox_contact
from tests.engine.conftest import make_config


def _deployment(tmp_path, sandbox, **contacts):
    crm = SqlCrm(f"sqlite:///{tmp_path / 'crm.db'}").create()
    with crm.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE contacts ADD COLUMN archived BOOLEAN"))
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    config = make_config(
        state_url, sandbox.url, sandbox.token,
        crm={"connector": "sql", "options": {"url": crm.url, "phone_columns": ["phone", "phone2"],
                                             "deleted_column": "archived",
                                             "create_calls_table": True}},
        contacts={"default_region": "UA", "create_in_okitoki": True, "create_in_crm": False,
                  "fields": {"name": {"crm": "name", "okitoki": "name"},
                             "status": {"crm": "status", "okitoki": "details.status",
                                        "sync": "to_okitoki"}}, **contacts})
    return crm, build_syncer(config, state_dir=tmp_path / "crm", instance_id="system")


@pytest.fixture
def deployment(tmp_path, sandbox):
    crm, syncer = _deployment(tmp_path, sandbox)
    yield crm, syncer, sandbox
    syncer.close()


def _archived(crm, cid, value=None):
    """Read (or, with ``value``, set as a CRM user would) the soft-delete column."""
    with crm.engine.begin() as conn:
        if value is not None:
            conn.execute(sa.text("UPDATE contacts SET archived = :v, updated_at = :t WHERE id = :i"),
                         {"v": value, "t": datetime.now(UTC).replace(tzinfo=None), "i": cid})
        return conn.execute(sa.text("SELECT archived FROM contacts WHERE id = :i"), {"i": cid}).scalar()


def _lead(crm, syncer, sb, name, phone):
    with crm.engine.begin() as conn:
        cid = conn.execute(crm.contacts.insert().values(
            name=name, phone=phone, status="new", updated_at=datetime.now(UTC).replace(tzinfo=None))
        ).inserted_primary_key[0]
    cycle(syncer, 2)
    assert len(pending_tasks(sb, phone[-9:])) == 1
    return cid


def test_hard_delete_in_the_crm_found_by_verify_removes_the_task(deployment):
    crm, syncer, sb = deployment
    cid = _lead(crm, syncer, sb, "Hard Delete", "+380671230001")
    with crm.engine.begin() as conn:
        conn.execute(crm.contacts.delete().where(crm.contacts.c.id == cid))
    # what `syncd verify` hands the engine for a record that vanished
    with syncer.store.begin() as conn:
        assert record_contacts(syncer.ctx, conn, "crm", [Contact(str(cid), deleted=True)])["deleted"] == 1
    cycle(syncer, 2)
    assert pending_tasks(sb, "671230001") == []
    assert sandbox_contact(sb, "Hard Delete")       # on_delete = "unlink": Oki-Toki keeps it
    writes = okitoki_writes(sb)
    cycle(syncer, 2)
    assert okitoki_writes(sb) == writes


def test_deleted_in_okitoki_removes_the_task_and_never_recreates_the_contact(deployment):
    crm, syncer, sb = deployment
    cid = _lead(crm, syncer, sb, "Gone In Okitoki", "+380671230002")
    sb.delete_contact(sandbox_contact(sb, "Gone In Okitoki")["id"])
    cycle(syncer, 2)
    assert pending_tasks(sb, "671230002") == []
    crm.update(cid, status="callback", name="Still In The CRM")   # would match a dialer again
    writes = okitoki_writes(sb)
    cycle(syncer, 2)
    assert okitoki_writes(sb) == writes              # no new contact, no new task
    assert crm.get(cid)["name"] == "Still In The CRM"


def test_archived_flag_in_the_crm_removes_the_task(deployment):
    crm, syncer, sb = deployment
    cid = _lead(crm, syncer, sb, "Archived", "+380671230003")
    _archived(crm, cid, True)
    cycle(syncer, 2)
    assert pending_tasks(sb, "671230003") == []
    assert sandbox_contact(sb, "Archived")


def test_phone_change_leaves_exactly_one_task_with_the_new_number(deployment):
    crm, syncer, sb = deployment
    cid = _lead(crm, syncer, sb, "Mover", "+380671230004")
    old_task = pending_tasks(sb, "671230004")[0]
    crm.update(cid, phone="+380671230005")
    cycle(syncer, 2)
    live = [t for t in sb.state()["tasks"] if t["status"] == "pending" and t["dialer_id"] == 101
            and any("67123000" in p for p in t["phones"])]
    assert [t["phones"] for t in live] == [["+380671230005"]]
    assert next(t for t in sb.state()["tasks"] if t["id"] == old_task["id"])["status"] == "deleted"
    assert sandbox_contact(sb, "Mover")["phones"] == ["+380671230005"]
    writes = okitoki_writes(sb)
    cycle(syncer, 2)
    assert okitoki_writes(sb) == writes


def test_propagate_deletes_the_crm_row_of_a_contact_deleted_in_okitoki(tmp_path, sandbox):
    crm, syncer = _deployment(tmp_path, sandbox, on_delete="propagate")
    try:
        cid = _lead(crm, syncer, sandbox, "Propagated", "+380671230006")
        sandbox.delete_contact(sandbox_contact(sandbox, "Propagated")["id"])
        cycle(syncer, 2)
        assert _archived(crm, cid) == 1      # marked, as the CRM's own delete would
        assert pending_tasks(sandbox, "671230006") == []
    finally:
        syncer.close()


@pytest.mark.slow
def test_syncd_once_replaces_a_moved_task_and_drops_a_deleted_ones(tmp_path, sandbox_proc):
    """The same through the CLI: `syncd once` subprocesses, the sandbox in its own process."""
    from syncd.demo import DIALER_NEW
    from syncd.demo_data import demo_contacts
    from syncd.testing.convergence import e164

    from .harness import deploy

    sb = sandbox_proc
    dep = deploy(tmp_path, sb, demo_contacts(12, seed=8))
    for _ in range(2):
        assert dep.syncd("once").returncode == 0
    rows = [r for r in dep.crm.all()[2:] if r["status"] == "new" and e164(r["phone"])]
    mover, gone = rows[0], rows[1]

    def live(row_phone):
        return [t for t in sb.state()["tasks"] if t["status"] == "pending"
                and t["dialer_id"] == DIALER_NEW and e164(t["phones"][0]) == e164(row_phone)]

    assert len(live(mover["phone"])) == 1 and len(live(gone["phone"])) == 1
    dep.crm.update(mover["id"], phone="+380679990011", phone2=None)
    gone_contact = next(c for c in sb.state()["contacts"] if c["name"] == gone["name"])
    sb.delete_contact(gone_contact["id"])
    for _ in range(2):
        result = dep.syncd("once")
        assert result.returncode == 0, result.stderr
    assert live(mover["phone"]) == [] and live(gone["phone"]) == []
    assert [t["phones"] for t in live("+380679990011")] == [["+380679990011"]]
