"""Engines for the state database's SQLite file: created with mode 0600, opened in WAL mode
with a busy timeout, transactions started with ``BEGIN IMMEDIATE``.

Shared by :mod:`syncd.store.database` (opening the store) and :mod:`syncd.store.schema`
(migrating a database that is not open yet).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

__all__ = ["sqlite_path", "prepare_sqlite_file", "sqlite_engine", "BUSY_TIMEOUT_MS"]

BUSY_TIMEOUT_MS = 30_000


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases or ``:memory:``)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def prepare_sqlite_file(path: Path) -> None:
    """Create ``path`` (and its folder) readable by its owner only, unless it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Created here so it never exists with the umask's permissions (it may hold PII).
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


#: Execution option of a connection whose transaction only reads (see ``Store.read``).
READ_ONLY = "syncd_read_only"


def sqlite_engine(url: str) -> Engine:
    """An engine for a SQLite file: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for every
    transaction (writers queue on the lock instead of failing on a lock upgrade), except a
    connection marked :data:`READ_ONLY`, whose reads see a snapshot without taking the lock."""
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:  # pragma: no cover - trivial
        # A read (Store.read) takes a WAL snapshot and never waits for the write lock.
        read = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read else "BEGIN IMMEDIATE")

    return engine
