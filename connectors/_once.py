"""Exactly-once creation of remote records that have no natural idempotency key (call logs).

:class:`IntentLedger` is a small SQLite file (mode 0600) under the connector's ``state_dir``
recording, per key (the Oki-Toki ``session_id``), that a create was *sent* (before the
request leaves) and, once the remote answered, the remote id it got. A key marked sent but
never confirmed is an ambiguous outcome (timeout after send, crash mid-request): the
connector must look the record up before creating it again. A confirmed key is answered
from the ledger with no request at all, so a re-sent call after a crash of the engine costs
nothing and makes no duplicate.

The create itself goes out with ``RemoteSystem.request(..., idempotent=False)``: no blind
retry of ambiguous failures (timeouts, 5xx, dropped connections: the remote may have acted),
while throttling answers (429: the remote did nothing) are waited out and retried.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Callable, Mapping

from syncd.model import WriteResult

__all__ = ["IntentLedger", "Intent", "proven_done"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS intent (
    key TEXT PRIMARY KEY, remote_id TEXT, sent_at TEXT NOT NULL)"""


@dataclass(frozen=True)
class Intent:
    """A create that was sent at ``sent_at`` (UTC); ``remote_id`` None: not confirmed."""

    key: str
    remote_id: str | None
    sent_at: datetime


class IntentLedger:
    """Keys sent / confirmed, persisted across restarts (SQLite, one file, mode 0600)."""

    def __init__(self, path: Path, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._now = now
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: Path, name: str) -> "IntentLedger":
        """The ledger ``<state_dir>/once-<name>.sqlite``."""
        return cls(Path(state_dir) / f"once-{name}.sqlite")

    def get(self, key: str) -> Intent | None:
        with self._lock:
            row = self._db.execute("SELECT key, remote_id, sent_at FROM intent WHERE key = ?",
                                   (key,)).fetchone()
        return Intent(row[0], row[1], datetime.fromisoformat(row[2])) if row else None

    def sending(self, key: str) -> None:
        """Record that a create for ``key`` is about to be sent (call *before* sending)."""
        with self._lock:
            self._db.execute("INSERT INTO intent(key, remote_id, sent_at) VALUES (?, NULL, ?) "
                             "ON CONFLICT(key) DO UPDATE SET sent_at = excluded.sent_at",
                             (key, self._now().isoformat()))

    def confirmed(self, key: str, remote_id: str) -> None:
        """The remote holds the record for ``key`` as ``remote_id``."""
        with self._lock:
            self._db.execute("INSERT INTO intent(key, remote_id, sent_at) VALUES (?, ?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET remote_id = excluded.remote_id",
                             (key, remote_id, self._now().isoformat()))

    def forget(self, key: str) -> None:
        """The create was refused for sure (4xx): nothing exists remotely for ``key``."""
        with self._lock:
            self._db.execute("DELETE FROM intent WHERE key = ?", (key,))

    def prune(self, older_than: timedelta) -> int:
        """Drop confirmed entries older than ``older_than``; returns how many."""
        cutoff = (self._now() - older_than).isoformat()
        with self._lock:
            cur = self._db.execute("DELETE FROM intent WHERE remote_id IS NOT NULL AND sent_at < ?",
                                   (cutoff,))
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


def proven_done(ledger: IntentLedger, key: str, found: Mapping[str, str]) -> WriteResult | None:
    """The result of a write already proven done: the ledger holds its remote id, or a lookup
    ``found`` it (then the ledger is told); None when nothing proves it yet."""
    intent = ledger.get(key)
    if intent and intent.remote_id:
        return WriteResult(key, True, intent.remote_id)
    if key in found:
        ledger.confirmed(key, found[key])
        return WriteResult(key, True, found[key])
    return None
