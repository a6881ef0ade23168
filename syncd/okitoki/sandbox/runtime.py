"""One running sandbox: its state and settings plus the journal, rate gate, fault plan,
webhook dispatcher and data file that the HTTP layer uses."""

from __future__ import annotations

import dataclasses
from typing import Callable

from .faults import FaultPlan, RateGate
from .journal import RequestJournal
from .persist import DataFile
from .settings import SandboxSettings
from .state import SandboxState
from .webhooks import WebhookDispatcher

__all__ = ["Sandbox"]

Bootstrap = Callable[[SandboxState], None]


class Sandbox:
    def __init__(self, state: SandboxState, settings: SandboxSettings,
                 bootstrap: Bootstrap | None = None) -> None:
        self.state = state
        self.settings = settings
        self._initial_settings = dataclasses.replace(settings)
        state.settings = settings
        self.bootstrap = bootstrap
        self.journal = RequestJournal()
        self.rate_gate = RateGate()
        self.faults = FaultPlan()
        self.webhooks = WebhookDispatcher(settings)
        state.listeners.append(self.webhooks)
        self.data_file = (DataFile(settings.data_file, state, settings.save_interval)
                          if settings.data_file else None)
        loaded = self.data_file.load() if self.data_file else False
        if not loaded and bootstrap is not None:
            bootstrap(state)
        self._started = False

    def start(self) -> None:
        """Start the background threads (webhook sender, data file writer)."""
        if not self._started:
            self.webhooks.start()
            if self.data_file:
                self.data_file.start()
            self._started = True

    def stop(self) -> None:
        """Stop the threads; the data file gets its last write."""
        if self._started:
            self.webhooks.stop()
            if self.data_file:
                self.data_file.stop()
            self._started = False

    def reset(self) -> None:
        """Back to a fresh sandbox: empty state (then the bootstrap), no journal, faults,
        webhooks or clock offset, and the settings it started with."""
        with self.state.lock:
            self.state.clear()
            self.state.clock_offset = 0.0
            if self.bootstrap is not None:
                self.bootstrap(self.state)
        self.journal.clear()
        self.rate_gate.clear()
        self.faults = FaultPlan()
        for name in SandboxSettings.MUTABLE:  # back to the settings it started with
            setattr(self.settings, name, getattr(self._initial_settings, name))
        self.webhooks.clear()
