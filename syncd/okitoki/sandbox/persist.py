"""The ``--data FILE`` store: the state as one JSON file, replaced atomically.

Writes are coalesced: a change marks the state dirty and a background thread writes at most
once every ``save_interval`` seconds (tmp file in the same folder, fsync, ``os.replace``), so a
burst of 100 bulk imports costs a few writes, not 100. ``stop()`` (clean shutdown) writes
whatever is pending. A crash can lose at most the last ``save_interval`` of changes; the file
itself is never half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import structlog

from .state import SandboxState

__all__ = ["DataFile"]

log = structlog.get_logger()


class DataFile:
    def __init__(self, path: Path, state: SandboxState, interval: float = 0.2) -> None:
        self.path = Path(path)
        self.state = state
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    def load(self) -> bool:
        """Restore the state from the file; False when there is no file yet."""
        if not self.path.exists():
            return False
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        self.state.restore(data)
        return True

    def mark(self) -> None:
        self._dirty.set()

    def save(self) -> None:
        """Write the state now (atomic replace)."""
        with self._write_lock:
            self._dirty.clear()
            text = json.dumps(self.state.snapshot(), ensure_ascii=False, separators=(",", ":"))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def start(self) -> None:
        self.state.on_change = self.mark
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-data-file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.save()
        self.state.on_change = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._stop.wait(self.interval)  # coalesce a burst of changes
            try:
                self.save()
            except OSError as exc:
                log.error("sandbox.data_file.write_failed", path=str(self.path), error=str(exc))
