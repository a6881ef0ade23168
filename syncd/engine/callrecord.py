"""Recording what the call log showed: new calls queue one CRM activity, changed calls an update.

:func:`record_calls` takes calls read from the log (in any order, repeated, re-read many times
over) and, in the caller's transaction, records each ``session_id`` once in the ``call`` table
and queues its outbox rows. Re-reading costs requests, never a second activity: a call already
recorded is compared by its :func:`fingerprint` (what the CRM activity shows) and queues an
``update_call`` only when that changed, once per change (the ``revision`` in its key).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, select, update

from ..errors import InvalidRecord
from ..model import Call, CallDirection, CallOutcome
from ..phones import normalize
from ..store.outbox import enqueue, insert_ignore
from ..store.tables import CallRow, CursorRow, TaskRow
from .context import LINK, OUTBOX, PHONE, Context, jsonable
from .dncback import check_ops
from .ingest import quarantine
from .outbox import Lane, payload_key

__all__ = ["record_calls", "fingerprint", "call_payload", "call_from_payload", "CRM_CAUGHT_UP",
           "quarantine_unreadable"]

CALL, TASK, CURSOR = CallRow.__table__, TaskRow.__table__, CursorRow.__table__
log = structlog.get_logger()
# Local time at which the last *complete* walk of the CRM's changed contacts began: every
# contact the CRM held before it is linked. A call to a number no link knows is "unknown" only
# if it ended before that moment; until then the CRM may simply not have been read that far.
CRM_CAUGHT_UP = "crm:contacts:caught-up"
_LIVE = ("pending", "logged")   # states whose CRM activity exists or will: they follow changes


def call_payload(call: Call) -> dict[str, Any]:
    payload: dict[str, Any] = jsonable(asdict(call))
    return payload


def call_from_payload(data: dict[str, Any]) -> Call:
    """The :class:`Call` an outbox payload holds (enums and times restored)."""
    data = dict(data)
    if isinstance(data.get("started_at"), str):
        data["started_at"] = datetime.fromisoformat(data["started_at"])
    data["direction"] = CallDirection(data["direction"])
    data["outcome"] = CallOutcome(data["outcome"])
    return Call(**data)


def fingerprint(call: Call) -> str:
    """A digest of what a CRM activity shows of a call and Oki-Toki may still change after
    hangup: recording link, outcome, talk time, duration, agent."""
    return payload_key(call.recording_url or None, str(call.outcome), int(call.talk_s),
                       int(call.duration_s), call.agent or None)


def quarantine_unreadable(conn: Any, unreadable: list[tuple[str | None, str, dict[str, Any]]],
                          *, now: datetime) -> int:
    """Dead letters for call-log entries the client could not read (id, reason, raw entry)."""
    for record_id, reason, raw in unreadable:
        quarantine(conn, side="okitoki", record_id=f"call:{record_id}",
                   reason=f"call {record_id or '(no session_id)'}: {reason}", payload=raw,
                   now=now, stamp="" if record_id else payload_key(raw))
    return len(unreadable)


def _caught_up(conn: Any) -> datetime | None:
    value: datetime | None = conn.execute(select(CURSOR.c.value).where(CURSOR.c.stream == CRM_CAUGHT_UP)).scalar()
    return value


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


def record_calls(ctx: Context, conn: Any, calls: list[Call], caught_up: Any = ...,
                 ) -> tuple[Counter[str], datetime | None]:
    """Record calls read from the log, in the open transaction ``conn``.

    New calls queue a ``log_call`` (and the outcome's status); calls already recorded whose
    fingerprint changed queue an ``update_call`` (or refresh their ``log_call`` still waiting
    to be sent). Safe to call with any calls, any number of times. ``caught_up``: the
    ``crm:contacts:caught-up`` cursor (read from ``conn`` when omitted). Returns (counts, start
    of the earliest call held back because its number may belong to a CRM contact not read
    yet: it is not recorded, the caller must read it again).
    """
    counts: Counter[str] = Counter()
    if not calls:
        return counts, None
    if caught_up is ...:
        caught_up = _caught_up(conn)
    latest: dict[str, Call] = {}
    for call in calls:
        latest[call.session_id] = call       # a page repeated by offset paging: the last read
    known = {r.session_id: r for r in conn.execute(
        select(CALL.c.session_id, CALL.c.state, CALL.c.fingerprint, CALL.c.revision, CALL.c.link_id,
               CALL.c.phone, CALL.c.outcome).where(CALL.c.session_id.in_(list(latest))))}
    changed = [(c, known[s]) for s, c in latest.items() if s in known]
    if changed:
        counts += _record_changes(ctx, conn, changed)
    got, held = _record_new(ctx, conn, [c for s, c in latest.items() if s not in known], caught_up)
    return counts + got, held


def _record_new(ctx: Context, conn: Any, calls: list[Call],
                caught_up: datetime | None) -> tuple[Counter[str], datetime | None]:
    cfg, now = ctx.config.calls, ctx.now()
    counts: Counter[str] = Counter()
    held_from: datetime | None = None
    fresh: dict[str, tuple[Call, str | None]] = {}
    phone: str | None
    for call in calls:
        try:
            phone = normalize(call.phone, ctx.config.contacts.default_region)
        except InvalidRecord as exc:
            if cfg.to_crm:
                counts["quarantined"] += 1
                quarantine(conn, side="okitoki", record_id=f"call:{call.session_id}",
                           reason=f"call {call.session_id}: {exc.reason}",
                           payload=call_payload(call), now=now)
            insert_ignore(conn, CALL, [{"session_id": call.session_id, "phone": None,
                                        "started_at": call.started_at, "outcome": str(call.outcome),
                                        "state": "dead", "created_at": now,
                                        "fingerprint": fingerprint(call), "revision": 0}], ["session_id"])
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
                     "outcome": str(call.outcome), "state": state, "created_at": now,
                     "fingerprint": fingerprint(call), "revision": 0})
        if state != "pending":
            continue
        ops.append({"lane": int(Lane.CALLS), "target": "crm", "operation": "log_call", "link_id": lid,
                    "payload": {"call": call_payload(call), "phone": phone}, "idem_key": f"call:{sid}"})
        ops += _status_op(ctx, call, lid, phone, f"status:{sid}")
        ops += check_ops(ctx, call, lid, phone)   # an agent may have blacklisted the number
        counts["queued_calls"] += 1
    insert_ignore(conn, CALL, rows, ["session_id"])
    enqueue(conn, ops, now=now)
    return counts, held_from


def _status_op(ctx: Context, call: Call, lid: int | None, phone: str | None, key: str) -> list[dict[str, Any]]:
    status = ctx.config.calls.outcome_status.get(str(call.outcome))
    if not status:
        return []
    return [{"lane": int(Lane.STATUSES), "target": "crm", "operation": "status", "link_id": lid,
             "payload": {"status": status, "session_id": call.session_id, "phone": phone},
             "idem_key": key}]


def _record_changes(ctx: Context, conn: Any, changed: list[tuple[Call, Any]]) -> Counter[str]:
    """Calls already recorded: a new fingerprint refreshes a ``log_call`` not sent yet, or
    queues one ``update_call`` (the CRM activity exists or is being written)."""
    counts: Counter[str] = Counter()
    now = ctx.now()
    ops: list[dict[str, Any]] = []
    sent = _sent_before_fingerprints(conn, [row for _, row in changed])
    for call, row in changed:
        fp = fingerprint(call)
        before = row.fingerprint or sent.get(row.session_id)
        if before == fp:
            counts["unchanged"] += 1
        if before is None or before == fp or row.state not in _LIVE:
            if row.fingerprint != fp:   # adopt: nothing known was sent, or nothing will be
                conn.execute(update(CALL).where(CALL.c.session_id == row.session_id).values(fingerprint=fp))
            continue
        revision = (row.revision or 0) + 1
        done = conn.execute(update(CALL).where(and_(CALL.c.session_id == row.session_id,
                                                    CALL.c.revision == (row.revision or 0)))
                            .values(fingerprint=fp, revision=revision, outcome=str(call.outcome))).rowcount
        if not done:
            continue                           # another instance recorded this change
        counts["changed_calls"] += 1
        payload = {"call": call_payload(call), "phone": row.phone}
        refreshed = conn.execute(update(OUTBOX).where(and_(
            OUTBOX.c.idem_key == f"call:{row.session_id}", OUTBOX.c.status == "pending"))
            .values(payload=payload, updated_at=now)).rowcount
        if refreshed:
            counts["refreshed_before_send"] += 1
        elif ctx.crm_capabilities.calls_update:   # asked only when needed
            ops.append({"lane": int(Lane.CALLS), "target": "crm", "operation": "update_call",
                        "link_id": row.link_id, "payload": {**payload, "fingerprint": fp},
                        "idem_key": f"call-update:{row.session_id}:{revision}:{fp}"})
            counts["queued_updates"] += 1
        else:
            counts["updates_unsupported"] += 1
            log.info("call_update_unsupported", session_id=row.session_id,
                     hint="the CRM connector cannot update a logged call; the activity keeps "
                          "what was first sent")
        if str(call.outcome) != row.outcome:     # a corrected outcome: status forward only
            ops += _status_op(ctx, call, row.link_id, row.phone, f"status:{row.session_id}:{revision}")
    enqueue(conn, ops, now=now)
    return counts


def _sent_before_fingerprints(conn: Any, rows: list[Any]) -> dict[str, str]:
    """Calls recorded before the state database kept fingerprints: the fingerprint of what
    their ``log_call`` sent, while the outbox still holds it (settled rows are kept 7 days)."""
    old = [r.session_id for r in rows if r.fingerprint is None and r.state in _LIVE]
    if not old:
        return {}
    out: dict[str, str] = {}
    for key, payload in conn.execute(select(OUTBOX.c.idem_key, OUTBOX.c.payload).where(
            OUTBOX.c.idem_key.in_([f"call:{sid}" for sid in old]))):
        try:
            out[key.removeprefix("call:")] = fingerprint(call_from_payload((payload or {})["call"]))
        except (KeyError, TypeError, ValueError):
            continue                    # an unreadable old payload: adopt what is there now
    return out


def _crm_read_past(call: Call, caught_up: datetime | None) -> bool:
    """Has a complete walk of the CRM begun after this call ended?"""
    ended = call.started_at + timedelta(seconds=max(0, call.duration_s))
    return caught_up is not None and caught_up >= ended
