"""Calls: Oki-Toki's call log → one CRM activity per ``session_id``, and outcome → status.

The log is read in windows ``[cursor - overlap, now - settle_delay]``: a call is only taken
once it has settled, and overlapping windows catch calls that appear late. A call is recorded
(``call`` table, unique ``session_id``) in the same transaction that queues its outbox rows and
advances the cursor, so a call is never queued twice and never skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, select

from ..errors import InvalidRecord
from ..model import Call, CallDirection, CallOutcome
from ..phones import normalize
from ..store.outbox import enqueue, insert_ignore
from ..store.tables import CallRow, TaskRow
from . import cursors
from .context import LINK, PHONE, Context, chunks, jsonable
from .ingest import quarantine
from .outbox import Lane

__all__ = ["pull_calls", "STREAM", "CRM_CAUGHT_UP", "call_payload", "call_from_payload"]

CALL, TASK = CallRow.__table__, TaskRow.__table__
log = structlog.get_logger()
STREAM = "okitoki:calls"
# Local time at which the last *complete* walk of the CRM's changed contacts began: every
# contact the CRM held before it is linked. A call to a number no link knows is "unknown" only
# if it ended before that moment; until then the CRM may simply not have been read that far.
CRM_CAUGHT_UP = "crm:contacts:caught-up"
INITIAL_LOOKBACK = timedelta(days=1)


def call_payload(call: Call) -> dict[str, Any]:
    return jsonable(asdict(call))


def call_from_payload(data: dict[str, Any]) -> Call:
    """The :class:`Call` an outbox payload holds (enums and times restored)."""
    data = dict(data)
    if isinstance(data.get("started_at"), str):
        data["started_at"] = datetime.fromisoformat(data["started_at"])
    data["direction"] = CallDirection(data["direction"])
    data["outcome"] = CallOutcome(data["outcome"])
    return Call(**data)


def pull_calls(ctx: Context, *, hinted: bool = False) -> Counter:
    """Read the settled part of the call log since the cursor; queue new calls and statuses.

    ``hinted`` (a webhook said a call ended): read up to now, but advance the cursor only to
    the settled point, so a call that changes after hangup is still read again.
    """
    cfg = ctx.config.calls
    counts: Counter = Counter()
    now = ctx.now()
    with ctx.store.begin() as conn:
        cur = cursors.load(conn, STREAM)
    start = cursors.window_start(cur, cfg.overlap, initial=now - INITIAL_LOOKBACK)
    settled = now - cfg.settle_delay
    end = now if hinted else settled
    if end <= start:
        return counts
    calls = list(ctx.okitoki.call_log(start, end))
    counts["read"] = len(calls)
    # The log is ordered by start time but a call shows only once it ended: a call longer
    # than the overlap may start before the window and appear after it has moved on.
    longest = max((c.duration_s for c in calls), default=0)
    if longest and timedelta(seconds=longest) + cfg.settle_delay > cfg.overlap * 0.8:
        counts["long_calls"] += 1
        log.warning("calls_overlap_too_short", longest_call_s=longest,
                    overlap_s=int(cfg.overlap.total_seconds()),
                    hint="raise [calls] overlap above your longest calls, or calls may be missed")
    with ctx.store.begin() as conn:
        caught_up = cursors.load(conn, CRM_CAUGHT_UP).value
    held_from: datetime | None = None
    batches = list(chunks(calls, ctx.batch_size)) or [[]]
    for i, batch in enumerate(batches):
        with ctx.store.begin() as conn:
            got, held = _record_calls(ctx, conn, batch, caught_up)
            counts += got
            if held is not None and (held_from is None or held < held_from):
                held_from = held
            if i == len(batches) - 1:
                # A held call pins the cursor at its start, so the next window reads it again.
                upto = settled if held_from is None else min(settled, held_from)
                if upto > start and (cur.value is None or upto > cur.value):
                    cursors.advance(conn, cursors.StreamCursor(STREAM, upto), now=ctx.now())
    return counts


def _owners_by_ids(conn: Any, calls: list[Call]) -> tuple[dict[str, int], dict[str, int]]:
    """Links of the calls' dialer tasks and Oki-Toki contacts (those with a CRM record)."""
    task_ids = sorted({c.task_id for c in calls if c.task_id})
    contact_ids = sorted({str(c.details.get("contact_id")) for c in calls if c.details.get("contact_id")})
    by_task: dict[str, int] = {}
    by_contact: dict[str, int] = {}
    if task_ids:
        for tid, lid in conn.execute(select(TASK.c.task_id, TASK.c.link_id).join(LINK, LINK.c.id == TASK.c.link_id)
                                     .where(and_(TASK.c.task_id.in_(task_ids), LINK.c.crm_id.is_not(None)))):
            by_task[tid] = lid
    if contact_ids:
        for oid, lid in conn.execute(select(LINK.c.okitoki_id, LINK.c.id).where(and_(
                LINK.c.okitoki_id.in_(contact_ids), LINK.c.crm_id.is_not(None)))):
            by_contact[oid] = lid
    return by_task, by_contact


