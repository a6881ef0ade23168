"""Opening the state database: SQLite (WAL, busy timeout, file mode 0600) or PostgreSQL.

SQLite transactions start with ``BEGIN IMMEDIATE``: writers queue on the database lock (up to
the busy timeout) instead of failing on a read→write lock upgrade, so every job of the daemon
may open short transactions from its own thread. No transaction ever waits on a remote call.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

__all__ = ["Store", "open_store", "sqlite_path"]

BUSY_TIMEOUT_MS = 30_000


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases or ``:memory:``)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


@dataclass
class Store:
    """The state database: an engine plus short-transaction helpers."""

    url: str
    engine: Engine
    _dry: Any = field(default=None, init=False, repr=False)
    _dry_tx: Any = field(default=None, init=False, repr=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction (committed on success, rolled back on error).

        In a dry run every transaction is a savepoint of one outer transaction that is rolled
        back at :meth:`end_dry_run`: the engine runs for real and the database is unchanged.
        """
        if self._dry is not None:
            with self._dry.begin_nested():
                yield self._dry
            return
        with self.engine.begin() as conn:
            yield conn

    def start_dry_run(self) -> None:
        self._dry = self.engine.connect()
        self._dry_tx = self._dry.begin()

    def end_dry_run(self) -> None:
        if self._dry is not None:
            self._dry_tx.rollback()
            self._dry.close()
            self._dry = self._dry_tx = None

    def close(self) -> None:
        self.end_dry_run()
        self.engine.dispose()


def _prepare_sqlite_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Created here so it never exists with the umask's permissions (it may hold PII).
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - trivial
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def open_store(url: str, *, create: bool = False, check: bool = True) -> Store:
    """Open the state database at ``url``.

    ``create=True`` creates the file/schema by applying the migrations (``syncd migrate``);
    otherwise, with ``check=True``, an unmigrated or outdated database raises
    :class:`syncd.store.schema.SchemaOutdated` ("run `syncd migrate`").
    """
    from .schema import check_schema, migrate

    path = sqlite_path(url)
    if path is not None:
        if create:
            _prepare_sqlite_file(path)
        elif check and not path.exists():
            from .schema import SchemaOutdated
            raise SchemaOutdated(f"daemon.state_url: no state database at {path}: run `syncd migrate`")
        engine = _sqlite_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    store = Store(url=url, engine=engine)
    if create:
        migrate(url, engine=engine)
    elif check:
        check_schema(url, engine=engine)
    return store
