"""Stream health: when each stream last advanced, and whether it is stuck.

A stream *advances* when a run of its job completes its work. A run that fails, or is deferred
(remote throttling or an outage, a spent daily budget, a verify cut short by the budget), or is
still running without committing anything, does not advance it. A stream that has not advanced
for :data:`STUCK_AFTER` of its intervals is stuck: ``/healthz`` answers 503 naming it, the
daemon stops its systemd watchdog pings, and ``syncd status`` shows it.

Evidence of progress, newest wins: the end of the last completed run (``stream_health`` table,
written by the daemon after each run), and for the pulls the ``updated_at`` of their cursor,
which moves with every committed page, so a long first walk is not mistaken for a stuck one
(a commit counts only when it is newer than the end of the last run: pages re-read by runs
that then fail do not keep a failing stream green).
A run that lost the stream's lease to another instance records nothing: the leader's runs
write the shared row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from .config import Config
from .errors import BudgetExhausted, FatalRemoteError, RetriableRemoteError
from .redact import redact
from .store import Store
from .store.outbox import insert_ignore
from .store.tables import CursorRow, StreamHealth

if TYPE_CHECKING:
    from .engine.seam import JobReport

__all__ = ["STREAMS", "STUCK_AFTER", "CURSOR_OF", "StreamState", "StreamTracker", "StreamWatch", "outcome_of",
           "stream_intervals", "record_outcome", "load_states", "assess", "stream_health"]

STREAMS = ("pull:crm:contacts", "pull:okitoki:contacts", "pull:okitoki:calls", "push", "verify")
STUCK_AFTER = 3
CURSOR_OF = {"pull:crm:contacts": "crm:contacts", "pull:okitoki:contacts": "okitoki:contacts",
             "pull:okitoki:calls": "okitoki:calls"}
HEALTH, CURSOR = StreamHealth.__table__, CursorRow.__table__
log = structlog.get_logger("syncd.health")


def stream_intervals(config: Config) -> dict[str, timedelta]:
    """Each stream's job interval (``verify`` only when it is scheduled)."""
    out = {"pull:crm:contacts": config.crm.poll_interval,
           "pull:okitoki:contacts": config.okitoki.poll_interval,
           "pull:okitoki:calls": config.okitoki.poll_interval,
           "push": config.daemon.push_interval}
    if config.verify.interval is not None:
        out["verify"] = config.verify.interval
    return out


def outcome_of(report: JobReport | None = None, exc: BaseException | None = None) -> tuple[str, str]:
    """(outcome, reason) of one run: ``ok``; ``standby`` (another instance holds the stream:
    not this instance's failure, so it counts as progress here and is not stored); ``deferred``
    (throttled, remote down, budget spent, verify cut short); ``fatal``; ``failed``."""
    if exc is not None:
        text = redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, FatalRemoteError):
            return "fatal", text
        if isinstance(exc, (RetriableRemoteError, BudgetExhausted)):
            return "deferred", f"deferred: {text}"
        return "failed", text
    if report is None:
        return "ok", ""
    if report.deferred:
        return "deferred", redact(f"deferred: {report.deferred}")
    if report.counts.get("not_leader"):
        return "standby", ""
    return "ok", ""


@dataclass(frozen=True)
class StreamState:
    stream: str
    advanced_at: datetime | None = None
    run_at: datetime | None = None
    outcome: str = ""             # ok | deferred | failed | fatal ("" : no run seen)
    reason: str = ""


def assess(state: StreamState, interval: timedelta, now: datetime, *, since: datetime | None,
           running_since: datetime | None = None) -> dict[str, Any]:
    """``state`` judged at ``now``: last advance, stuck or not, and why.

    ``since``: when watching began (daemon start); a stream that never advanced is judged
    from then. ``running_since``: the stream's job is in flight since then."""
    limit = STUCK_AFTER * interval
    ref = state.advanced_at or since
    stuck = ref is None or now - ref > limit
    reason = ""
    if stuck:
        if running_since is not None and (state.run_at is None or running_since > state.run_at):
            reason = f"running for {int((now - running_since).total_seconds())}s without progress"
        elif state.outcome in ("failed", "fatal", "deferred"):
            reason = state.reason or state.outcome
        elif state.outcome == "ok" or state.advanced_at:
            reason = "no run completed since"
        else:
            reason = "not run yet"
    return {"stream": state.stream, "advanced_at": state.advanced_at, "last_run_at": state.run_at,
            "last_outcome": state.outcome or None, "stuck": stuck,
            "reason": reason or None, "stuck_after_s": int(limit.total_seconds())}


