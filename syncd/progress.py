"""A status line for long commands on a terminal (``syncd once``): what the state database
shows of the work, once a second, with a rate. Nothing is printed when stderr is not a terminal
(under systemd the JSON log lines are the record)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from sqlalchemy import func, select

__all__ = ["CycleProgress"]


class CycleProgress:
    """Context manager: a thread writes ``\\r``-updated counts to ``stream`` while it runs."""

    def __init__(self, store: Any, stream: TextIO | None = None, every: float = 1.0) -> None:
        self.store, self.stream, self.every = store, stream or sys.stderr, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _counts(self) -> tuple[int, int, int]:
        """(contacts known, outbox rows settled, outbox rows waiting)."""
        from .store.tables import Link, Outbox

        outbox, link = Outbox.__table__, Link.__table__
        with self.store.begin() as conn:
            linked = conn.execute(select(func.count()).select_from(link)).scalar() or 0
            by_status = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
        done = by_status.get("done", 0) + by_status.get("dead", 0)
        waiting = sum(n for s, n in by_status.items() if s not in ("done", "dead"))
        return linked, done, waiting

    def _run(self) -> None:
        start = time.monotonic()
        first_done: int | None = None
        while not self._stop.wait(self.every):
            try:
                linked, done, waiting = self._counts()
            except Exception:  # noqa: BLE001 - a progress line must never fail the command
                continue
            first_done = done if first_done is None else first_done
            elapsed = time.monotonic() - start
            rate = (done - first_done) / elapsed if elapsed > 0 else 0.0
            self.stream.write(f"\rsyncd: {linked:,} contacts known · {done:,} operations done, "
                              f"{waiting:,} waiting · {rate:,.0f}/s · {elapsed:,.0f}s\x1b[K")
            self.stream.flush()

    def __enter__(self) -> "CycleProgress":
        if getattr(self.stream, "isatty", lambda: False)():
            self._thread = threading.Thread(target=self._run, name="syncd-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(5)
            self.stream.write("\r\x1b[K")
            self.stream.flush()