def _record_calls(ctx: Context, conn: Any, calls: list[Call],
                  caught_up: datetime | None) -> tuple[Counter, datetime | None]:
    """Record new calls; returns (counts, start of the earliest call held back because its
    number may belong to a CRM contact not read yet)."""
    cfg, now = ctx.config.calls, ctx.now()
    counts: Counter = Counter()
    held_from: datetime | None = None
    if not calls:
        return counts, held_from
    known = {r[0] for r in conn.execute(select(CALL.c.session_id).where(
        CALL.c.session_id.in_([c.session_id for c in calls])))}
    fresh: dict[str, tuple[Call, str | None]] = {}
    for call in calls:
        if call.session_id in known or call.session_id in fresh:
            continue
        try:
            phone = normalize(call.phone, ctx.config.contacts.default_region)
        except InvalidRecord as exc:
            phone = None
            if cfg.to_crm:
                counts["quarantined"] += 1
                quarantine(conn, side="okitoki", record_id=f"call:{call.session_id}",
                           reason=f"call {call.session_id}: {exc.reason}",
                           payload=call_payload(call), now=now)
            insert_ignore(conn, CALL, [{"session_id": call.session_id, "phone": None,
                                        "started_at": call.started_at, "outcome": str(call.outcome),
                                        "state": "dead", "created_at": now}], ["session_id"])
            continue
        fresh[call.session_id] = (call, phone)
    if not fresh:
        return counts, held_from
    phones = sorted({p for _, p in fresh.values() if p})
    owner: dict[str, int] = {}
    for phone, lid in conn.execute(
            select(PHONE.c.phone, LINK.c.id).join(LINK, LINK.c.id == PHONE.c.link_id)
            .where(and_(PHONE.c.phone.in_(phones), LINK.c.crm_id.is_not(None),
                        LINK.c.tombstone.is_(False))).order_by(LINK.c.id)):
        owner.setdefault(phone, lid)   # several contacts share a number: the oldest link
    by_task, by_contact = _owners_by_ids(conn, [c for c, _ in fresh.values()])
    rows, ops = [], []
    for sid, (call, phone) in fresh.items():
        # The dialer task or Oki-Toki contact of the call names the contact exactly; the
        # number is the fallback (several contacts may share it).
        lid = by_task.get(call.task_id or "") or by_contact.get(str(call.details.get("contact_id") or "")) \
            or (owner.get(phone) if phone else None)
        state = "pending"
        if not cfg.to_crm:
            state = "skipped"
        elif lid is None and not _crm_read_past(call, caught_up):
            counts["waiting_for_crm"] += 1     # not recorded: the next window reads it again
            if held_from is None or call.started_at < held_from:
                held_from = call.started_at
            continue
        elif lid is None and cfg.unknown_numbers == "skip":
            state = "skipped"
            counts["unknown_number"] += 1
        rows.append({"session_id": sid, "link_id": lid, "phone": phone, "started_at": call.started_at,
                     "outcome": str(call.outcome), "state": state, "created_at": now})
        if state != "pending":
            continue
        ops.append({"lane": int(Lane.CALLS), "target": "crm", "operation": "log_call", "link_id": lid,
                    "payload": {"call": call_payload(call), "phone": phone}, "idem_key": f"call:{sid}"})
        status = cfg.outcome_status.get(str(call.outcome))
        if status:
            ops.append({"lane": int(Lane.STATUSES), "target": "crm", "operation": "status",
                        "link_id": lid, "payload": {"status": status, "session_id": sid, "phone": phone},
                        "idem_key": f"status:{sid}"})
        counts["queued_calls"] += 1
    insert_ignore(conn, CALL, rows, ["session_id"])
    enqueue(conn, ops, now=now)
    return counts, held_from


def _crm_read_past(call: Call, caught_up: datetime | None) -> bool:
    """Has a complete walk of the CRM begun after this call ended?"""
    ended = call.started_at + timedelta(seconds=max(0, call.duration_s))
    return caught_up is not None and caught_up >= ended