class StreamTracker:
    """The daemon's in-memory view (thread-safe): last advance and last outcome per stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, StreamState] = {}
        self._running: dict[str, datetime] = {}

    def started(self, stream: str, at: datetime) -> None:
        with self._lock:
            self._running[stream] = at

    def advanced(self, stream: str, at: datetime) -> None:
        """Progress inside a run (a committed batch): the stream advanced, the run goes on."""
        with self._lock:
            old = self._states.get(stream, StreamState(stream))
            self._states[stream] = StreamState(stream, at, old.run_at, old.outcome, old.reason)

    def finished(self, stream: str, at: datetime, outcome: str, reason: str = "") -> None:
        good = outcome in ("ok", "standby")
        with self._lock:
            self._running.pop(stream, None)
            old = self._states.get(stream, StreamState(stream))
            self._states[stream] = StreamState(stream, at if good else old.advanced_at,
                                               at, outcome, "" if good else reason)

    def assess(self, intervals: dict[str, timedelta], now: datetime, *, since: datetime,
               evidence: dict[str, datetime] | None = None) -> list[dict[str, Any]]:
        """Every watched stream, judged; ``evidence``: other proof of progress (cursor times)."""
        with self._lock:
            states, running = dict(self._states), dict(self._running)
        out = []
        for stream, interval in intervals.items():
            state = _with_evidence(states.get(stream, StreamState(stream)), (evidence or {}).get(stream))
            out.append(assess(state, interval, now, since=since, running_since=running.get(stream)))
        return out


def _with_evidence(state: StreamState, seen: datetime | None) -> StreamState:
    """``state`` with a cursor commit at ``seen`` as its last advance, when that is newer than
    both the last advance and the end of the last run: a page committed by a run that then
    failed (a re-read overlap, say) is no progress, one committed by a run still going is."""
    if seen is not None and (state.advanced_at is None or seen > state.advanced_at) \
            and (state.run_at is None or seen > state.run_at):
        return StreamState(state.stream, seen, state.run_at, state.outcome, state.reason)
    return state


class StreamWatch:
    """The daemon's stream health: the in-memory tracker, each finished run also stored for
    ``syncd status`` (``store`` None: memory only), and the judgement of stuck streams."""

    def __init__(self, config: Config, store: Store | None, *, since: datetime,
                 instance: str | None = None) -> None:
        self.intervals = stream_intervals(config)
        self.store, self.since, self.instance = store, since, instance
        self.tracker = StreamTracker()

    def started(self, stream: str, at: datetime) -> None:
        self.tracker.started(stream, at)

    def advanced(self, stream: str, at: datetime) -> None:
        self.tracker.advanced(stream, at)

    def finished(self, stream: str, at: datetime, outcome: str, reason: str = "") -> None:
        self.tracker.finished(stream, at, outcome, reason)
        if stream not in STREAMS or self.store is None or outcome == "standby":
            return
        if outcome != "ok":
            log.warning("stream_not_advanced", stream=stream, outcome=outcome, reason=reason)
        try:
            record_outcome(self.store, stream, at=at, outcome=outcome, reason=reason,
                           instance=self.instance)
        except Exception as exc:  # noqa: BLE001 - health bookkeeping must not fail a job
            log.warning("stream_health_not_recorded", stream=stream, error=redact(str(exc)))

    def stuck(self, now: datetime) -> list[dict[str, Any]]:
        """Streams with no progress for 3 of their intervals (each with ``reason``). The pulls'
        cursor commits count too (read only when a stream looks stuck), so a long walk is not."""
        judged = self.tracker.assess(self.intervals, now, since=self.since)
        if any(j["stuck"] for j in judged) and self.store is not None:
            try:
                evidence = load_states(self.store)[1]
            except Exception:  # noqa: BLE001 - an unreadable database proves no progress
                evidence = {}
            judged = self.tracker.assess(self.intervals, now, since=self.since, evidence=evidence)
        return [j for j in judged if j["stuck"]]


def record_outcome(store: Store, stream: str, *, at: datetime, outcome: str, reason: str = "",
                   instance: str | None = None) -> None:
    """Store how a run of ``stream`` ended (``ok`` also moves ``advanced_at``)."""
    values: dict[str, Any] = {"run_at": at, "outcome": outcome,
                              "reason": redact(reason)[:500] if reason else None, "instance": instance}
    if outcome == "ok":
        values["advanced_at"] = at
    with store.begin() as conn:
        insert_ignore(conn, HEALTH, [{"stream": stream, "outcome": outcome}], ["stream"])
        conn.execute(HEALTH.update().where(HEALTH.c.stream == stream).values(**values))


def load_states(store: Store) -> tuple[dict[str, StreamState], dict[str, datetime]]:
    """The stored stream rows, and the pull cursors' last commit times (by stream name)."""
    with store.begin() as conn:
        rows = conn.execute(select(HEALTH)).all()
        cursors = {r.stream: r.updated_at for r in conn.execute(
            select(CURSOR.c.stream, CURSOR.c.updated_at).where(CURSOR.c.stream.in_(list(CURSOR_OF.values()))))}
    states = {r.stream: StreamState(r.stream, r.advanced_at, r.run_at, r.outcome, r.reason or "")
              for r in rows}
    evidence = {stream: cursors[c] for stream, c in CURSOR_OF.items() if cursors.get(c)}
    return states, evidence


def stream_health(store: Store, intervals: dict[str, timedelta], now: datetime) -> list[dict[str, Any]]:
    """For ``syncd status`` (another process): each stream judged from the state database."""
    states, evidence = load_states(store)
    out = []
    for stream, interval in intervals.items():
        state = _with_evidence(states.get(stream, StreamState(stream)), evidence.get(stream))
        out.append(assess(state, interval, now, since=None))
    return out
