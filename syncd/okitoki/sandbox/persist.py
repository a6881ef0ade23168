"""The ``--data FILE`` store: the state as one JSON file, replaced atomically.

Writes are coalesced: a change marks the state dirty and a background thread writes at most
once every ``save_interval`` seconds (tmp file in the same folder, fsync, ``os.replace``), so a
burst of 100 bulk imports costs a few writes, not 100. ``stop()`` (clean shutdown) writes
whatever is pending. A crash can lose at most the last ``save_interval`` of changes; the file
itself is never half-written.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import structlog

from ...atomic_file import write_atomically
from .entities import Call, Company, Contact, Dialer, PhoneList, Task, User, from_dict, to_dict
from .state import SandboxState

__all__ = ["DataFile", "snapshot", "restore"]

_TABLES = (("companies", Company, "companies"), ("users", User, "users"), ("dialers", Dialer, "dialers"),
           ("tasks", Task, "tasks"), ("lists", PhoneList, "lists"), ("contacts", Contact, "contacts"),
           ("calls", Call, "calls"))


def snapshot(state: SandboxState) -> dict[str, Any]:
    """Everything, as plain JSON-able data (the data file and ``/_sandbox/state``). Calls whose
    late update is due get it first."""
    with state.lock:
        now = state.now()
        for call in state.calls.values():
            if call.visible_at <= now:
                state.settle(call, now)
        data: dict[str, Any] = {"version": 1, "clock_offset": state.clock_offset,
                                "next_ids": dict(state.next_ids)}
        for key, _cls, attr in _TABLES:
            data[key] = [to_dict(x) for x in getattr(state, attr).values()]
        return data


def restore(state: SandboxState, data: dict[str, Any]) -> None:
    """Replace the state's content with a :func:`snapshot`."""
    with state.lock:
        state.clear()
        state.clock_offset = float(data.get("clock_offset", 0.0))
        for key, cls, attr in _TABLES:
            table = getattr(state, attr)
            for row in data.get(key, []):
                obj = from_dict(cls, row)
                table[obj.session_id if cls is Call else obj.id] = obj  # type: ignore[attr-defined]
        state.next_ids.update({k: int(v) for k, v in data.get("next_ids", {}).items()})
        state.rebuild_indexes()

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
        restore(self.state, data)
        return True

    def mark(self) -> None:
        self._dirty.set()

    def save(self) -> None:
        """Write the state now (atomic replace)."""
        with self._write_lock:
            self._dirty.clear()
            text = json.dumps(snapshot(self.state), ensure_ascii=False, separators=(",", ":"))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, text)

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
