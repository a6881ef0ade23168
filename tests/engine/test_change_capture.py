"""Change capture against real data, through the engine: a CRM table in a SQLite file whose
rows are written the way applications write them, the real sandbox, the daemon's wiring.

Guards issue 8 §1: the 1,200-lead import read whole, a 2099 row that must not freeze the
cursor, an undecodable row or a time that is not a time that must not fail every pull, rows
change detection cannot see, and the overlap window that re-reads late commits."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from syncd.engine import cursors
from syncd.engine.build import build_syncer
from syncd.engine.capture import alerts, clamped, walk_start
from syncd.engine.status import list_dead_letters, status_report
from syncd.engine.syncer import CRM_STREAM
from syncd.model import Cursor
from syncd.store import open_store
from syncd.store.tables import Link

from .conftest import make_config


@pytest.fixture
def raw_crm(state_url, sandbox, tmp_path):
    """(syncer factory, sqlite3 connection to the CRM table, sandbox). The table is written
    with plain SQL, as an application would (DEFAULT CURRENT_TIMESTAMP, any spelling)."""
    path = tmp_path / "crm.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
               "status TEXT DEFAULT 'new', phone TEXT, do_not_call BOOLEAN DEFAULT 0, "
               "updated_at DATETIME DEFAULT CURRENT_TIMESTAMP)")
    db.execute("CREATE INDEX ix_updated ON contacts (updated_at)")
    open_store(state_url, create=True).close()
    made = []

    def syncer(**crm_over):
        config = make_config(state_url, sandbox.url, sandbox.token,
                             crm={"connector": "sql", "options": {"url": f"sqlite:///{path}"},
                                  **crm_over})
        made.append(build_syncer(config, state_dir=tmp_path / "state", instance_id="cc"))
        return made[-1]

    yield syncer, db, sandbox
    for s in made:
        s.close()
    db.close()


def _linked_crm_ids(syncer) -> set[str]:
    link = Link.__table__
    with syncer.store.begin() as conn:
        return {r[0] for r in conn.execute(select(link.c.crm_id).where(link.c.crm_id.is_not(None)))}


def _insert(db, n, start=0, **cols):
    names = ["name", "phone", *cols]
    db.executemany(f"INSERT INTO contacts ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                   [(f"lead {i}", f"+38067{i:07d}", *cols.values()) for i in range(start, start + n)])


SQLITE_STATE = pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)


@SQLITE_STATE
def test_a_bulk_import_in_one_second_gives_every_lead_its_dialer_task(raw_crm):
    syncer, db, sb = raw_crm
    s = syncer()
    _insert(db, 1200)     # DEFAULT CURRENT_TIMESTAMP: one whole second, no fraction
    report = s.pull_crm_contacts()
    assert report.counts["read"] == 1200
    assert len(_linked_crm_ids(s)) == 1200
    s.push()
    tasks = [t for t in sb.state()["tasks"] if t["dialer_id"] == 101 and t["status"] == "pending"]
    assert len(tasks) == 1200


@pytest.mark.slow
@SQLITE_STATE
def test_twenty_thousand_rows_in_one_second_are_all_read(raw_crm):
    syncer, db, _ = raw_crm
    s = syncer()
    _insert(db, 20_000)
    s.pull_crm_contacts()
    assert len(_linked_crm_ids(s)) == 20_000


def test_a_row_in_2099_never_freezes_the_cursor(raw_crm):
    syncer, db, _ = raw_crm
    s = syncer()
    _insert(db, 2)
    db.execute("INSERT INTO contacts (name, phone, updated_at) VALUES ('time traveller', "
               "'+380501234567', '2099-01-01 00:00:00')")
    with capture_logs() as logs:
        first = s.pull_crm_contacts()
    assert first.counts["future_times"] == 1 and not first.errors
    warning = [e for e in logs if e["event"] == "change_time_in_future"]
    assert warning and warning[0]["record_id"] == "3"
    with s.store.begin() as conn:
        cur = cursors.load(conn, CRM_STREAM)
    assert cur.value <= datetime.now(UTC), "the cursor moved past now"
    # later CRM changes are still read
    db.execute("UPDATE contacts SET name = 'renamed', updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') "
               "WHERE id = 1")
    s.pull_crm_contacts()
    with s.store.begin() as conn:
        from syncd.store.tables import Base
        base = Base.__table__
        names = [r.crm["name"] for r in conn.execute(select(base)) if r.crm]
    assert "renamed" in names
    report = status_report(s.store)
    [alert] = [a for a in report["alerts"] if a["kind"] == "future_time"]
    assert alert["stream"] == CRM_STREAM and alert["count"] == 1 and "3 at 2099" in alert["sample"][0]
    assert report["cursors"][CRM_STREAM]["lag_s"] >= 0
    # once the row is corrected, the alert goes at the next complete walk
    db.execute("UPDATE contacts SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 3")
    s.pull_crm_contacts()
    assert not [a for a in status_report(s.store)["alerts"] if a["kind"] == "future_time"]


def test_an_undecodable_row_is_quarantined_alone_and_resolved_once_fixed(raw_crm):
    syncer, db, _ = raw_crm
    s = syncer()
    _insert(db, 3)
    db.execute("INSERT INTO contacts (name, phone) VALUES (CAST(X'4f6c65ff' AS TEXT), '+380509999999')")
    first = s.pull_crm_contacts()
    assert not first.errors and first.counts["quarantined"] == 1
    assert len(_linked_crm_ids(s)) == 3
    dead = [d for d in list_dead_letters(s.store) if d["operation"] == "ingest"]
    assert len(dead) == 1 and "4" in dead[0]["key"] and "UTF-8" in (dead[0]["reason"] or "")
    # every later pull goes on; the dead letter is not repeated
    assert not s.pull_crm_contacts().errors
    assert len([d for d in list_dead_letters(s.store) if d["operation"] == "ingest"]) == 1
    db.execute("UPDATE contacts SET name = 'Olena', updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') "
               "WHERE id = 4")
    s.pull_crm_contacts()
    assert "4" in _linked_crm_ids(s)
    assert not [d for d in list_dead_letters(s.store) if d["operation"] == "ingest"]


def test_rows_change_detection_cannot_see_are_counted_reported_and_quarantined(raw_crm):
    syncer, db, _ = raw_crm
    s = syncer()
    _insert(db, 2)
    db.execute("INSERT INTO contacts (name, phone, updated_at) VALUES ('no time', '+380501111111', NULL)")
    db.execute("INSERT INTO contacts (name, phone, updated_at) VALUES ('bad time', '+380502222222', 'last tuesday')")
    with capture_logs() as logs:
        report = s.pull_crm_contacts()
    assert not report.errors
    assert report.counts["untracked_null"] == 1 and report.counts["unreadable_time"] == 1
    assert any(e["event"] == "rows_without_change_time" for e in logs)
    kinds = {a["kind"]: a for a in status_report(s.store)["alerts"]}
    assert kinds["untracked_null"]["count"] == 1
    assert "4: updated_at 'last tuesday' is not a time" in kinds["unreadable_time"]["sample"]
    dead = [d for d in list_dead_letters(s.store) if d["operation"] == "ingest"]
    assert [d["key"].split(":")[2] for d in dead] == ["4"]


def test_a_late_commit_inside_the_overlap_window_is_read(raw_crm):
    """A row whose updated_at is older than the cursor (its transaction committed late) is
    read by the next poll, since every walk re-reads the overlap window."""
    syncer, db, _ = raw_crm
    s = syncer(overlap="30s")
    _insert(db, 1)
    s.pull_crm_contacts()
    late = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S")
    db.execute("INSERT INTO contacts (name, phone, updated_at) VALUES ('late', '+380503333333', ?)", (late,))
    s.pull_crm_contacts()
    assert "2" in _linked_crm_ids(s)


def test_without_overlap_a_late_commit_behind_the_cursor_is_not_read(raw_crm):
    """The counterpart (so the test above can fail): overlap 0 keeps the exact keyset."""
    syncer, db, _ = raw_crm
    s = syncer(overlap="0s")
    _insert(db, 1)
    s.pull_crm_contacts()
    db.execute("UPDATE contacts SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 1")
    s.pull_crm_contacts()
    late = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S")
    db.execute("INSERT INTO contacts (name, phone, updated_at) VALUES ('late', '+380503333333', ?)", (late,))
    s.pull_crm_contacts()
    assert "2" not in _linked_crm_ids(s)


def test_walk_start_and_clamp_rules():
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    old = Cursor(now - timedelta(hours=1), "7")
    assert walk_start(old, now, timedelta(seconds=10)) == old            # exact keyset
    recent = Cursor(now - timedelta(seconds=3), "7")
    assert walk_start(recent, now, timedelta(seconds=10)) == Cursor(now - timedelta(seconds=10), None)
    # no walk completed yet: the cursor's own second again (a row of it may be edited since)
    assert walk_start(recent, None, timedelta(seconds=10)) == Cursor(recent.updated_at, None)
    assert walk_start(recent, now, timedelta(0)) == recent
    # without an overlap the last second before the walk began is still read again
    assert walk_start(Cursor(now - timedelta(seconds=0.5), "7"), now, timedelta(0)) == \
        Cursor(now - timedelta(seconds=1), None)
    assert clamped(Cursor(datetime(2099, 1, 1, tzinfo=UTC), "3"), now) == Cursor(now, None)
    assert clamped(old, now) == old


def test_status_alerts_are_empty_on_a_clean_table(raw_crm):
    syncer, db, _ = raw_crm
    s = syncer()
    _insert(db, 2)
    s.pull_crm_contacts()
    with s.store.begin() as conn:
        assert alerts(conn) == []


def test_verify_does_not_take_a_linked_row_that_became_unreadable_for_a_deleted_one(raw_crm):
    """Unreadable is not gone: verify must not retire the link (and drop the contact's tasks)
    because a value of the row no longer decodes."""
    syncer, db, _ = raw_crm
    s = syncer()
    _insert(db, 3)
    s.cycle()
    db.execute("UPDATE contacts SET name = CAST(X'4f6c65ff' AS TEXT), "
               "updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 2")
    report = s.verify(repair=True)
    assert not report.drift.counts.get("gone_crm"), report.drift.counts
    with s.store.begin() as conn:
        link = conn.execute(select(Link.__table__).where(Link.__table__.c.crm_id == "2")).one()
    assert not link.tombstone
