"""The facade the daemon and the CLI call: one method per job, each recording a run row."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Iterator

import structlog
from sqlalchemy import and_, delete

from ..model import Change, Cursor
from ..redact import redact
from ..store import Store, acquire_lease, record_run
from ..store.tables import ApiCall, Run
from . import cursors
from .calls import CRM_CAUGHT_UP, pull_calls
from .context import OUTBOX, Context
from .ingest import record_contacts
from .push import push as drain
from .reconcile import reconcile

__all__ = ["Syncer", "RunReport", "CycleReport", "CRM_STREAM", "OKITOKI_STREAM"]

log = structlog.get_logger()
CRM_STREAM, OKITOKI_STREAM = "crm:contacts", "okitoki:contacts"
OKITOKI_OVERLAP = timedelta(seconds=30)   # export is second-resolution; late commits land here
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
KEEP_DONE = timedelta(days=7)
KEEP_JOURNAL = timedelta(days=30)
MAX_HINTED = 1000                          # hinted session ids kept between two calls pulls


@dataclass
class RunReport:
    job: str
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0          # seconds
    changes: list[Change] = field(default_factory=list)   # dry run: what push would do


@dataclass
class CycleReport:
    runs: list[RunReport]
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False

    @property
    def counts(self) -> dict[str, int]:
        total: Counter = Counter()
        for r in self.runs:
            total.update({f"{r.job}.{k}": v for k, v in r.counts.items()})
        return dict(total)

    @property
    def errors(self) -> list[str]:
        return [e for r in self.runs for e in r.errors]


class Syncer:
    """Runs the flows over one :class:`Context`. Thread-safe per job (the daemon never runs a
    job twice at once); every job commits its work in short transactions as it goes."""

    def __init__(self, ctx: Context, *, closers: tuple = (), flushers: tuple = ()) -> None:
        self.ctx = ctx
        self.store: Store = ctx.store
        self.crm = ctx.crm
        self.okitoki = ctx.okitoki
        self._closers = closers
        self._flushers = flushers   # buffered accounting: written after each job and at close
        self._hint = threading.Event()
        self._hinted: set[str] = set()     # session ids of hinted calls, for the next pull
        self._hinted_lock = threading.Lock()
        self._lease_ttl = max(timedelta(seconds=90), 3 * max(ctx.config.crm.poll_interval,
                                                             ctx.config.okitoki.poll_interval))

    # -- reporting ---------------------------------------------------------------------------
    @contextmanager
    def _run(self, job: str) -> Iterator[RunReport]:
        report = RunReport(job)
        started, t0 = self.ctx.now(), time.monotonic()
        structlog.contextvars.bind_contextvars(job=job)
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
            structlog.contextvars.unbind_contextvars("job")

    def _leader(self, stream: str) -> bool:
        return acquire_lease(self.store, f"stream:{stream}", self.ctx.instance_id,
                             ttl=self._lease_ttl, now=self.ctx.now())

    # -- jobs --------------------------------------------------------------------------------
    def pull_crm_contacts(self) -> RunReport:
        """Walk the CRM's changed contacts from the cursor; each page commits with its cursor."""
        with self._run("pull:crm:contacts") as rep:
            if not self._leader(CRM_STREAM):
                rep.counts["not_leader"] = 1
                return rep
            counts: Counter = Counter()
            with self.store.begin() as conn:
                cur = cursors.load(conn, CRM_STREAM)
            after = Cursor(cur.value, cur.last_id)
            limit = getattr(self.ctx.crm_capabilities, "read_batch_size", 100) or 100
            walk_began = self.ctx.now()
            while True:
                fetched_at = self.ctx.now()
                page = self.crm.changed_contacts(after, limit)
                with self.store.begin() as conn:
                    counts += record_contacts(self.ctx, conn, "crm", page.contacts,
                                              fetched_at=fetched_at)
                    cursors.advance(conn, cursors.StreamCursor(CRM_STREAM, page.next.updated_at,
                                                               page.next.last_id), now=self.ctx.now())
                counts["pages"] += 1
                if not page.more or page.next == after:
                    with self.store.begin() as conn:   # every CRM contact up to walk_began is in
                        cursors.advance(conn, cursors.StreamCursor(CRM_CAUGHT_UP, walk_began),
                                        now=self.ctx.now())
                    break
                after = page.next
            rep.counts = dict(counts)
        return rep

    def pull_okitoki_contacts(self) -> RunReport:
        """Export Oki-Toki contacts changed since the cursor (minus an overlap window)."""
        with self._run("pull:okitoki:contacts") as rep:
            if not self._leader(OKITOKI_STREAM):
                rep.counts["not_leader"] = 1
                return rep
            counts: Counter = Counter()
            with self.store.begin() as conn:
                cur = cursors.load(conn, OKITOKI_STREAM)
            start = cursors.window_start(cur, OKITOKI_OVERLAP, initial=EPOCH)
            top, boundary = cur.value, set(cur.boundary_ids)
            batch: list[Any] = []
            fetched_at = self.ctx.now()   # pages come lazily; the first request bounds them all

            def flush(final: bool) -> None:
                nonlocal batch
                with self.store.begin() as conn:
                    counts.update(record_contacts(self.ctx, conn, "okitoki", batch,
                                                  fetched_at=fetched_at))
                    if final and top is not None:
                        cursors.advance(conn, cursors.StreamCursor(OKITOKI_STREAM, top, None,
                                                                   frozenset(boundary)), now=self.ctx.now())
                batch = []

            for contact in self.okitoki.export_contacts(start):
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
            rep.counts = dict(counts)
        return rep

    def pull_okitoki_calls(self) -> RunReport:
        """Read the settled call log; queue one CRM activity per new session and its status."""
        with self._run("pull:okitoki:calls") as rep:
            if not self._leader("okitoki:calls"):
                rep.counts["not_leader"] = 1
                return rep
            hinted = self._hint.is_set()
            self._hint.clear()
            with self._hinted_lock:
                sessions, self._hinted = sorted(self._hinted), set()
            rep.counts = dict(pull_calls(self.ctx, hinted=hinted, sessions=sessions))
        return rep

    def push(self, stop: threading.Event | None = None) -> RunReport:
        """Merge what the pulls recorded, then drain the outbox lane by lane until ``stop``."""
        with self._run("push") as rep:
            counts: Counter = Counter()
            if self._leader("merge"):
                counts.update({f"merge_{k}": v for k, v in reconcile(self.ctx).items()})
            planned_before = len(self.ctx.planned)
            pushed, errors = drain(self.ctx, stop)
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
            if self._leader("merge"):
                rep.counts.update({f"merge_{k}": v for k, v in reconcile(self.ctx).items()})
        return rep

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
