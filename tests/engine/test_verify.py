"""``syncd verify``: drift made by hand on each side (behind the stream cursors' backs) is
found, reported by kind, repaired through the outbox, and a second verify finds nothing.
The real SQL connector (a CRM in a SQLite file), the real sandbox over loopback HTTP, a
SQLite and a PostgreSQL state database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import delete, select, update
from structlog.testing import capture_logs

from syncd.demo_data import DemoContact
from syncd.engine.build import build_syncer
from syncd.engine.drift import KINDS, last_report
from syncd.http import RetryPolicy
from syncd.store import open_store
from syncd.store.tables import Base, CallRow, Dirty, Link, Outbox, TaskRow
from syncd.testing.scenario import SqlCrm

from .conftest import make_config

LINK, BASE, OUTBOX, TASK, CALL = (Link.__table__, Base.__table__, Outbox.__table__,
                                  TaskRow.__table__, CallRow.__table__)
OLD = datetime(2001, 1, 1)


@pytest.fixture
def sql_world(state_url, sandbox, tmp_path):
    crm = SqlCrm(f"sqlite:///{tmp_path / 'crm.db'}").create()
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         # no re-read window: a row changed behind the cursor's back right
                         # after the seed would otherwise be read by the next poll (which
                         # tests/engine/test_change_capture.py covers); here verify must find it
                         crm={"connector": "sql", "overlap": "0s", "options": {
                             "url": crm.url, "phone_columns": ["phone", "phone2"],
                             "create_calls_table": True}},
                         calls={"to_crm": True, "settle_delay": "0s", "overlap": "10m",
                                "unknown_numbers": "skip",
                                "status_order": ["new", "callback", "contacted", "won"],
                                "outcome_status": {}})
    syncer = build_syncer(config, state_dir=tmp_path / "state", instance_id="verify-test")
    yield syncer, sandbox, crm
    syncer.close()
    crm.dispose()


def _converge(syncer, cycles: int = 3) -> None:
    for _ in range(cycles):
        report = syncer.cycle()
        assert not report.errors, report.errors


def _crm_sql(crm, stmt) -> None:
    with crm.engine.begin() as conn:
        conn.execute(stmt)


def _oki(sb, name):
    return next((c for c in sb.state()["contacts"] if c["name"] == name and not c.get("deleted")), None)


def _crm_row(crm, name):
    return next((r for r in crm.all() if r["name"] == name), None)


def _purge(sb, ids) -> None:
    """Remove Oki-Toki contacts without a tombstone (a purge the export never shows)."""
    state = sb.sandbox.state
    with state.lock:
        for cid in ids:
            del state.contacts[cid]
        state._contact_version += 1
        state.changed()


def _seed(syncer, crm):
    crm.insert([DemoContact("Oksana Lysenko", "+380 67 100 20 30", None, "ok@x.ua", "UA", "won"),
                DemoContact("Jan Kowalski", "48 601 234 567", None, None, "PL", "won"),
                DemoContact("Ana Perez", "+52 1 55 1234 5678", None, "ana@x.mx", "MX", "won"),
                DemoContact("Lead Leader", "+380 67 555 00 11", None, None, "UA", "new"),
                DemoContact("Gone Soon", "+380 67 555 00 22", None, None, "UA", "won")])
    _converge(syncer)
    first = syncer.verify(repair=False)
    assert first.drift.drift == 0, first.drift.as_dict()


def test_verify_finds_and_repairs_drift_made_by_hand_on_each_side(sql_world):
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    store = syncer.store
    contacts = crm.contacts
    # CRM: a row inserted behind the cursor's back, a row changed without touching
    # updated_at, a row hard-deleted
    _crm_sql(crm, contacts.insert().values(name="Behind Cursor", phone="+380 67 777 88 99",
                                           status="won", do_not_call=False, updated_at=OLD))
    jan = _crm_row(crm, "Jan Kowalski")
    _crm_sql(crm, contacts.update().where(contacts.c.id == jan["id"]).values(name="Jan Kowalski-Nowak"))
    gone = _crm_row(crm, "Gone Soon")
    _crm_sql(crm, contacts.delete().where(contacts.c.id == gone["id"]))
    # Oki-Toki: a contact edited with an old timestamp (the export window never sees it),
    # another one purged without a tombstone
    ana, oksana = _oki(sb, "Ana Perez"), _oki(sb, "Oksana Lysenko")
    sb.edit_contact(ana["id"], email="ana@new.mx", updated_at="2001-01-01T00:00:00Z")
    _purge(sb, [oksana["id"]])
    # the lead's task removed in Oki-Toki while the state database lost its row (Oki-Toki
    # cannot list tasks, so only the state database's side of it can be seen); a call in the
    # log the calls stream never read (it started long before its window)
    lead = _crm_row(crm, "Lead Leader")
    with store.begin() as conn:
        lid = conn.execute(select(LINK.c.id).where(LINK.c.crm_id == str(lead["id"]))).scalar()
        task_id = conn.execute(select(TASK.c.task_id).where(TASK.c.link_id == lid)).scalar()
        conn.execute(update(TASK).where(TASK.c.link_id == lid).values(state="removed"))
    httpx.post(f"{sb.api_url}/dialers/delete_task",
               data={"api_token": sb.token, "dialer_id": 101, "task_id": task_id}).raise_for_status()
    call = sb.add_call(phone="380671002030", direction="in", outcome="answered",
                       started_at=(datetime.now(UTC) - timedelta(hours=3)).isoformat())
    # the normal cycle misses all of it
    _converge(syncer, 1)

    rep = syncer.verify(repair=True)
    drift = rep.drift
    assert drift.complete, drift.notes
    counts = drift.as_dict()["counts"]
    assert counts == {"crm_unlinked": 1, "okitoki_unlinked": 0, "gone_crm": 1, "gone_okitoki": 1,
                      "values_differ": 2, "task_missing": 1, "task_orphan": 0, "call_missing": 1}, counts
    samples = drift.samples
    assert samples["gone_crm"] == [f"crm:{gone['id']}"]
    assert samples["gone_okitoki"] == [f"okitoki:{oksana['id']}"]
    assert f"crm:{jan['id']} (name)" in samples["values_differ"]
    assert f"okitoki:{ana['id']} (email)" in samples["values_differ"]
    assert samples["call_missing"] == [f"session {call['session_id']}"]
    assert rep.counts["drift_values_differ"] == 2
    assert drift.repairs == {"crm_unlinked": 1, "gone_crm": 1, "gone_okitoki": 1, "values_differ": 2,
                             "task_missing": 1, "call_missing": 1}, drift.repairs
    stored = last_report(store)
    assert stored["drift"] == 7 and stored["repaired"] and stored["counts"]["gone_crm"] == 1

    _converge(syncer)
    # both sides agree again
    assert _oki(sb, "Behind Cursor") is not None
    assert _oki(sb, "Jan Kowalski-Nowak") is not None
    assert _crm_row(crm, "Ana Perez")["email"] == "ana@new.mx"
    with store.begin() as conn:   # the CRM deletion is known (the link retired or marked)
        link = conn.execute(select(LINK).where(LINK.c.crm_id == str(gone["id"]))).first()
        crm_seen = conn.execute(select(BASE.c.crm).where(BASE.c.link_id == link.id)).scalar() if link else None
    assert link is None or link.tombstone or (crm_seen or {}).get("__deleted")
    pending = [t for t in sb.state()["tasks"] if t["status"] == "pending" and t["dialer_id"] == 101]
    assert sum("380675550011" in "".join(t["phones"]) for t in pending) >= 1
    assert [c["session_id"] for c in crm.calls()].count(str(call["session_id"])) == 1 or \
        [str(c["session_id"]) for c in crm.calls()].count(str(call["session_id"])) == 1
    again = syncer.verify(repair=False).drift
    assert again.drift == 0, (again.counts, again.samples)


def test_verify_without_repair_reports_and_changes_nothing(sql_world):
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    _crm_sql(crm, crm.contacts.insert().values(name="Behind Cursor", phone="+380 67 777 88 99",
                                               status="won", do_not_call=False, updated_at=OLD))
    with syncer.store.begin() as conn:
        before = conn.execute(select(sa.func.count()).select_from(LINK)).scalar()
    drift = syncer.verify(repair=False).drift
    assert drift.counts["crm_unlinked"] == 1 and not drift.repairs
    with syncer.store.begin() as conn:
        assert conn.execute(select(sa.func.count()).select_from(LINK)).scalar() == before
    # it stays drift until repaired
    assert syncer.verify(repair=False).drift.counts["crm_unlinked"] == 1


def test_tasks_of_a_changed_dialer_rule_are_orphans_and_verify_removes_them(sql_world, tmp_path):
    # the merge only re-plans a contact when it changes; a rule edited in the configuration
    # leaves the old tasks behind until verify finds them
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    config = syncer.ctx.config
    rules = [config.dialer[0].model_copy(update={"when": {"status": ["callback"]}})]
    narrowed = build_syncer(config.model_copy(update={"dialer": rules}), crm=syncer.crm,
                            state_dir=tmp_path / "state2", instance_id="verify-test")
    try:
        drift = narrowed.verify(repair=True).drift
        lead = _crm_row(crm, "Lead Leader")
        assert f"crm:{lead['id']} dialer 101" in drift.samples["task_orphan"], drift.samples
        assert drift.counts == {"task_orphan": drift.repairs["task_orphan"]}
        for _ in range(2):
            assert not narrowed.cycle().errors
        assert [t for t in sb.state()["tasks"] if t["status"] == "pending"] == []
        assert narrowed.verify().drift.drift == 0
    finally:
        narrowed.close()


def test_quarantined_crm_record_is_not_reported_as_unlinked(sql_world):
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    _crm_sql(crm, crm.contacts.insert().values(name="Bad Number", phone="12", status="won",
                                               do_not_call=False, updated_at=OLD))
    _converge(syncer, 1)   # the pull does not see it (old updated_at)
    drift = syncer.verify(repair=True).drift
    assert drift.counts["crm_unlinked"] == 1
    # repair recorded it: it could not be mapped, so it is quarantined, not drift any more
    with syncer.store.begin() as conn:
        dead = conn.execute(select(OUTBOX.c.idem_key).where(OUTBOX.c.status == "dead")).scalars().all()
    assert any(k.startswith("ingest:crm:") for k in dead)
    assert syncer.verify().drift.drift == 0


def test_verify_stops_with_a_partial_report_when_the_budget_runs_low(sql_world):
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    budget = syncer.ctx.budget
    budget.limits["okitoki"] = budget.used("okitoki") + 1     # nearly spent: below 10 %
    rep = syncer.verify(repair=True)
    assert not rep.drift.complete and "okitoki budget low" in rep.deferred
    assert rep.counts["incomplete"] == 1
    assert last_report(syncer.store)["complete"] is False


def test_only_one_instance_verifies_at_a_time(sql_world):
    from syncd.store import acquire_lease

    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    assert acquire_lease(syncer.store, "verify", "other-host:1", ttl=timedelta(hours=1),
                         now=datetime.now(UTC))
    sb.clear_requests()
    rep = syncer.verify(repair=True)
    assert not rep.drift.complete and rep.deferred == "another instance is verifying now"
    assert sb.requests()["total"] == 0          # it did not walk anything


def test_a_change_recorded_but_never_merged_is_drift_and_the_repair_merges_it(sql_world):
    # the pull recorded the CRM's new name, then the merge's queue entry was lost: the state
    # database holds the change, nothing will ever act on it
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    jan = _crm_row(crm, "Jan Kowalski")
    crm.update(jan["id"], name="Jan Nowak")
    assert not syncer.pull_crm_contacts().errors
    with syncer.store.begin() as conn:
        conn.execute(delete(Dirty.__table__))
    assert not syncer.cycle().errors and _oki(sb, "Jan Nowak") is None
    with capture_logs() as logs:
        drift = syncer.verify(repair=True).drift
    assert drift.samples == {"values_differ": [f"crm:{jan['id']} (name)"]}
    assert drift.repairs == {"values_differ": 1}
    lines = {e["kind"]: e for e in logs if e["event"] == "verify_drift"}
    assert set(lines) == set(KINDS)                       # one structured line per kind
    assert lines["values_differ"]["records"] == 1 and lines["values_differ"]["log_level"] == "warning"
    assert lines["gone_crm"]["records"] == 0 and lines["gone_crm"]["log_level"] == "info"
    _converge(syncer, 2)
    assert _oki(sb, "Jan Nowak") is not None
    assert syncer.verify().drift.drift == 0


def test_a_read_older_than_the_version_already_recorded_is_not_drift_and_never_recorded(sql_world):
    # a pull recorded a newer version while verify walked: verify's copy is the stale one and
    # must not be taken for a change (it would undo the newer one)
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    jan = _crm_row(crm, "Jan Kowalski")
    with syncer.store.begin() as conn:
        lid = conn.execute(select(LINK.c.id).where(LINK.c.crm_id == str(jan["id"]))).scalar()
        conn.execute(update(BASE).where(BASE.c.link_id == lid).values(
            crm_updated_at=datetime.now(UTC) + timedelta(hours=1)))
    _crm_sql(crm, crm.contacts.update().where(crm.contacts.c.id == jan["id"]).values(name="Stale Copy"))
    drift = syncer.verify(repair=True).drift
    assert drift.drift == 0, drift.samples
    with syncer.store.begin() as conn:
        assert conn.execute(select(BASE.c.crm).where(BASE.c.link_id == lid)).scalar()["name"] == "Jan Kowalski"


def test_an_export_that_answers_short_is_reported_but_not_trusted_to_delete(sql_world):
    syncer, sb, crm = sql_world
    crm.insert(DemoContact(f"Person {i}", f"+380 67 300 {i:04d}", None, None, "UA", "won")
               for i in range(25))
    _converge(syncer)
    _purge(sb, sorted(sb.sandbox.state.contacts)[:20])   # most vanish from the export
    drift = syncer.verify(repair=True).drift
    assert drift.counts["gone_okitoki"] == 20 and "gone_okitoki" not in drift.repairs
    assert any("not repaired" in n for n in drift.notes)
    assert syncer.verify().drift.counts["gone_okitoki"] == 20      # still there, still reported


def test_a_remote_that_stays_down_ends_verify_with_a_partial_report(sql_world):
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    syncer.okitoki.remote.retry = RetryPolicy(attempts=1)          # fail at once instead of after backoff
    sb.set_faults([{"kind": "status", "status": 503, "rate": 1, "operations": ["contacts/export"]}])
    rep = syncer.verify(repair=True)
    assert not rep.drift.complete and "stopped by the remote" in rep.deferred
    assert sb.token not in rep.deferred
    assert last_report(syncer.store)["complete"] is False


def test_a_contact_deleted_through_the_sandbox_admin_is_found_by_its_tombstone(sql_world):
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    lead = _oki(sb, "Lead Leader")
    sb.delete_contact(lead["id"])                  # the export shows it once more, deleted
    assert syncer.verify().drift.drift == 0        # ... ahead of the pull: not drift yet
    state = sb.sandbox.state                       # a tombstone behind the pull's cursor
    with state.lock:
        state.contacts[lead["id"]].updated_at -= 3600
        state._contact_version += 1
    drift = syncer.verify(repair=True).drift
    assert drift.samples == {"gone_okitoki": [f"okitoki:{lead['id']}"]}
    _converge(syncer, 2)
    pending = [t for t in sb.state()["tasks"] if t["status"] == "pending"
               and "380675550011" in "".join(t["phones"])]
    assert pending == []                           # a deleted contact is not dialled
    assert syncer.verify().drift.drift == 0


def test_a_change_the_pull_has_not_reached_yet_is_not_drift(sql_world):
    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    crm.insert([DemoContact("Brand New", "+380 67 999 00 11", None, None, "UA", "won")])
    jan = _crm_row(crm, "Jan Kowalski")
    crm.update(jan["id"], name="Jan Renamed")             # a normal edit: updated_at moves on
    ana = _oki(sb, "Ana Perez")
    sb.edit_contact(ana["id"], email="fresh@x.mx")
    drift = syncer.verify(repair=True).drift
    assert drift.drift == 0, drift.samples
    assert drift.read["crm_ahead_of_pull"] == 2 and drift.read["okitoki_ahead_of_pull"] >= 1


def test_verify_stops_between_pages_when_the_daemon_stops(sql_world):
    import threading

    syncer, sb, crm = sql_world
    _seed(syncer, crm)
    syncer.ctx.stop = threading.Event()
    syncer.ctx.stop.set()
    rep = syncer.verify(repair=True)
    assert not rep.drift.complete and rep.deferred == "the daemon is stopping"
