"""What the daemon needs of a syncer: :class:`DaemonSyncer` (typed, so the daemon calls its
members directly instead of probing for them).

:class:`syncd.engine.syncer.Syncer` satisfies it (``tests/test_types.py`` checks that with
mypy); the daemon's tests pass fakes with the same members. A feature a syncer "does not
have" is a member that does nothing: ``startup()`` that returns, ``hint_contacts`` that
takes nothing (0), a side whose ``health_check`` returns. Whether ``verify`` runs on a
schedule is the configuration's choice (``[verify] interval = "off"``), not the syncer's.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from ..config import Config
from ..connector import CrmConnector
from ..store import Store, StoreJournal
from .hints import CallRetries

if TYPE_CHECKING:
    from ..okitoki.client import OkitokiClient
    from .syncer import Syncer

__all__ = ["DaemonSyncer", "DaemonContext", "JobReport"]


class JobReport(Protocol):
    """What a job returns, as the daemon logs it (:class:`syncd.engine.syncer.RunReport`)."""

    @property
    def counts(self) -> dict[str, int]: ...

    @property
    def errors(self) -> list[str]: ...

    @property
    def deferred(self) -> str:
        """Why the run did not finish its work (budget, lease, verify cut short); "" if it did."""


class DaemonContext(Protocol):
    """The part of :class:`syncd.engine.context.Context` the daemon reads and hooks into."""

    config: Config
    instance_id: str
    heartbeat: Callable[[str], None] | None           # (stream): a long job committed a batch
    latency_listener: Callable[[str, float], None] | None   # (flow, seconds): settled


@runtime_checkable
class DaemonSyncer(Protocol):
    """The syncer as :class:`syncd.daemon.Daemon` runs it: one method per job, the hints the
    web listener passes on, start-up and health checks, and the hooks for metrics.
    (``isinstance`` checks that every member is there, for the tests' fakes.)"""

    @property
    def store(self) -> Store | None:
        """The state database (stream health, verify's schedule); None: memory only."""

    @property
    def ctx(self) -> DaemonContext: ...

    @property
    def okitoki(self) -> OkitokiClient:
        """Oki-Toki; the daemon calls its ``health_check()`` before READY=1."""

    @property
    def crm(self) -> CrmConnector:
        """The CRM connector; the daemon calls its ``health_check()`` before READY=1."""

    @property
    def api_journal(self) -> StoreJournal | None:
        """The API journal the daemon adds its ``/metrics`` counter to (None: no journal)."""

    @property
    def call_retries(self) -> CallRetries:
        """Hinted calls not yet in the log: the daemon wakes the calls pull when one is due."""

    def startup(self) -> None:
        """Work before the first job; ConfigError exits 78, any other error 1."""

    def gauges(self) -> dict[str, Any]:
        """The ``/metrics`` gauges by name (:func:`syncd.engine.status.metric_gauges`); a
        gauge absent or None is not shown."""

    def hint_call(self, session_id: str) -> None:
        """A call event named this session: the next calls pull looks for it."""

    def hint_contacts(self, ids: list[str]) -> int:
        """A CRM event named these records; how many were not already waiting."""

    def pull_crm_contacts(self) -> JobReport: ...

    def pull_okitoki_contacts(self) -> JobReport: ...

    def pull_okitoki_calls(self) -> JobReport: ...

    def pull_crm_hinted(self) -> JobReport: ...

    def push(self, stop: threading.Event) -> JobReport: ...

    def housekeeping(self) -> JobReport: ...

    def verify(self, repair: bool = False) -> JobReport: ...

    def close(self) -> None: ...


if TYPE_CHECKING:
    def _the_engine_syncer_is_a_daemon_syncer(syncer: Syncer) -> DaemonSyncer:
        """Never runs: mypy (tests/test_types.py) checks :class:`Syncer` against the protocol."""
        return syncer
