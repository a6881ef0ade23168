"""The schema the migrations build is the one the tables declare.

The migrations share column kinds and the table-with-indexes shape (syncd/store/migrations/
_ddl.py); a change there, or a table changed without a migration, shows here as a difference.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from syncd.store import migrate
from syncd.store.tables import metadata


def test_upgrading_to_the_head_builds_exactly_the_declared_tables(state_url):
    migrate(state_url)
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
