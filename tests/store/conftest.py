"""Store fixtures: the same tests on a SQLite file and on the local PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from syncd.store import check_schema, migrate
from syncd.store.schema import _alembic_config
from tests.engine.conftest import state_url, store  # noqa: F401  (shared fixtures)


def migrated_from(state_url: str, revision: str, *rows: str) -> None:
    """A state database at ``revision`` holding ``rows`` (INSERT statements), then migrated
    to the head and checked: what an upgrade finds on a running installation."""
    engine = create_engine(state_url)
    try:
        cfg = _alembic_config(state_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            for row in rows:
                conn.execute(text(row))
    finally:
        engine.dispose()
    migrate(state_url)
    check_schema(state_url)
