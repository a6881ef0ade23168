"""The state database on SQLite and PostgreSQL: schema, outbox claims, budget, leases, cursors."""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from syncd.engine import cursors
from syncd.errors import BudgetExhausted
from syncd.store import (SchemaOutdated, StoreBudget, StoreJournal, acquire_lease, check_schema,
                         migrate, open_store, sqlite_path)
from syncd.store import outbox as ob
from syncd.store.tables import ApiCall, Outbox
from syncd.model import JournalEntry

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def op(key, lane=4, **kw):
    return {"lane": lane, "target": "okitoki", "operation": "contact_update", "payload": {"k": key},
            "idem_key": key, **kw}


def test_unmigrated_database_is_refused_with_the_command_to_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(SchemaOutdated, match="run `syncd migrate`"):
        open_store(url)
    assert not (tmp_path / "new.db").exists()
    migrate(url)
    check_schema(url)
    assert migrate(url)  # idempotent


def test_the_schema_check_knows_the_head_alembic_knows_without_importing_alembic(tmp_path):
    """``syncd run`` checks the schema without alembic (memory of an idle daemon): the head it
    reads from the migration files is alembic's head, and a migrated database is at it."""
    import subprocess
    import sys

    from alembic.script import ScriptDirectory

    from syncd.store.schema import _alembic_config, current_revision, head_revision

    assert head_revision() == ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert migrate(url) == head_revision()
    code = ("import sys; from syncd.store import check_schema; check_schema(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert current_revision(engine) is None
    engine.dispose()


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'state.db'}"
    store = open_store(url, create=True)
    path = sqlite_path(url)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_a_read_does_not_wait_for_a_writer_on_sqlite(tmp_path):
    """Store.read sees the last committed state at once while another thread holds the write
    lock (request workers reading their rows are not held up by a pull's long transaction);
    a writer in the meantime still queues on the lock."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}", create=True)
    ob_rows = [{"lane": 1, "target": "okitoki", "operation": "contact_create", "payload": {},
                "idem_key": "k1"}]
    with store.begin() as conn:
        ob.enqueue(conn, ob_rows, now=datetime.now(UTC))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.begin() as conn:
            conn.execute(text("UPDATE outbox SET attempts = 7"))
            holding.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with store.read() as conn:
            attempts = conn.execute(select(Outbox.__table__.c.attempts)).scalar()
        assert attempts == 0                       # the committed state, not the writer's
        assert time.monotonic() - started < 1.0    # no wait for the lock (busy timeout is long)
    finally:
        release.set()
        t.join()
    with store.read() as conn:
        assert conn.execute(select(Outbox.__table__.c.attempts)).scalar() == 7
    store.close()


def test_old_schema_is_refused(store):
    with store.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutdated, match="revision 0000"):
        check_schema(store.url)


def test_enqueue_is_idempotent_by_key(store):
    with store.begin() as conn:
        assert ob.enqueue(conn, [op("a"), op("b")], now=NOW) == 2
        assert ob.enqueue(conn, [op("a")], now=NOW) == 0


def test_claims_take_the_best_lane_first_and_skip_future_rows(store):
    with store.begin() as conn:
        ob.enqueue(conn, [op("contacts", lane=4), op("dnc", lane=0), op("calls", lane=1),
                          op("later", lane=0, next_attempt_at=NOW + timedelta(hours=1))], now=NOW)
    rows = ob.claim(store, lanes=[0, 1, 2, 3, 4, 5], limit=2, holder="me", now=NOW)
    assert [r.idem_key for r in rows] == ["dnc", "calls"]
    rows = ob.claim(store, lanes=[0, 1, 2, 3, 4, 5], limit=10, holder="me", now=NOW)
    assert [r.idem_key for r in rows] == ["contacts"]


def test_expired_claims_are_claimable_again_and_live_ones_are_not(store):
    with store.begin() as conn:
        ob.enqueue(conn, [op("x")], now=NOW)
    assert len(ob.claim(store, lanes=[4], limit=5, holder="dead-instance", now=NOW,
                        hold=timedelta(minutes=1))) == 1
    assert ob.claim(store, lanes=[4], limit=5, holder="other", now=NOW + timedelta(seconds=30)) == []
    again = ob.claim(store, lanes=[4], limit=5, holder="other", now=NOW + timedelta(minutes=2))
    assert [r.claimed_by for r in again] == ["other"]


def test_concurrent_claimers_never_get_the_same_row(store):
    with store.begin() as conn:
        ob.enqueue(conn, [op(f"k{i}") for i in range(200)], now=NOW)
    got: list[list[int]] = [[] for _ in range(4)]

    def worker(n: int) -> None:
        while True:
            rows = ob.claim(store, lanes=[4], limit=7, holder=f"w{n}", now=NOW)
            if not rows:
                return
            got[n].extend(r.id for r in rows)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for g in got for i in g]
    assert len(ids) == 200 and len(set(ids)) == 200


def test_retry_dead_and_release(store):
    with store.begin() as conn:
        ob.enqueue(conn, [op("r"), op("d"), op("l")], now=NOW)
    rows = {r.idem_key: r for r in ob.claim(store, lanes=[4], limit=5, holder="me", now=NOW)}
    with store.begin() as conn:
        ob.mark_retry(conn, rows["r"].id, error="503", at=NOW + timedelta(seconds=5), now=NOW)
        ob.mark_dead(conn, rows["d"].id, reason="refused", now=NOW)
    ob.release(store, [rows["l"].id], holder="me", now=NOW)
    with store.begin() as conn:
        got = {r.idem_key: r for r in conn.execute(select(Outbox.__table__))}
    assert (got["r"].status, got["r"].attempts, got["r"].last_error) == ("pending", 1, "503")
    assert (got["d"].status, got["d"].last_error) == ("dead", "refused")
    assert (got["l"].status, got["l"].attempts, got["l"].claimed_by) == ("pending", 0, None)


def test_budget_persists_and_refuses_past_the_limit(store):
    budget = StoreBudget(store, {"okitoki": 3, "crm": None}, clock=lambda: NOW)
    for _ in range(3):
        budget.spend("okitoki")
    with pytest.raises(BudgetExhausted):
        budget.spend("okitoki")
    assert StoreBudget(store, {"okitoki": 3}, clock=lambda: NOW).remaining("okitoki") == 0
    tomorrow = StoreBudget(store, {"okitoki": 3}, clock=lambda: NOW + timedelta(days=1))
    assert tomorrow.remaining("okitoki") == 3
    budget.spend("crm", 5)
    assert budget.remaining("crm") is None and budget.used("crm") == 5


def test_journal_stores_no_token(store):
    from syncd.redact import register_secret
    register_secret("sekret-token-value")
    journal = StoreJournal(store)
    journal(JournalEntry(at=NOW, system="okitoki", operation="create_task", method="POST",
                         status=401, duration_ms=12, attempt=1, error="bad api_token=sekret-token-value"))
    journal.flush()
    with store.begin() as conn:
        row = conn.execute(select(ApiCall.__table__)).one()
    assert "sekret-token-value" not in (row.error or "")


def test_lease_is_exclusive_until_it_expires(store):
    assert acquire_lease(store, "stream:crm", "a", ttl=timedelta(seconds=60), now=NOW)
    assert not acquire_lease(store, "stream:crm", "b", ttl=timedelta(seconds=60), now=NOW)
    assert acquire_lease(store, "stream:crm", "a", ttl=timedelta(seconds=60), now=NOW + timedelta(seconds=30))
    assert acquire_lease(store, "stream:crm", "b", ttl=timedelta(seconds=60), now=NOW + timedelta(minutes=5))


def test_cursor_advances_only_with_what_it_covers(store):
    with pytest.raises(RuntimeError):
        with store.begin() as conn:
            cursors.advance(conn, cursors.StreamCursor("s", NOW, "7"), now=NOW)
            raise RuntimeError("crash before the records were stored")
    with store.begin() as conn:
        assert cursors.load(conn, "s").value is None
        cursors.advance(conn, cursors.StreamCursor("s", NOW, "7", frozenset({"7"})), now=NOW)
    with store.begin() as conn:
        cursors.advance(conn, cursors.StreamCursor("s", NOW - timedelta(hours=1)), now=NOW)
        cur = cursors.load(conn, "s")
    assert (cur.value, cur.last_id, cur.boundary_ids) == (NOW, "7", frozenset({"7"}))


def test_dry_run_leaves_the_database_unchanged(store):
    store.start_dry_run()
    with store.begin() as conn:
        ob.enqueue(conn, [op("dry")], now=NOW)
    with store.begin() as conn:
        assert conn.execute(select(Outbox.__table__)).first() is not None
    store.end_dry_run()
    with store.begin() as conn:
        assert conn.execute(select(Outbox.__table__)).first() is None


def test_journal_rows_are_written_in_batches_and_on_flush(store):
    journal = StoreJournal(store, batch=3, interval=3600)
    entry = JournalEntry(at=NOW, system="okitoki", operation="dialers", method="GET", status=200,
                         duration_ms=1, attempt=1)
    for _ in range(2):
        journal(entry)
    with store.begin() as conn:
        assert conn.execute(select(ApiCall.__table__)).all() == []
    journal(entry)                                  # the third fills the batch
    with store.begin() as conn:
        assert len(conn.execute(select(ApiCall.__table__)).all()) == 3
    journal(entry)
    journal.flush()
    with store.begin() as conn:
        assert len(conn.execute(select(ApiCall.__table__)).all()) == 4


def test_budget_reservations_never_pass_the_limit_and_are_given_back(store):
    budget = StoreBudget(store, {"okitoki": 30}, clock=lambda: NOW, reserve=20)
    other = StoreBudget(store, {"okitoki": 30}, clock=lambda: NOW, reserve=20)   # a second instance
    budget.spend("okitoki")                          # reserves 20 in the database
    assert budget.used("okitoki") == 1 and other.used("okitoki") == 20
    for _ in range(10):
        other.spend("okitoki")                       # the other gets only the 10 left
    with pytest.raises(BudgetExhausted):
        other.spend("okitoki")
    budget.release()                                 # 19 unspent come back
    assert other.used("okitoki") == 11 and other.remaining("okitoki") == 19


def test_budget_reservations_grow_while_requests_go_out_fast_within_one_percent_of_the_limit(store):
    """A fast push takes the budget in growing reservations (fewer commits for its request
    threads to wait on), never more than 1 % of the daily limit at once, all given back unspent."""
    budget = StoreBudget(store, {"okitoki": 100_000}, clock=lambda: NOW, reserve=20)
    check = StoreBudget(store, {"okitoki": 100_000}, clock=lambda: NOW)
    reserved = []
    for _ in range(3000):
        before = check.used("okitoki") if not budget._held.get("okitoki", ("", 0))[1] else None
        budget.spend("okitoki")
        if before is not None:
            reserved.append(check.used("okitoki") - before)
    assert reserved[:4] == [20, 40, 80, 160] and max(reserved) == 1000
    assert sum(reserved) <= 3000 + 1000
    budget.release()
    assert check.used("okitoki") == 3000


def test_migrations_with_two_heads_are_refused_not_resolved_by_picking_one(tmp_path, monkeypatch):
    """The schema check reads the migration files itself (no alembic at idle): a branch in
    them is a broken installation, refused as alembic would, not one head picked silently."""
    import pytest

    from syncd.store import schema

    versions = tmp_path / "versions"
    versions.mkdir()
    for name, rev, down in (("a", "0001", None), ("b", "0002", "0001"), ("c", "0003", "0001")):
        (versions / f"{name}.py").write_text(f"revision = {rev!r}\ndown_revision = {down!r}\n")
    monkeypatch.setattr(schema, "MIGRATIONS", tmp_path)
    with pytest.raises(RuntimeError, match="several heads"):
        schema.head_revision()
    (versions / "c.py").unlink()
    assert schema.head_revision() == "0002"
