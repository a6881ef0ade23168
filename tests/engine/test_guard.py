"""The flood guard: a cycle that would remove too many dialer tasks or change too many linked
contacts is held, not sent; the rest flows; an operator releases or drops it."""

from __future__ import annotations


import pytest
from sqlalchemy import func, select

from syncd.engine.build import build_syncer
from syncd.engine.guard import HoldNotFound, drop_hold, list_holds, release_hold
from syncd.engine.status import status_report
from syncd.store import open_store
from syncd.store.tables import Outbox, TaskRow

from .conftest import make_config
from .fake_crm import FakeCrm

SQLITE_ONLY = pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
OUTBOX, TASK = Outbox.__table__, TaskRow.__table__


@pytest.fixture
def guarded(state_url, sandbox, tmp_path):
    open_store(state_url, create=True).close()
    made = []

    def make(**guard):
        config = make_config(state_url, sandbox.url, sandbox.token, guard=guard)
        crm = FakeCrm()
        made.append(build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="g"))
        return made[-1], crm
    yield make, sandbox
    for s in made:
        s.close()


def _pending_tasks(sb):
    return [t for t in sb.state()["tasks"] if t["dialer_id"] == 101 and t["status"] == "pending"]


def _held(store):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(OUTBOX).where(OUTBOX.c.status == "held")).scalar()


@SQLITE_ONLY
def test_a_mass_status_change_holds_the_task_removals_until_released(guarded):
    make, sb = guarded
    syncer, crm = make(max_task_removals=3)
    ids = [crm.add((f"06712300{i:02d}",), name=f"Lead {i}", status="new") for i in range(6)]
    keep = crm.add(("0671239999",), name="Other", status="won")
    syncer.cycle()
    assert len(_pending_tasks(sb)) == 6
    for cid in ids:
        crm.edit(cid, status="lost")
    crm.edit(keep, name="Other Renamed")
    report = syncer.cycle()
    assert not report.errors
    assert report.counts["push.held_task_removals"] == 6
    assert len(_pending_tasks(sb)) == 6, "removals were sent despite the guard"
    assert _held(syncer.store) == 6
    # the rest flows: the rename reached Oki-Toki, statuses too
    assert any(c["name"] == "Other Renamed" for c in sb.state()["contacts"])
    [hold] = status_report(syncer.store)["holds"]
    assert hold["kind"] == "task_removals" and hold["operations"] == 6 and "max_task_removals = 3" in hold["reason"]
    syncer.cycle()
    assert _held(syncer.store) == 6 and len(list_holds(syncer.store)) == 1, "held twice"
    assert release_hold(syncer.store, hold["id"], now=syncer.ctx.now()) == 6
    syncer.cycle()
    assert _pending_tasks(sb) == [] and _held(syncer.store) == 0
    with pytest.raises(ValueError, match="already released"):
        release_hold(syncer.store, hold["id"], now=syncer.ctx.now())
    with pytest.raises(HoldNotFound):
        drop_hold(syncer.store, 999, now=syncer.ctx.now())


@SQLITE_ONLY
def test_a_dropped_hold_leaves_the_tasks_and_is_not_planned_again(guarded):
    make, sb = guarded
    syncer, crm = make(max_task_removals=2)
    ids = [crm.add((f"06712400{i:02d}",), name=f"Lead {i}", status="new") for i in range(4)]
    syncer.cycle()
    for cid in ids:
        crm.edit(cid, status="lost")
    syncer.cycle()
    [hold] = list_holds(syncer.store)
    assert drop_hold(syncer.store, hold["id"], now=syncer.ctx.now()) == 4
    for _ in range(2):
        assert not syncer.cycle().errors
    assert len(_pending_tasks(sb)) == 4 and _held(syncer.store) == 0
    with syncer.store.begin() as conn:
        states = {r.state for r in conn.execute(select(TASK))}
    assert states == {"kept"}
    crm.edit(ids[0], do_not_call=True)          # do-not-call still removes a kept task
    syncer.cycle()
    assert len(_pending_tasks(sb)) == 3
    crm.edit(ids[1], status="new")              # matching again: the engine takes it over...
    syncer.cycle()
    crm.edit(ids[1], status="lost")             # ...and removes it when it stops matching
    syncer.cycle()
    syncer.cycle()
    assert len(_pending_tasks(sb)) == 2 and list_holds(syncer.store, open_only=True) == []


@SQLITE_ONLY
def test_do_not_call_removals_are_never_held(guarded):
    make, sb = guarded
    syncer, crm = make(max_task_removals=1)
    ids = [crm.add((f"06712500{i:02d}",), name=f"Lead {i}", status="new", do_not_call=False) for i in range(3)]
    syncer.cycle()
    for cid in ids:
        crm.edit(cid, do_not_call=True)
    syncer.cycle()
    assert _pending_tasks(sb) == [] and list_holds(syncer.store) == []


@SQLITE_ONLY
def test_changing_too_many_linked_contacts_at_once_is_held(guarded, monkeypatch):
    make, sb = guarded
    syncer, crm = make(max_changed_share=0.2, changed_floor=2)
    ids = [crm.add((f"06712600{i:02d}",), name=f"Person {i}", status="won") for i in range(10)]
    syncer.cycle()
    # links made in the last two polls are in their initial sync: let them age past that
    later = syncer.ctx.now()
    monkeypatch.setattr(syncer.ctx, "clock", lambda: later + (syncer.ctx.config.crm.poll_interval * 3))
    for cid in ids[:5]:
        crm.edit(cid, name=crm.rows[cid].fields["name"] + " X")
    report = syncer.cycle()
    assert report.counts.get("push.held_contact_changes") == 5
    [hold] = list_holds(syncer.store)
    assert hold["kind"] == "contact_changes" and hold["contacts"] == 5
    assert not any(c["name"].endswith(" X") for c in sb.state()["contacts"])
    release_hold(syncer.store, hold["id"], now=syncer.ctx.now())
    syncer.cycle()
    assert sum(c["name"].endswith(" X") for c in sb.state()["contacts"]) == 5


@SQLITE_ONLY
def test_removals_after_call_outcomes_are_the_sync_working_not_a_flood(guarded):
    """Many calls ending at once (a backlog after an outage) move many statuses through our
    own CRM writes; the task removals that follow are not held."""
    make, sb = guarded
    syncer, crm = make(max_task_removals=2)
    for i in range(5):
        crm.add((f"06712700{i:02d}",), name=f"Lead {i}", status="new")
    syncer.cycle()
    for i in range(5):
        sb.add_call(phone=f"3806712700{i:02d}", direction="in", outcome="answered")
    for _ in range(3):
        assert not syncer.cycle().errors
    assert list_holds(syncer.store) == []
    assert _pending_tasks(sb) == []
