"""The facade the daemon and the CLI call: one method per job, each recording a run row."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Iterator

import structlog
from sqlalchemy import Connection, and_, delete
from sqlalchemy.exc import IntegrityError

from ..connector import ReportsUntracked
from ..model import Change, Cursor, Unreadable
from ..redact import redact
from ..store import Store, StoreJournal, acquire_lease, record_run
from ..store.tables import ApiCall, Run
from . import capture, cursors, guard, latency
from .calls import CRM_CAUGHT_UP, HintFetches, pull_calls
from .hints import CallRetries, read_hinted_contacts
from .context import OUTBOX, Context
from .cursors import EPOCH, OKITOKI_OVERLAP
from .handlers import HANDLERS
from .ingest import record_contacts
from .push import push as drain
from .reconcile import reconcile
from .status import metric_gauges

__all__ = ["Syncer", "RunReport", "CycleReport", "CRM_STREAM", "OKITOKI_STREAM"]

log = structlog.get_logger()
CRM_STREAM, OKITOKI_STREAM = "crm:contacts", "okitoki:contacts"
KEEP_DONE = timedelta(days=7)
KEEP_JOURNAL = timedelta(days=30)
UNTRACKED_EVERY = timedelta(minutes=10)   # how often rows change detection cannot see are counted
MAX_HINTED = 1000                          # hinted session ids kept between two calls pulls


@dataclass
class RunReport:
    job: str
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0          # seconds
    changes: list[Change] = field(default_factory=list)   # dry run: what push would do
    deferred: str = ""             # why the run did not finish its work (budget, lease); "" if it did
    drift: Any = None              # verify: the DriftReport


@dataclass
class CycleReport:
    runs: list[RunReport]
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False

    @property
    def counts(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for r in self.runs:
            total.update({f"{r.job}.{k}": v for k, v in r.counts.items()})
        return dict(total)

    @property
    def errors(self) -> list[str]:
        return [e for r in self.runs for e in r.errors]


class Syncer:
    """Runs the flows over one :class:`Context`. Thread-safe per job (the daemon never runs a
    job twice at once); every job commits its work in short transactions as it goes."""

    api_journal: StoreJournal | None = None   # build_syncer's; the daemon adds its metrics

    def __init__(self, ctx: Context, *, closers: tuple[Callable[[], None], ...] = (),
                 flushers: tuple[Callable[[], None], ...] = ()) -> None:
        self.ctx = ctx
        self.store: Store = ctx.store
        self.crm = ctx.crm
        self.okitoki = ctx.okitoki
        self._closers = closers
        self._flushers = flushers   # buffered accounting: written after each job and at close
        self._hint = threading.Event()
        self._untracked_at: datetime | None = None   # when rows without a change time were counted
        self._hinted: set[str] = set()     # session ids of hinted calls, for the next pull
        self._hinted_lock = threading.Lock()
        self._hint_fetches = HintFetches()   # billed by-id look-ups hints may cause
        self.call_retries = CallRetries()     # hinted calls not yet in the log: look again soon
        self._retry_pulls = HintFetches(per_pull=1, per_hour=ctx.config.okitoki.webhook_retries_per_hour)
        self._crm_hinted: set[str] = set()   # CRM record ids webhooks named, for pull_crm_hinted
        self._lease_ttl = max(timedelta(seconds=90), 3 * max(ctx.config.crm.poll_interval,
                                                             ctx.config.okitoki.poll_interval))

    # -- reporting ---------------------------------------------------------------------------
    @contextmanager
    def _run(self, job: str) -> Iterator[RunReport]:
        report = RunReport(job)
        started, t0 = self.ctx.now(), time.monotonic()
        # bound_contextvars restores what the caller had bound (the daemon binds ``job`` for
        # its own job_finished/job_error lines): unbinding would strip it from them.
        with structlog.contextvars.bound_contextvars(job=job):
            try:
                yield report
            except Exception as exc:
                report.errors.append(redact(f"{type(exc).__name__}: {exc}"))
                raise
            finally:
                report.duration = round(time.monotonic() - t0, 3)
                report.counts = {k: int(v) for k, v in report.counts.items() if v}
                try:
                    record_run(self.store, job=job, instance=self.ctx.instance_id, started_at=started,
                               duration_ms=int(report.duration * 1000), counts=report.counts,
                               errors=report.errors)
                except Exception as exc:  # noqa: BLE001 - never hide the job's own outcome
                    log.warning("run_not_recorded", error=redact(str(exc)))
                self._flush()

    def _follows(self, rep: RunReport, stream: str) -> bool:
        """Whether another instance leads ``stream`` (then counted as ``not_leader``: the job
        has nothing to do in this one)."""
        if self._leader(stream):
            return False
        rep.counts["not_leader"] = 1
        return True

    def _leader(self, stream: str) -> bool:
        return acquire_lease(self.store, f"stream:{stream}", self.ctx.instance_id,
                             ttl=self._lease_ttl, now=self.ctx.now())

    # -- jobs --------------------------------------------------------------------------------
    def startup(self) -> None:
        """What the daemon runs once before its first job. Nothing is left to do here:
        :func:`syncd.engine.build.build_syncer` opened the migrated state database and
        released the claims of a crashed process on this host, and the daemon's health
        checks (``okitoki.health_check()``, ``crm.health_check()``) follow."""

    def pull_crm_contacts(self) -> RunReport:
        """Walk the CRM's changed contacts from the cursor (re-reading the overlap window);
        each page commits with its cursor, which never moves past the time of the read."""
        with self._run("pull:crm:contacts") as rep:
            if self._follows(rep, CRM_STREAM):
                return rep
            counts: Counter[str] = Counter()
            with self.store.begin() as conn:
                cur = cursors.load(conn, CRM_STREAM)
                began = cursors.load(conn, CRM_CAUGHT_UP).value
            after = capture.walk_start(Cursor(cur.value, cur.last_id), began, self._crm_overlap())
            limit = self.ctx.crm_capabilities.read_batch_size or 100
            walk_began = self.ctx.now()
            future = capture.FutureTimes(CRM_STREAM, self.ctx.config.crm.clock_skew)
            while True:
                fetched_at = self.ctx.now()
                page = self.crm.changed_contacts(after, limit)
                future.check(page.contacts, fetched_at)
                stored = capture.clamped(page.next, fetched_at)
                def store_page(conn: Connection) -> Counter[str]:
                    got = record_contacts(self.ctx, conn, "crm", page.contacts, fetched_at=fetched_at)
                    got["quarantined"] += capture.quarantine_unreadable(
                        conn, "crm", page.unreadable, self.ctx.now())
                    cursors.advance(conn, cursors.StreamCursor(CRM_STREAM, stored.updated_at,
                                                               stored.last_id), now=self.ctx.now())
                    return got
                counts += self._ingest(store_page)
                counts["pages"] += 1
                if not page.more or page.next == after:
                    with self.store.begin() as conn:   # every CRM contact up to walk_began is in
                        cursors.advance(conn, cursors.StreamCursor(CRM_CAUGHT_UP, walk_began),
                                        now=self.ctx.now())
                        future.store(conn, self.ctx.now())
                    break
                after = page.next
            counts["future_times"] += len(future.found)
            counts.update(self._check_untracked())
            rep.counts = dict(counts)
        return rep

    def _ingest(self, work: Callable[[Connection], Counter[str]]) -> Counter[str]:
        """Run one page's ingest in a transaction, and once more if another instance linked
        the same record at the same moment (a unique constraint on links or phones): the
        second run sees that instance's rows and links to them instead of inserting again."""
        for attempt in (1, 2):
            try:
                with self.store.begin() as conn:
                    return work(conn)
            except IntegrityError as exc:
                if attempt == 2:
                    raise
                log.info("ingest_raced", error=redact(str(exc.orig or exc))[:200])
        raise AssertionError("unreachable")

    def _crm_overlap(self) -> timedelta:
        configured = self.ctx.config.crm.overlap
        if configured is not None:
            return configured
        return self.ctx.crm_capabilities.change_overlap or timedelta(0)

    def _check_untracked(self) -> Counter[str]:
        """Every UNTRACKED_EVERY: count the rows change detection cannot see (connectors that
        can tell, e.g. SQL), report them and quarantine the unreadable ones."""
        now = self.ctx.now()
        if not isinstance(self.crm, ReportsUntracked) or (
                self._untracked_at is not None and now - self._untracked_at < UNTRACKED_EVERY):
            return Counter()
        found = self.crm.untracked_contacts()
        self._untracked_at = now
        with self.store.begin() as conn:
            capture.report_untracked(conn, CRM_STREAM, "crm", found, self.ctx.now())
        return Counter(untracked_null=found.null, unreadable_time=found.unreadable_total)

    def pull_okitoki_contacts(self) -> RunReport:
        """Export Oki-Toki contacts changed since the cursor (minus an overlap window)."""
        with self._run("pull:okitoki:contacts") as rep:
            if self._follows(rep, OKITOKI_STREAM):
                return rep
            counts: Counter[str] = Counter()
            with self.store.begin() as conn:
                cur = cursors.load(conn, OKITOKI_STREAM)
            start = cursors.window_start(cur, OKITOKI_OVERLAP, initial=EPOCH)
            top, boundary = cur.value, set(cur.boundary_ids)
            batch: list[Any] = []
            unreadable: list[Unreadable] = []
            fetched_at = self.ctx.now()   # pages come lazily; the first request bounds them all
            future = capture.FutureTimes(OKITOKI_STREAM, self.ctx.config.crm.clock_skew)

            def flush(final: bool) -> None:
                nonlocal batch
                future.check(batch, fetched_at)

                def store_batch(conn: Connection) -> Counter[str]:
                    got = record_contacts(self.ctx, conn, "okitoki", batch, fetched_at=fetched_at)
                    got["quarantined"] += capture.quarantine_unreadable(
                        conn, "okitoki", unreadable, self.ctx.now())
                    if final:
                        future.store(conn, self.ctx.now())
                    if final and top is not None:
                        # never past the read: a future time is read again next time
                        at, ids = (top, boundary) if top <= fetched_at else (fetched_at, set())
                        cursors.advance(conn, cursors.StreamCursor(OKITOKI_STREAM, at, None,
                                                                   frozenset(ids)), now=self.ctx.now())
                    return got
                counts.update(self._ingest(store_batch))
                batch = []
                unreadable.clear()   # in place: the export's callback appends to this list

            for contact in self.okitoki.export_contacts(start, on_unreadable=unreadable.append):
                batch.append(contact)
                ts = contact.updated_at
                if isinstance(ts, datetime) and ts.tzinfo is not None:
                    if top is None or ts > top:
                        top, boundary = ts, {contact.id}
                    elif ts == top:
                        boundary.add(contact.id)
                if len(batch) >= self.ctx.batch_size:
                    flush(False)
            flush(True)
            counts["future_times"] += len(future.found)
            rep.counts = dict(counts)
        return rep

    def pull_okitoki_calls(self) -> RunReport:
        """Read the settled call log; queue one CRM activity per new session and its status."""
        with self._run("pull:okitoki:calls") as rep:
            if self._follows(rep, "okitoki:calls"):
                return rep
            hinted = self._hint.is_set()
            self._hint.clear()
            retry = self.call_retries.due(self.ctx.now())
            given_up = 0
            if retry and not hinted and not self._retry_pulls.allow(1, self.ctx.now()):
                self.call_retries.found(retry)    # over the hour's retry pulls: the poll brings them
                given_up, retry = len(retry), []
            with self._hinted_lock:
                sessions, self._hinted = sorted(self._hinted | set(retry)), set()
            seen: set[str] = set()
            counts = pull_calls(self.ctx, hinted=hinted or bool(retry), sessions=sessions,
                                hint_fetches=self._hint_fetches, seen=seen)
            self.call_retries.found(seen)
            missing = [s for s in sessions if s not in seen]
            counts["hints_retried"] += len(retry)
            counts["hints_not_in_log"] += len(missing)
            counts["hints_given_up"] += given_up + self.call_retries.missed(missing, self.ctx.now())
            rep.counts = dict(counts)
        return rep

    def hint_contacts(self, ids: list[str]) -> int:
        """CRM webhooks named these records: the next ``pull_crm_hinted`` reads them by id.
        Returns how many were not already waiting."""
        with self._hinted_lock:
            before = len(self._crm_hinted)
            for rid in ids:
                if len(self._crm_hinted) >= MAX_HINTED:   # the poll brings the rest
                    break
                self._crm_hinted.add(str(rid))
            return len(self._crm_hinted) - before

    def pull_crm_hinted(self) -> RunReport:
        """Read the contacts CRM webhooks named, by id, and record them like the poll does
        (the CRM stream's leader only; another instance leaves them to its poll)."""
        with self._run("pull:crm:hinted") as rep:
            with self._hinted_lock:
                ids, self._crm_hinted = sorted(self._crm_hinted), set()
            if not ids:
                return rep
            if self._follows(rep, CRM_STREAM):
                return rep
            try:
                rep.counts = dict(read_hinted_contacts(self.ctx, ids))
            except Exception:
                self.hint_contacts(ids)     # not read: the next run tries them again
                raise
        return rep

    def push(self, stop: threading.Event | None = None) -> RunReport:
        """Merge what the pulls recorded, then drain the outbox lane by lane until ``stop``."""
        with self._run("push") as rep:
            counts: Counter[str] = Counter()
            if self._leader("merge"):
                counts.update({f"merge_{k}": v for k, v in reconcile(self.ctx).items()})
                if not self.ctx.dry_run:
                    counts.update(guard.check(self.ctx))   # floods are held, the rest flows
            planned_before = len(self.ctx.planned)
            pushed, errors = drain(self.ctx, stop, handlers=HANDLERS)
            counts.update(pushed)
            rep.counts, rep.errors = dict(counts), errors
            rep.changes = list(self.ctx.planned[planned_before:])
        return rep

    def housekeeping(self) -> RunReport:
        """Prune settled outbox rows, old journal and run rows; merge anything left dirty."""
        with self._run("housekeeping") as rep:
            now = self.ctx.now()
            with self.store.begin() as conn:
                rep.counts["pruned_outbox"] = conn.execute(delete(OUTBOX).where(and_(
                    OUTBOX.c.status == "done", OUTBOX.c.updated_at < now - KEEP_DONE))).rowcount or 0
                rep.counts["pruned_journal"] = conn.execute(delete(ApiCall.__table__).where(
                    ApiCall.__table__.c.at < now - KEEP_JOURNAL)).rowcount or 0
                conn.execute(delete(Run.__table__).where(Run.__table__.c.started_at < now - KEEP_JOURNAL))
                rep.counts["pruned_latency"] = latency.prune(conn, now)
            if self._leader("merge"):
                rep.counts.update({f"merge_{k}": v for k, v in reconcile(self.ctx).items()})
        return rep

    def verify(self, repair: bool = False, progress: Any = None) -> RunReport:
        """Compare both sides with the state database (see :mod:`syncd.engine.verify`)."""
        from .verify import verify

        with self._run("verify") as rep:
            drift = verify(self.ctx, repair=repair, progress=progress)
            rep.counts = {**{f"drift_{k}": v for k, v in drift.counts.items()},
                          **{f"repaired_{k}": v for k, v in drift.repairs.items()}}
            rep.drift = drift
            if not drift.complete:
                rep.deferred = "; ".join(drift.notes) or "incomplete"
                rep.counts["incomplete"] = 1
        return rep

    def gauges(self) -> dict[str, Any]:
        """What ``/metrics`` shows from the state database (see :func:`.status.metric_gauges`)."""
        gauges = metric_gauges(self.store, now=self.ctx.now(),
                               price_per_request=self.ctx.config.okitoki.price_per_request)
        gauges["in_flight_limit"] = {system: pace.limit for system, pace in self.ctx.paces.items()
                                     if pace.limit > 0} or None
        return gauges

    def cycle(self, dry_run: bool = False) -> CycleReport:
        """All pulls, then push. ``dry_run``: everything is planned against the real data, but
        nothing is written remotely and the state database is left as it was."""
        if dry_run and not self.ctx.dry_run:
            self.store.start_dry_run()
            self.ctx.dry_run = True
            try:
                return self.cycle(dry_run=True)
            finally:
                self.ctx.dry_run = False
                self.store.end_dry_run()
        runs = [self.pull_crm_contacts(), self.pull_okitoki_contacts(), self.pull_okitoki_calls(),
                self.push()]
        return CycleReport(runs=runs, changes=[c for r in runs for c in r.changes],
                           dry_run=self.ctx.dry_run)

    def hint_call(self, session_id: str) -> None:
        """A webhook said a call ended: the next calls pull reads up to now (no settle delay)."""
        log.info("call_hint", session_id=str(session_id)[:64])
        sid = str(session_id).strip()
        if sid.isdigit() and len(sid) <= 20:
            with self._hinted_lock:
                if len(self._hinted) < MAX_HINTED:   # a flood of hints is just a hint
                    self._hinted.add(sid)
        self._hint.set()

    def _flush(self) -> None:
        for flush in self._flushers:
            try:
                flush()
            except Exception as exc:  # noqa: BLE001 - accounting must not break a job
                log.warning("accounting_not_written", error=redact(str(exc)))

    def close(self) -> None:
        self._flush()
        self.store.end_dry_run()
        for closer in self._closers:
            try:
                closer()
            except Exception as exc:  # noqa: BLE001
                log.warning("close_failed", error=redact(str(exc)))
        self.store.close()
