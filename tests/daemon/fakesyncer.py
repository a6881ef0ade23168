"""A fake syncer for the daemon tests: records calls, can block, fail or be slow."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from cfgkit import ENV, base
from syncd.config import Config, validate_config_dict


@dataclass
class Report:
    job: str
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def fast_config(**daemon: Any) -> Config:
    cfg = base()
    cfg["daemon"].update({"push_interval": "50ms", "housekeeping_interval": "100ms",
                          "jitter": "0s", "shutdown_timeout": "3s", **daemon})
    cfg["okitoki"]["poll_interval"] = "100ms"
    cfg["okitoki"]["webhook_token"] = "hook-token-xyz"
    cfg["crm"]["poll_interval"] = "100ms"
    return validate_config_dict(cfg, "test.toml", environ=ENV)


class FakeSyncer:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.behaviour: dict[str, Callable[[], Any]] = {}
        self.closed = False
        self.hints: list[str] = []
        self.running: dict[str, int] = {}
        self.max_running: dict[str, int] = {}
        self.stop_seen: list[bool] = []

    def _job(self, job: str) -> Report:
        with self.lock:
            self.calls.append(job)
            self.running[job] = self.running.get(job, 0) + 1
            self.max_running[job] = max(self.max_running.get(job, 0), self.running[job])
        try:
            action = self.behaviour.get(job)
            if action is not None:
                result = action()
                if result is not None:
                    return result
            return Report(job, {"seen": 1})
        finally:
            with self.lock:
                self.running[job] -= 1

    def count(self, job: str) -> int:
        with self.lock:
            return self.calls.count(job)

    def pull_crm_contacts(self) -> Report:
        return self._job("pull:crm:contacts")

    def pull_okitoki_contacts(self) -> Report:
        return self._job("pull:okitoki:contacts")

    def pull_okitoki_calls(self) -> Report:
        return self._job("pull:okitoki:calls")

    def push(self, stop: threading.Event) -> Report:
        self.stop = stop
        return self._job("push")

    def housekeeping(self) -> Report:
        return self._job("housekeeping")

    def hint_call(self, session_id: str) -> None:
        self.hints.append(session_id)

    def outbox_depth(self) -> dict[str, int]:
        return {"dnc": 0, "calls": 3, "contacts": 12}

    def close(self) -> None:
        self.closed = True


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
