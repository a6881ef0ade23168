"""Migration 0002 (call fingerprint and revision) on a state database holding calls from 0001."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from .conftest import migrated_from


def test_calls_recorded_before_0002_keep_their_rows_with_no_fingerprint_and_revision_0(state_url):
    migrated_from(state_url, "0001",
                  "INSERT INTO call (session_id, state, outcome) VALUES ('1000001', 'logged', 'answered')")
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT session_id, state, fingerprint, revision FROM call")).one()
    finally:
        engine.dispose()
    assert tuple(row) == ("1000001", "logged", None, 0)
