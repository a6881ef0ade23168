"""The drift report of ``syncd verify``: counts and a bounded sample of record ids per kind.

Kinds (what each means and how ``--repair`` heals it is in docs/operations.md):

==================  ==========================================================================
``crm_unlinked``    a CRM contact neither linked nor quarantined (change capture missed it)
``okitoki_unlinked`` the same for an Oki-Toki contact
``gone_crm``        a linked contact missing from the CRM (deleted there; we never saw it)
``gone_okitoki``    a linked contact missing from (or deleted in) Oki-Toki
``values_differ``   a mapped field a side holds now differs from the agreed value
``task_missing``    a contact matching a ``[[dialer]]`` rule without a creating/active task
``task_orphan``     a creating/active task whose contact no longer matches its rule
``call_missing``    a call in the log (last ``[verify] calls_days``) that was never recorded
==================  ==========================================================================

Samples hold record ids and field names, never values (values can be personal data).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, insert, select

from ..store import Store
from ..store.tables import VerifyReport

__all__ = ["KINDS", "SAMPLE", "DriftReport", "save_report", "last_report", "next_run"]

log = structlog.get_logger("syncd.verify")
KINDS = ("crm_unlinked", "okitoki_unlinked", "gone_crm", "gone_okitoki", "values_differ",
         "task_missing", "task_orphan", "call_missing")
SAMPLE = 20          # record ids kept per kind
KEEP_REPORTS = 100   # reports kept in the state database
REPORT = VerifyReport.__table__


@dataclass
class DriftReport:
    started_at: datetime
    repair: bool = False
    finished_at: datetime | None = None
    complete: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    read: Counter[str] = field(default_factory=Counter)      # records read per source
    repairs: Counter[str] = field(default_factory=Counter)   # what the repair queued, by kind
    notes: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, record: str) -> None:
        self.counts[kind] += 1
        sample = self.samples.setdefault(kind, [])
        if len(sample) < SAMPLE:
            sample.append(record[:200])

    def stop(self, why: str) -> None:
        """The walk ends early: the report covers only what was read so far."""
        self.complete = False
        if why not in self.notes:
            self.notes.append(why)

    @property
    def drift(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "finished_at": self.finished_at,
                "complete": self.complete, "repair": self.repair, "drift": self.drift,
                "counts": {k: int(self.counts.get(k, 0)) for k in KINDS},
                "samples": {k: v for k, v in self.samples.items() if v},
                "repairs": dict(self.repairs), "read": dict(self.read), "notes": list(self.notes),
                "requests": dict(self.requests)}

    def log_lines(self) -> None:
        """One structured line per kind (warning when there is drift of that kind)."""
        for kind in KINDS:
            n = int(self.counts.get(kind, 0))
            emit = log.warning if n else log.info
            emit("verify_drift", kind=kind, records=n, sample=self.samples.get(kind, [])[:5],
                 repaired=int(self.repairs.get(kind, 0)), complete=self.complete)


def save_report(store: Store, report: DriftReport) -> None:
    """Store ``report`` (and keep only the newest :data:`KEEP_REPORTS`)."""
    with store.begin() as conn:
        conn.execute(insert(REPORT).values(
            started_at=report.started_at, finished_at=report.finished_at, complete=report.complete,
            repaired=report.repair, counts={k: int(report.counts.get(k, 0)) for k in KINDS},
            samples={k: v for k, v in report.samples.items() if v},
            notes=[*report.notes, *(f"read {k}: {v}" for k, v in sorted(report.read.items()))],
            requests=dict(report.requests)))
        keep = select(REPORT.c.id).order_by(REPORT.c.id.desc()).limit(KEEP_REPORTS).subquery()
        conn.execute(delete(REPORT).where(REPORT.c.id.not_in(select(keep.c.id))))


def last_report(store: Store) -> dict[str, Any] | None:
    """The newest stored report (``syncd status``, ``/metrics``), or None."""
    with store.begin() as conn:
        row = conn.execute(select(REPORT).order_by(REPORT.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    counts = {k: int((row.counts or {}).get(k, 0)) for k in KINDS}
    return {"started_at": row.started_at, "finished_at": row.finished_at, "complete": row.complete,
            "repaired": row.repaired, "drift": sum(counts.values()), "counts": counts,
            "samples": row.samples or {}, "notes": row.notes or [], "requests": row.requests or {}}


def next_run(store: Store | None, every: timedelta, now: datetime) -> datetime:
    """When the daemon's next verify is due: one ``every`` after the last stored report (at
    least a minute from ``now``), or one ``every`` from ``now`` when there is none, so that
    restarts neither skip verify nor repeat it."""
    try:
        last = last_report(store) if store is not None else None
    except Exception:  # noqa: BLE001 - an unreadable report is no reason not to schedule
        last = None
    if last is None or last["started_at"] is None:
        return now + every
    started: datetime = last["started_at"]
    return max(now + timedelta(minutes=1), started + every)
