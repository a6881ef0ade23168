"""Every flow end to end: the real sandbox over loopback, the in-memory CRM, a real store
(SQLite file and the local PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import func, select

from syncd.engine.status import list_conflicts, status_report
from syncd.store.tables import CallRow, Link, Outbox, TaskRow

LINK, OUTBOX, TASK, CALL = Link.__table__, Outbox.__table__, TaskRow.__table__, CallRow.__table__
WRITE_OPS = ("dialers/create_task", "imports/tasks/add", "dialers/delete_task", "lists/add", "lists/remove",
             "contacts/add-update")


def _count(store, table, *where):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def _writes(sb) -> int:
    ops = sb.requests()["by_operation"]
    return sum(v for k, v in ops.items() if k in WRITE_OPS)


def _okitoki_contact(sb, name):
    return next(c for c in sb.state()["contacts"] if c["name"] == name)


def _link_of(store, crm_id):
    with store.begin() as conn:
        return conn.execute(select(LINK).where(LINK.c.crm_id == crm_id)).one()


def test_crm_contacts_reach_okitoki_and_a_second_cycle_writes_nothing(world):
    syncer, sb, crm = world
    crm.add(("+38 (067) 123-45-67",), name="Ivan", email="ivan@example.com", status="new")
    crm.add(("0509998877",), name="Olena", status="won")
    report = syncer.cycle()
    assert not report.errors, report.errors
    syncer.cycle()
    ivan = _okitoki_contact(sb, "Ivan")
    assert ivan["email"] == "ivan@example.com" and ivan["details"].get("status") == "new"
    # the sandbox's three demo contacts went the other way (create_in_crm = true)
    assert {"Olena Kovalenko", "Taras Shevchuk", "Iryna Bondar"} <= {r.fields.get("name") for r in crm.rows.values()}
    assert _count(syncer.store, LINK, LINK.c.crm_id.is_not(None), LINK.c.okitoki_id.is_not(None)) == 5
    okitoki_writes, crm_writes = _writes(sb), crm.writes
    for _ in range(2):
        assert not syncer.cycle().errors
    assert (_writes(sb), crm.writes) == (okitoki_writes, crm_writes)
    assert _count(syncer.store, OUTBOX, OUTBOX.c.status.in_(["pending", "claimed", "dead"])) == 0


def test_okitoki_edit_reaches_crm_without_echo(world):
    syncer, sb, crm = world
    cid = crm.add(("0671112233",), name="Petro", status="won")
    syncer.cycle()
    contact = _okitoki_contact(sb, "Petro")
    sb.edit_contact(contact["id"], name="Petro Ivanenko")
    syncer.cycle()
    assert crm.rows[cid].fields["name"] == "Petro Ivanenko"
    writes = (_writes(sb), crm.writes)
    syncer.cycle()
    syncer.cycle()
    assert (_writes(sb), crm.writes) == writes


def test_field_changed_on_both_sides_is_a_journaled_conflict_won_by_policy(world):
    syncer, sb, crm = world
    cid = crm.add(("0671112244",), name="Anna", email="a@x.com", status="won")
    syncer.cycle()
    contact = _okitoki_contact(sb, "Anna")
    sb.edit_contact(contact["id"], email="okitoki@x.com", name="Anna O")
    crm.edit(cid, email="crm@x.com", name="Anna C")
    syncer.cycle()
    syncer.cycle()
    # email: policy "crm"; name: "newest" (the sandbox's clock is now, the fake CRM's is 2026-01-01)
    assert crm.rows[cid].fields["email"] == "crm@x.com"
    assert _okitoki_contact(sb, "Anna O")["email"] == "crm@x.com"
    assert crm.rows[cid].fields["name"] == "Anna O"
    rows = list_conflicts(syncer.store)
    assert {(r["field"], r["winner"], r["rule"]) for r in rows} >= {("email", "crm", "crm"),
                                                                    ("name", "okitoki", "newest")}


def test_dialer_task_created_when_matching_and_removed_when_not(world):
    syncer, sb, crm = world
    cid = crm.add(("0671234599", "+48 601 234 567"), name="Lead", status="new")
    syncer.cycle()
    tasks = [t for t in sb.state()["tasks"] if t["dialer_id"] == 101 and "380671234599" in "".join(t["phones"])]
    assert len(tasks) == 1
    assert tasks[0]["region"] == "Europe/Kyiv"
    link = _link_of(syncer.store, cid)
    assert _count(syncer.store, TASK, TASK.c.link_id == link.id, TASK.c.state == "active") == 1
    crm.edit(cid, status="lost")   # stops matching (e.g. the customer declined)
    syncer.cycle()
    assert _count(syncer.store, TASK, TASK.c.link_id == link.id, TASK.c.state == "removed") == 1
    assert sb.requests()["by_operation"].get("dialers/delete_task", 0) == 1
    syncer.cycle()
    assert sb.requests()["by_operation"].get("dialers/delete_task", 0) == 1


def test_many_new_tasks_for_one_dialer_use_the_bulk_endpoint(world):
    syncer, sb, crm = world
    for i in range(12):
        crm.add((f"06712300{i:02d}",), name=f"Bulk {i}", status="callback")
    syncer.cycle()
    ops = sb.requests()["by_operation"]
    assert ops.get("imports/tasks/add", 0) >= 1 and ops.get("dialers/create_task", 0) <= 1


def test_do_not_call_lists_the_number_and_removes_the_task(world):
    syncer, sb, crm = world
    cid = crm.add(("0671239999",), name="Quiet", status="new", do_not_call=False)
    syncer.cycle()
    crm.edit(cid, do_not_call=True)
    syncer.cycle()
    blacklist = next(l for l in sb.state()["lists"] if l["id"] == 7)
    assert any("380671239999" in v for v in blacklist["values"])
    link = _link_of(syncer.store, cid)
    assert _count(syncer.store, TASK, TASK.c.link_id == link.id, TASK.c.state == "removed") == 1
    with syncer.store.begin() as conn:
        lanes = {r.operation: r.lane for r in conn.execute(select(OUTBOX).where(OUTBOX.c.link_id == link.id))}
    assert lanes["dnc_add"] == 0 and lanes["remove_task"] == 0


def test_each_call_reaches_the_crm_once_and_status_moves_only_forward(world):
    syncer, sb, crm = world
    cid = crm.add(("0671230000",), name="Caller", status="new")
    syncer.cycle()
    sb.add_call(phone="380671230000", direction="in", outcome="answered")
    syncer.cycle()
    assert len(crm.calls) == 1
    assert crm.rows[cid].fields["status"] == "contacted"
    sb.add_call(phone="380671230000", direction="in", outcome="no_answer")   # → callback: backwards
    sb.add_call(phone="380509990000", direction="in", outcome="answered")    # unknown number: skipped
    syncer.cycle()
    syncer.cycle()
    assert len(crm.calls) == 2
    assert crm.rows[cid].fields["status"] == "contacted"
    assert _okitoki_contact(sb, "Caller")["details"]["status"] == "contacted"
    assert _count(syncer.store, CALL, CALL.c.state == "skipped") == 1
    assert _count(syncer.store, CALL, CALL.c.state == "logged") == 2


def test_dry_run_plans_without_writing(world):
    syncer, sb, crm = world
    crm.add(("0671231111",), name="Planned", status="new")
    report = syncer.cycle(dry_run=True)
    ops = {(c.target, c.operation) for c in report.changes}
    assert ("okitoki", "contact_create") in ops and ("okitoki", "add_task") in ops
    assert _writes(sb) == 0 and crm.writes == 0
    assert _count(syncer.store, LINK) == 0
    assert not syncer.cycle().errors
    assert _writes(sb) > 0


def test_status_report_covers_cursors_outbox_and_budget(world):
    syncer, sb, crm = world
    crm.add(("0671232222",), name="Seen", status="new")
    syncer.cycle()
    report = status_report(syncer.store)
    assert {"cursors", "outbox", "dead_letters", "conflicts", "api_today", "last_runs"} <= set(report)
    assert report["api_today"]["okitoki"]["used"] > 0
    assert report["api_today"]["okitoki"]["budget"] == 100000
    assert "crm:contacts" in report["cursors"]


def test_two_outcomes_in_one_batch_still_only_move_status_forward(world):
    syncer, sb, crm = world
    cid = crm.add(("0671230101",), name="Busy Day", status="new")
    syncer.cycle()
    sb.add_call(phone="380671230101", direction="in", outcome="answered")    # → contacted
    sb.add_call(phone="380671230101", direction="in", outcome="no_answer")   # → callback: behind
    syncer.cycle()
    assert crm.rows[cid].fields["status"] == "contacted"
    assert len(crm.calls) == 2


def test_a_duplicate_contact_gets_no_task_of_its_own(world):
    syncer, sb, crm = world
    crm.add(("0671230202",), name="Dup A", status="new")
    crm.add(("067 123 02 02",), name="Dup B", status="new")
    syncer.cycle()
    syncer.cycle()
    tasks = [t for t in sb.state()["tasks"] if any("380671230202" in p for p in t["phones"])]
    assert len(tasks) == 1
    assert _count(syncer.store, OUTBOX, OUTBOX.c.status == "dead") == 0


def test_a_dialer_call_belongs_to_its_task_contact_even_after_the_number_changed(world):
    syncer, sb, crm = world
    cid = crm.add(("0671230303",), name="Moved", status="new")
    syncer.cycle()
    task = next(t for t in sb.state()["tasks"] if any("380671230303" in p for p in t["phones"]))
    crm.edit(cid, phones=("0671230404",))
    syncer.cycle()
    sb.add_call(phone=task["phones"][0], direction="dialer", outcome="answered", dialer_id=101,
                task_id=task["id"], user_id=1)
    syncer.cycle()
    assert [c.contact_id for c in crm.calls.values()] == [cid]
    assert crm.rows[cid].fields["status"] == "contacted"
