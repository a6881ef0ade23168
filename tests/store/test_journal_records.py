"""Migration 0009 (api_call.records) and the journal writing each request's record ids."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, select, text

from syncd.apirecords import MAX_RECORDS, about, bound_records, for_records, record_ids
from syncd.model import JournalEntry
from syncd.store import StoreJournal
from syncd.store.schema import _alembic_config
from syncd.store.tables import ApiCall

from .conftest import migrated_from

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_requests_journaled_before_0009_keep_their_rows_with_no_record_ids_and_0009_downgrades(state_url):
    migrated_from(state_url, "0008",
                  "INSERT INTO api_call (system, operation, method, status, duration_ms, attempt) "
                  "VALUES ('okitoki', 'create_task', 'POST', 200, 12, 1)")
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT operation, status, records FROM api_call")).one()
        assert tuple(row) == ("create_task", 200, None)
        with engine.begin() as conn:
            cfg = _alembic_config(state_url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008")
            assert conn.execute(text("SELECT count(*) FROM api_call")).scalar() == 1
    finally:
        engine.dispose()


def test_journal_rows_name_their_records_and_a_bulk_request_its_first_fifty_and_a_count(store):
    journal = StoreJournal(store)
    one = record_ids(crm="c-7", okitoki="42")
    journal(JournalEntry(at=NOW, system="okitoki", operation="contact_update", method="POST",
                         status=200, duration_ms=5, attempt=1, records=one))
    with for_records([record_ids(crm=f"c{i}") for i in range(MAX_RECORDS + 20)]):
        bulk = bound_records()
    assert bound_records() == ()           # the block's records end with the block
    journal(JournalEntry(at=NOW, system="crm", operation="upsert_contacts", method="POST",
                         status=200, duration_ms=5, attempt=1, records=bulk))
    journal(JournalEntry(at=NOW, system="okitoki", operation="dialers", method="GET",
                         status=200, duration_ms=5, attempt=1))
    journal.flush()
    with store.begin() as conn:
        rows = [r.records for r in conn.execute(select(ApiCall.__table__).order_by(ApiCall.__table__.c.id))]
    assert rows[0] == "crm:c-7,okitoki:42"
    assert rows[1].split(",")[:2] == ["crm:c0", "crm:c1"] and rows[1].endswith(",crm:c49,+20")
    assert rows[2] is None


def test_record_ids_are_phone_free_tokens_and_a_link_only_when_no_side_id_is_known():
    assert record_ids(crm="1", okitoki=None, session="900", link=5) == ("crm:1", "session:900")
    assert record_ids(link=5) == ("link:5",)
    assert record_ids(crm="a,b c") == ("crm:a_b_c",)     # commas separate ids in the column

    def handler() -> tuple[str, ...]:
        about(record_ids(crm="1"), record_ids(crm="1"), record_ids(crm="2"))
        return bound_records()
    assert contextvars.copy_context().run(handler) == ("crm:1", "crm:2")
    assert bound_records() == ()           # a handler's records stay in its own context
