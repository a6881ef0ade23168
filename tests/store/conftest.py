"""Store fixtures: the same tests on a SQLite file and on the local PostgreSQL."""

from tests.engine.conftest import state_url, store  # noqa: F401  (shared fixtures)
