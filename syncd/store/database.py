"""Opening the state database: SQLite (WAL, busy timeout, file mode 0600) or PostgreSQL.

SQLite transactions start with ``BEGIN IMMEDIATE``: writers queue on the database lock (up to
the busy timeout) instead of failing on a read→write lock upgrade, so every job of the daemon
may open short transactions from its own thread. No transaction ever waits on a remote call.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, create_engine

from .engines import READ_ONLY, prepare_sqlite_file, sqlite_engine, sqlite_path
from .schema import SchemaOutdated, check_schema, migrate

__all__ = ["Store", "open_store", "sqlite_path"]


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

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One transaction that only reads (writing in it is a bug). On SQLite it reads a
        snapshot of the database and never queues on the write lock, so request workers
        reading their rows do not wait for a writer's commit (nor sleep in SQLite's busy
        handler); elsewhere it is :meth:`begin`."""
        if self._dry is not None or self.dialect != "sqlite":
            with self.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
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


def open_store(url: str, *, create: bool = False, check: bool = True) -> Store:
    """Open the state database at ``url``.

    ``create=True`` creates the file/schema by applying the migrations (``syncd migrate``);
    otherwise, with ``check=True``, an unmigrated or outdated database raises
    :class:`syncd.store.schema.SchemaOutdated` ("run `syncd migrate`").
    """
    path = sqlite_path(url)
    if path is not None:
        if create:
            prepare_sqlite_file(path)
        elif check and not path.exists():
            raise SchemaOutdated(f"daemon.state_url: no state database at {path}: run `syncd migrate`")
        engine = sqlite_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    store = Store(url=url, engine=engine)
    if create:
        migrate(url, engine=engine)
    elif check:
        check_schema(url, engine=engine)
    return store
