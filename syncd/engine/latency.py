"""Latency of the flows a call center feels, measured when an effect settles (the push).

============================  =========================  ====================================
flow                          effect (outbox row done)   measured from
============================  =========================  ====================================
``lead_to_task``              ``okitoki add_task``       the CRM record's ``updated_at``
``call_to_crm``               ``crm log_call``           the call's end (start + duration)
``crm_to_okitoki``            ``okitoki contact_*``      the CRM record's ``updated_at``
``okitoki_to_crm``            ``crm contact_*``          the Oki-Toki record's ``updated_at``
============================  =========================  ====================================

The source's own change time is used (so the poll interval, queueing and the push all count);
a change older than ``BACKLOG`` when its row was queued is a backfill (first sync, resync, a
link made later), not latency, and is left out. Samples feed the in-process histogram
``syncd_latency_seconds`` (``ctx.latency_listener``) and a small rolling table for
``syncd status`` (another process): ``KEEP`` samples a flow, a day at most.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

import structlog
from sqlalchemy import Connection, and_, delete, insert, select

from ..store.tables import LatencySample
from .context import BASE, Context

__all__ = ["FLOWS", "BUCKETS", "settled", "publish", "prune", "summary", "BACKLOG", "KEEP"]

log = structlog.get_logger()
LATENCY = LatencySample.__table__
FLOWS = {("okitoki", "add_task"): "lead_to_task", ("crm", "log_call"): "call_to_crm",
         ("okitoki", "contact_create"): "crm_to_okitoki", ("okitoki", "contact_update"): "crm_to_okitoki",
         ("crm", "contact_create"): "okitoki_to_crm", ("crm", "contact_update"): "okitoki_to_crm"}
_SOURCE = {"lead_to_task": "crm", "crm_to_okitoki": "crm", "okitoki_to_crm": "okitoki"}
BUCKETS = (0.5, 1, 2, 3, 5, 10, 20, 30, 45, 60, 120, 300, 900, 3600)
BACKLOG = timedelta(hours=1)
KEEP = 1000
KEEP_FOR = timedelta(days=1)


def _call_end(payload: Any) -> datetime | None:
    call = (payload or {}).get("call") or {}
    try:
        started = datetime.fromisoformat(str(call["started_at"]))
        return started + timedelta(seconds=int(call.get("duration_s") or 0))
    except (KeyError, TypeError, ValueError):
        return None


def settled(ctx: Context, conn: Connection, rows: Sequence[Any], now: datetime) -> list[tuple[str, float]]:
    """Samples of the outbox ``rows`` that just settled as done, stored in ``conn``'s
    transaction (in a savepoint: a sample never costs the batch). [(flow, seconds)]."""
    mine = [r for r in rows if (r.target, r.operation) in FLOWS]
    if not mine or ctx.dry_run:
        return []
    try:
        with conn.begin_nested():
            links = sorted({r.link_id for r in mine if r.link_id is not None})
            bases = {b.link_id: b for b in conn.execute(select(
                BASE.c.link_id, BASE.c.crm_updated_at, BASE.c.okitoki_updated_at)
                .where(BASE.c.link_id.in_(links)))} if links else {}
            samples: list[tuple[str, float]] = []
            for r in mine:
                flow = FLOWS[(r.target, r.operation)]
                side = _SOURCE.get(flow)
                base = bases.get(r.link_id)
                source = _call_end(r.payload) if side is None else \
                    getattr(base, f"{side}_updated_at", None) if base is not None else None
                if source is None or (r.created_at is not None and source < r.created_at - BACKLOG):
                    continue
                samples.append((flow, max(0.0, (now - source).total_seconds())))
            if samples:
                conn.execute(insert(LATENCY), [{"flow": f, "at": now, "seconds": round(s, 3)}
                                               for f, s in samples])
            return samples
    except Exception as exc:  # noqa: BLE001 - measuring must never fail the push
        log.warning("latency_not_recorded", error=str(exc)[:200])
        return []


def publish(ctx: Context, samples: list[tuple[str, float]]) -> None:
    """Hand committed samples to the in-process listener (the daemon's histogram)."""
    listener = ctx.latency_listener
    if listener is None or not samples:
        return
    try:
        for flow, seconds in samples:
            listener(flow, seconds)
    except Exception as exc:  # noqa: BLE001
        log.warning("latency_not_published", error=str(exc)[:200])


def prune(conn: Connection, now: datetime) -> int:
    """Keep a day of samples and at most ``KEEP`` a flow; returns the rows removed."""
    removed = conn.execute(delete(LATENCY).where(LATENCY.c.at < now - KEEP_FOR)).rowcount or 0
    for (flow,) in conn.execute(select(LATENCY.c.flow).distinct()).all():
        cut = conn.execute(select(LATENCY.c.id).where(LATENCY.c.flow == flow)
                           .order_by(LATENCY.c.id.desc()).offset(KEEP).limit(1)).scalar()
        if cut is not None:
            removed += conn.execute(delete(LATENCY).where(and_(LATENCY.c.flow == flow,
                                                               LATENCY.c.id <= cut))).rowcount or 0
    return removed


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of a sorted, non-empty list."""
    k = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
    return ordered[k]


def summary(conn: Connection, now: datetime) -> dict[str, dict[str, Any]]:
    """Per flow over the last ``KEEP`` samples of the last day: count, p50_s, p95_s, max_s."""
    out: dict[str, dict[str, Any]] = {}
    for flow in sorted(set(FLOWS.values())):
        values = sorted(r[0] for r in conn.execute(
            select(LATENCY.c.seconds).where(and_(LATENCY.c.flow == flow, LATENCY.c.at >= now - KEEP_FOR))
            .order_by(LATENCY.c.id.desc()).limit(KEEP)))
        if values:
            out[flow] = {"count": len(values), "p50_s": round(_quantile(values, 0.5), 2),
                         "p95_s": round(_quantile(values, 0.95), 2), "max_s": round(values[-1], 2)}
    return out
