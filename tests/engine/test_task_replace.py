"""A contact's numbers change while its dialer task is pending: the task is replaced (the old
one removed first, then one with the new numbers), never two at once, never the old number."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select, update

from syncd.engine.handlers import remove_tasks
from syncd.engine.outbox import Lane
from syncd.engine.push import _settle
from syncd.engine.reconcile import reconcile
from syncd.store import outbox as sql
from syncd.store.tables import Outbox, TaskRow
from tests.daemon_checks import cycle, okitoki_writes

TASK, OUTBOX = TaskRow.__table__, Outbox.__table__


def _pending(sb):
    return sorted(t["phones"] for t in sb.state()["tasks"] if t["status"] == "pending"
                  and t["dialer_id"] == 101)


def _task_rows(syncer):
    with syncer.store.begin() as conn:
        return [(r.generation, r.state, r.phones) for r in conn.execute(select(TASK))]


def _merge_only(syncer):
    syncer.pull_crm_contacts()
    reconcile(syncer.ctx)


def test_phone_change_replaces_the_pending_task(world):
    syncer, sb, crm = world
    cid = crm.add(("0677771001",), name="Mover", status="new")
    cycle(syncer, 2)
    assert _pending(sb) == [["+380677771001"]]
    crm.edit(cid, phones=("0677771002",))
    cycle(syncer, 2)
    assert _pending(sb) == [["+380677771002"]]
    assert _task_rows(syncer) == [(2, "active", ["+380677771002"])]
    writes = okitoki_writes(sb)
    cycle(syncer, 2)
    assert okitoki_writes(sb) == writes


def test_added_number_replaces_the_task_in_a_dialer_that_refuses_duplicates(world):
    # dialer 101 refuses a number already pending: the old task must be gone before the new one
    syncer, sb, crm = world
    cid = crm.add(("0677771011",), name="Two numbers", status="new")
    cycle(syncer, 2)
    crm.edit(cid, phones=("0677771011", "0677771012"))
    cycle(syncer, 2)
    assert _pending(sb) == [["+380677771011", "+380677771012"]]
    with syncer.store.begin() as conn:
        assert conn.execute(select(OUTBOX).where(OUTBOX.c.status == "dead")).all() == []


def test_change_before_the_create_was_sent_cancels_it(world):
    syncer, sb, crm = world
    cid = crm.add(("0677771021",), name="Quick", status="won")
    cycle(syncer, 2)
    crm.edit(cid, status="new")
    _merge_only(syncer)                    # the task's create is queued, not sent
    crm.edit(cid, phones=("0677771022",))
    cycle(syncer, 2)
    assert _pending(sb) == [["+380677771022"]]
    ops = sb.requests(limit=1)["by_operation"]
    assert ops.get("dialers/delete_task", 0) == 0                       # nothing to undo
    assert ops.get("dialers/create_task", 0) + ops.get("imports/tasks/add", 0) == 1


def test_old_task_stays_until_its_removal_succeeds_then_is_replaced(world):
    syncer, sb, crm = world
    cid = crm.add(("0677771031",), name="Stubborn", status="new")
    cycle(syncer, 2)
    sb.set_faults([{"kind": "status", "status": 500, "rate": 1.0,
                    "operations": ["dialers/delete_task"]}])
    crm.edit(cid, phones=("0677771032",))
    for _ in range(3):
        syncer.cycle()
        assert _pending(sb) == [["+380677771031"]]   # never two tasks, never none
    sb.clear_faults()
    now = syncer.ctx.clock
    syncer.ctx.clock = lambda: now() + timedelta(hours=1)   # past the retry backoff
    cycle(syncer, 2)
    assert _pending(sb) == [["+380677771032"]]


def test_crash_between_removal_and_create_loses_neither(world):
    syncer, sb, crm = world
    cid = crm.add(("0677771041",), name="Crashy", status="new")
    cycle(syncer, 2)
    crm.edit(cid, phones=("0677771042",))
    _merge_only(syncer)
    # the removal went out and committed; the create is claimed by an instance that then died
    cycle_remove_only(syncer)
    assert _pending(sb) == []
    with syncer.store.begin() as conn:
        conn.execute(update(OUTBOX).where(OUTBOX.c.operation == "add_task", OUTBOX.c.status == "pending")
                     .values(status="claimed", claimed_by="dead", attempts=1,
                             claimed_until=syncer.ctx.now() - timedelta(seconds=1)))
    cycle(syncer, 2)
    assert _pending(sb) == [["+380677771042"]]


def cycle_remove_only(syncer):
    """Claim, send and settle the queued task removal alone (what a push does first)."""
    rows = sql.claim(syncer.store, lanes=[Lane.TASKS], limit=10, holder="t", now=syncer.ctx.now(),
                     operations=["remove_task"])
    assert len(rows) == 1
    _settle(syncer.ctx, rows, remove_tasks(syncer.ctx, rows), Counter(), [])


def test_new_number_on_do_not_call_gets_no_task(world):
    syncer, sb, crm = world
    cid = crm.add(("0677771051",), name="Blocked", status="new")
    cycle(syncer, 2)
    crm.edit(cid, phones=("0677771052",), do_not_call=True)
    cycle(syncer, 2)
    assert _pending(sb) == []
    blacklist = next(l for l in sb.state()["lists"] if l["id"] == 7)["values"]
    assert any("380677771052" in v for v in blacklist)
