"""A fake syncer for the daemon tests: records calls, can block, fail or be slow."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from cfgkit import ENV, base
from syncd.config import Config, validate_config_dict
from syncd.engine.hints import CallRetries


@dataclass
class Report:
    job: str
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    deferred: str = ""


class NoHealthCheck:
    """A side (Oki-Toki or CRM) whose health check passes; a test replaces it to refuse."""

    def health_check(self) -> None:
        pass


@dataclass
class FakeContext:
    """The part of the engine's context the daemon hooks into (syncd.engine.seam.DaemonContext)."""

    config: Config | None = None
    instance_id: str = "fake"
    heartbeat: Callable[[str], None] | None = None
    latency_listener: Callable[[str, float], None] | None = None


def fast_config(**daemon: Any) -> Config:
    cfg = base()
    cfg["daemon"].update({"push_interval": "50ms", "housekeeping_interval": "100ms",
                          "jitter": "0s", "shutdown_timeout": "3s", **daemon})
    cfg["okitoki"]["poll_interval"] = "100ms"
    cfg["okitoki"]["webhook_token"] = "hook-token-xyz"
    cfg["crm"]["poll_interval"] = "100ms"
    return validate_config_dict(cfg, "test.toml", environ=ENV)


class FakeSyncer:
    """Every member of syncd.engine.seam.DaemonSyncer. What a subclass does not override is
    "absent": no state database, no journal, startup and health checks that pass, CRM hints
    taken by nobody (0), no hinted call waiting. ``verify`` is scheduled only when the
    configuration asks (``[verify] interval``; the default, a day, never comes in a test)."""

    store: Any = None
    api_journal: Any = None

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.behaviour: dict[str, Callable[[], Any]] = {}
        self.closed = False
        self.hints: list[str] = []
        self.running: dict[str, int] = {}
        self.max_running: dict[str, int] = {}
        self.stop_seen: list[bool] = []
        self.ctx = FakeContext()
        self.okitoki: Any = NoHealthCheck()
        self.crm: Any = NoHealthCheck()
        self.call_retries = CallRetries()

    def _job(self, job: str) -> Report:
        with self.lock:
            self.calls.append(job)
            self.running[job] = self.running.get(job, 0) + 1
            self.max_running[job] = max(self.max_running.get(job, 0), self.running[job])
        try:
            action = self.behaviour.get(job)
            if action is not None:
                result = action()
                if result is not None:   # a hang's Event.wait() answer is no report: none counted
                    return result if isinstance(result, Report) else Report(job)
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

    def pull_crm_hinted(self) -> Report:
        return self._job("pull:crm:hinted")

    def verify(self, repair: bool = False, progress: Any = None) -> Report:
        return self._job("verify")

    def startup(self) -> None:
        pass

    def hint_call(self, session_id: str) -> None:
        self.hints.append(session_id)

    def hint_contacts(self, ids: list[str]) -> int:
        return 0

    def outbox_depth(self) -> dict[str, int]:
        return {"dnc": 0, "calls": 3, "contacts": 12}

    def gauges(self) -> dict[str, Any]:
        return {"outbox_depth": self.outbox_depth()}

    def close(self) -> None:
        self.closed = True


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
