"""Migration 0002 (call fingerprint and revision) on a state database holding calls from 0001."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from syncd.store import check_schema, migrate
from syncd.store.schema import _alembic_config


def test_calls_recorded_before_0002_keep_their_rows_with_no_fingerprint_and_revision_0(state_url):
    engine = create_engine(state_url)
    try:
        cfg = _alembic_config(state_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.execute(text("INSERT INTO call (session_id, state, outcome) VALUES ('1000001', 'logged', 'answered')"))
    finally:
        engine.dispose()
    migrate(state_url)
    check_schema(state_url)
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT session_id, state, fingerprint, revision FROM call")).one()
    finally:
        engine.dispose()
    assert tuple(row) == ("1000001", "logged", None, 0)
