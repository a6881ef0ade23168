"""What only ``syncd check --online`` can prove about a configuration: the state database is
reachable and writable (or can be created), and ``daemon.http_listen`` can be bound.

Each check returns ``(problems, warnings)``, lines naming the key; nothing is left behind
(a write test is rolled back, a bound socket closed).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from .config_values import listen_address
from .redact import redact

__all__ = ["state_db_problems", "listen_problems", "database_error_line"]

CONNECT_TIMEOUT_S = 5


def database_error_line(exc: BaseException) -> str:
    """A driver error as one short line without secrets (no SQL, no traceback)."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).strip().splitlines()[:1]) or type(orig).__name__
    return redact(text)[:200]


def state_db_problems(url: str) -> tuple[list[str], list[str]]:
    """``daemon.state_url`` reachable and writable, or creatable (SQLite file)."""
    from .store.engines import sqlite_path

    key = "daemon.state_url"
    path = sqlite_path(url)
    if path is not None:
        return _sqlite_problems(path, key), []
    if url.startswith("sqlite"):
        return [], []                            # in memory: nothing to prove
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    table = f"syncd_write_check_{os.getpid()}"
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            try:   # DDL is transactional in PostgreSQL: proves CREATE rights, leaves nothing
                conn.execute(text(f"CREATE TABLE {table} (x integer)"))
            finally:
                tx.rollback()
    except Exception as exc:  # noqa: BLE001 - any driver error is "cannot use the database"
        return [f"{key}: cannot write to the state database: {database_error_line(exc)}"], []
    finally:
        engine.dispose()
    return [], []


def _sqlite_problems(path: Path, key: str) -> list[str]:
    if path.exists():
        if not path.is_file():
            return [f'{key}: "{path}" is not a regular file']
        if not os.access(path, os.R_OK | os.W_OK):
            return [f'{key}: "{path}" is not readable and writable by this user']
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return [f'{key}: the directory "{path.parent}" is not writable by this user '
                    f"(SQLite keeps its journal next to the database)"]
        import sqlite3

        try:
            with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5) as conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return [f"{key}: cannot write to the state database: {database_error_line(exc)}"]
        return []
    existing = next((d for d in path.absolute().parents if d.exists()), None)
    if existing is None or not existing.is_dir():
        return [f'{key}: "{path}" cannot be created ("{existing}" is not a directory)']
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f'{key}: "{path}" cannot be created: "{existing}" is not writable by this user']
    return []


def listen_problems(listen: str | None) -> tuple[list[str], list[str]]:
    """``daemon.http_listen`` can be bound (a port in use is a warning: maybe our own daemon)."""
    address = listen_address(listen) if listen else None
    if address is None:
        return [], []
    host, port = address
    key = "daemon.http_listen"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return [f'{key}: "{host}" does not resolve: {exc.strerror or exc}'], []
    family, kind, proto, _, sockaddr = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return [], [f"{key}: {listen} is in use now (by a running syncd?); the daemon "
                        f"cannot start its listener while it is"]
        return [f"{key}: cannot listen on {listen}: {exc.strerror or exc}"], []
    return [], []
