"""Deletes on either side: the link retires, its dialer tasks go, nothing is re-created; with
``on_delete = "propagate"`` the other side's record is deleted where that side can delete."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from syncd.engine.build import build_syncer
from syncd.engine.ingest import record_contacts
from syncd.engine.reconcile import reconcile
from syncd.model import Contact
from syncd.store import open_store
from syncd.store.tables import Base, Link, LinkPhone, MergeCandidate, Outbox, TaskRow
from tests.daemon_checks import cycle, okitoki_writes, pending_tasks, sandbox_contact

from .conftest import make_config

LINK, BASE, TASK, OUTBOX = Link.__table__, Base.__table__, TaskRow.__table__, Outbox.__table__
PHONE, CANDIDATE = LinkPhone.__table__, MergeCandidate.__table__


def _link(store, crm_id):
    with store.begin() as conn:
        link = conn.execute(select(LINK).where(LINK.c.crm_id == crm_id)).one()
        base = conn.execute(select(BASE).where(BASE.c.link_id == link.id)).one()
        phones = conn.execute(select(PHONE).where(PHONE.c.link_id == link.id)).all()
        tasks = conn.execute(select(TASK).where(TASK.c.link_id == link.id)).all()
    return link, base, phones, tasks


def _verify_found_deleted(syncer, side, record_id):
    """What `syncd verify` hands the engine for a hard delete: a bare id, deleted."""
    with syncer.store.begin() as conn:
        return record_contacts(syncer.ctx, conn, side, [Contact(record_id, deleted=True)])


def _lead(syncer, crm, phone="0677770001", name="Lead"):
    cid = crm.add((phone,), name=name, status="new")
    cycle(syncer, 2)
    assert len(pending_tasks(syncer_sandbox(syncer), phone[1:])) == 1
    return cid


def syncer_sandbox(syncer):
    return syncer._test_sandbox


@pytest.fixture
def w(world):
    syncer, sb, crm = world
    syncer._test_sandbox = sb
    return world


def test_hard_delete_in_the_crm_removes_the_task_and_keeps_okitoki_data(w):
    syncer, sb, crm = w
    cid = _lead(syncer, crm)
    _, before, _, _ = _link(syncer.store, cid)
    crm.rows.pop(cid)
    counts = _verify_found_deleted(syncer, "crm", cid)
    assert counts["deleted"] == 1 and counts["quarantined"] == 0
    cycle(syncer, 2)
    assert pending_tasks(sb, "677770001") == []
    link, base, phones, tasks = _link(syncer.store, cid)
    assert link.tombstone and phones == [] and [t.state for t in tasks] == ["removed"]
    # the bare deletion erased nothing: the last values of both sides and the agreed ones stay
    assert base.agreed == before.agreed and base.okitoki == before.okitoki
    assert base.crm == {**before.crm, "__deleted": True}
    assert sandbox_contact(sb, "Lead")["phones"] == ["+380677770001"]   # unlink: kept


def test_retired_link_is_never_recreated_on_the_deleted_side(w):
    syncer, sb, crm = w
    cid = _lead(syncer, crm)
    crm.rows.pop(cid)
    _verify_found_deleted(syncer, "crm", cid)
    cycle(syncer)
    sb.edit_contact(sandbox_contact(sb, "Lead")["id"], name="Lead edited in Oki-Toki",
                    details={"status": "callback"})
    writes = okitoki_writes(sb)
    cycle(syncer, 2)
    assert not [r for r in crm.rows.values() if "+380677770001" in r.phones]   # no CRM create
    assert pending_tasks(sb, "677770001") == [] and okitoki_writes(sb) == writes


def test_deleted_in_okitoki_removes_the_task_and_the_crm_record_stays(w):
    syncer, sb, crm = w
    cid = _lead(syncer, crm)
    sb.delete_contact(sandbox_contact(sb, "Lead")["id"])
    cycle(syncer, 2)
    assert pending_tasks(sb, "677770001") == []
    assert cid in crm.rows and crm.deleted == []          # on_delete = "unlink" (default)
    crm.edit(cid, status="callback", name="Lead again")   # still matches the dialer rule
    writes = okitoki_writes(sb)
    cycle(syncer, 2)
    assert pending_tasks(sb, "677770001") == [] and okitoki_writes(sb) == writes


def test_pending_write_to_a_contact_deleted_in_okitoki_is_cancelled_not_a_401(w):
    syncer, sb, crm = w
    cid = _lead(syncer, crm)
    crm.edit(cid, name="Renamed")
    syncer.pull_crm_contacts()
    reconcile(syncer.ctx)                  # merge only: the update waits in the outbox
    with syncer.store.begin() as conn:
        queued = conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.operation == "contact_update",
                                                        OUTBOX.c.status == "pending")).all()
    assert len(queued) == 1
    sb.delete_contact(sandbox_contact(sb, "Lead")["id"])
    cycle(syncer)                          # fails on any error, e.g. a 401 stopping the push
    with syncer.store.begin() as conn:
        row = conn.execute(select(OUTBOX).where(OUTBOX.c.id == queued[0].id)).one()
    assert (row.status, row.last_error) == ("done", "cancelled: the contact was deleted")
    assert pending_tasks(sb, "677770001") == []


def test_new_record_with_a_deleted_contacts_number_links_afresh(w):
    syncer, sb, crm = w
    old = _lead(syncer, crm)
    crm.rows.pop(old)
    _verify_found_deleted(syncer, "crm", old)
    cycle(syncer)
    new = crm.add(("0677770001",), name="Lead returns", status="new")
    cycle(syncer, 2)
    link, _, _, tasks = _link(syncer.store, new)
    assert not link.tombstone and link.hold is None and link.okitoki_id
    assert [t.state for t in tasks] == ["active"]
    assert [t["phones"] for t in pending_tasks(sb, "677770001")] == [["+380677770001"]]


def test_deletion_of_a_record_never_linked_changes_nothing(w):
    syncer, sb, crm = w
    counts = _verify_found_deleted(syncer, "crm", "no-such-id")
    assert counts["deleted_unknown"] == 1
    with syncer.store.begin() as conn:
        assert conn.execute(select(LINK).where(LINK.c.crm_id == "no-such-id")).first() is None


def test_deleted_record_with_unreadable_fields_is_taken_not_quarantined(w):
    syncer, sb, crm = w
    cid = _lead(syncer, crm)
    crm.rows.pop(cid)
    crm.injected.append(Contact(cid, {"name": "x\x00"}, ("not a phone",), None, deleted=True))
    cycle(syncer, 2)
    assert pending_tasks(sb, "677770001") == []
    assert _link(syncer.store, cid)[0].tombstone


def test_deleted_merge_candidate_leaves_the_report(w):
    syncer, sb, crm = w
    a = crm.add(("0677770009",), name="Twin A", status="won")
    b = crm.add(("0677770009",), name="Twin B", status="won")
    cycle(syncer)
    with syncer.store.begin() as conn:
        assert conn.execute(select(CANDIDATE).where(CANDIDATE.c.record_id == b)).first() is not None
    crm.rows.pop(b)
    _verify_found_deleted(syncer, "crm", b)
    cycle(syncer)
    with syncer.store.begin() as conn:
        assert conn.execute(select(CANDIDATE).where(CANDIDATE.c.record_id == b)).first() is None
    assert a in crm.rows


@pytest.fixture
def propagate(state_url, sandbox, crm, tmp_path):
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         contacts__on_delete="propagate")
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="test")
    syncer._test_sandbox = sandbox
    yield syncer, sandbox, crm
    syncer.close()


def test_propagate_deletes_the_crm_record_of_a_contact_deleted_in_okitoki(propagate):
    syncer, sb, crm = propagate
    cid = _lead(syncer, crm)
    sb.delete_contact(sandbox_contact(sb, "Lead")["id"])
    cycle(syncer, 2)
    assert crm.deleted == [cid] and cid not in crm.rows
    assert pending_tasks(sb, "677770001") == []


def test_propagate_cannot_delete_in_okitoki_and_says_so(propagate):
    syncer, sb, crm = propagate
    cid = _lead(syncer, crm)
    crm.rows.pop(cid)
    _verify_found_deleted(syncer, "crm", cid)
    with capture_logs() as logs:
        cycle(syncer)
    assert any(e["event"] == "delete_not_propagated" and e["side"] == "okitoki" for e in logs)
    assert sandbox_contact(sb, "Lead") and pending_tasks(sb, "677770001") == []


def test_hard_delete_in_okitoki_found_by_verify_removes_the_task_and_keeps_the_crm_record(w):
    syncer, sb, crm = w
    cid = _lead(syncer, crm)
    link, before, _, _ = _link(syncer.store, cid)
    counts = _verify_found_deleted(syncer, "okitoki", link.okitoki_id)
    assert counts["deleted"] == 1
    cycle(syncer, 2)   # the export's overlap window reads the (sandbox's) contact alive: ignored
    assert pending_tasks(sb, "677770001") == []
    link, base, _, _ = _link(syncer.store, cid)
    assert link.tombstone and base.crm == before.crm and base.agreed == before.agreed
    assert crm.rows[cid].phones == ("0677770001",) and crm.deleted == []


def test_a_record_read_alive_after_its_deletion_stays_retired(w):
    syncer, sb, crm = w
    cid = _lead(syncer, crm)
    row = crm.rows[cid]
    crm.injected.append(Contact(cid, dict(row.fields), row.phones, row.updated_at, deleted=True))
    cycle(syncer, 2)
    assert pending_tasks(sb, "677770001") == []
    crm.edit(cid, name="Restored from the trash", status="callback")
    writes = okitoki_writes(sb)
    cycle(syncer, 2)
    assert pending_tasks(sb, "677770001") == [] and okitoki_writes(sb) == writes
    assert _link(syncer.store, cid)[0].tombstone
