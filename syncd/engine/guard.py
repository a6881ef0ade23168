"""The flood guard: a cycle that would remove too many dialer tasks, or change or delete too
many linked contacts at once, is held instead of sent.

A CRM script that sets 20,000 contacts to "lost" is more often a mistake than a decision, and
500 task removals cannot be taken back. Before each push the guard counts the operations that
were queued since and never tried; past ``[guard]`` limits it holds them all (outbox status
``held``, ``claimed_by = "hold:<id>"``, one ``hold`` row), logs ``flood_held`` and lets the
rest of the sync flow. An operator then releases (sent as usual) or drops them
(``syncd holds``). Removals because of do-not-call are never held: not calling wins.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import structlog
from sqlalchemy import and_, func, insert, select, update

from ..store import Store
from ..store.tables import Hold, TaskRow
from .context import BASE, LINK, OUTBOX, Context, chunks
from .outbox import Lane

__all__ = ["check", "list_holds", "release_hold", "drop_hold", "HoldNotFound", "HELD"]

log = structlog.get_logger()
HOLD, TASK = Hold.__table__, TaskRow.__table__
HELD, RELEASED = "held", "released"
CHANGES = ("contact_update", "contact_delete")


class HoldNotFound(LookupError):
    pass


def _fresh() -> Any:
    """Queued and never tried, never held before (a released row is not held again)."""
    c = OUTBOX.c
    return and_(c.status == "pending", c.attempts == 0, c.claimed_by.is_(None))


def check(ctx: Context) -> Counter[str]:
    """Hold this cycle's floods; returns counts (``held_<kind>``)."""
    cfg, now = ctx.config.guard, ctx.now()
    counts: Counter[str] = Counter()
    poll = max(ctx.config.crm.poll_interval, ctx.config.okitoki.poll_interval)
    with ctx.store.begin() as conn:
        if cfg.max_task_removals:
            # A removal that follows our own write to the CRM (a call outcome moved the status)
            # is the sync working, however many calls ended at once: only the rest can flood.
            ours = and_(BASE.c.crm_written_at.is_not(None), BASE.c.crm_written_at >= now - 5 * poll)
            rows = conn.execute(select(OUTBOX.c.id, OUTBOX.c.link_id)
                                .outerjoin(BASE, BASE.c.link_id == OUTBOX.c.link_id).where(and_(
                                    _fresh(), OUTBOX.c.operation == "remove_task",
                                    OUTBOX.c.lane == int(Lane.TASKS), ~ours))).all()
            if len(rows) > cfg.max_task_removals:
                _hold(conn, "task_removals", rows, now,
                      f"{len(rows)} dialer task removals in one cycle (limit [guard] "
                      f"max_task_removals = {cfg.max_task_removals})")
                counts["held_task_removals"] = len(rows)
        linked = conn.execute(select(func.count()).select_from(LINK).where(and_(
            LINK.c.crm_id.is_not(None), LINK.c.okitoki_id.is_not(None), LINK.c.tombstone.is_(False)))).scalar() or 0
        # Contacts linked in the last two polls are in their initial sync, not in a flood.
        settled = now - 2 * poll
        rows = conn.execute(select(OUTBOX.c.id, OUTBOX.c.link_id).join(LINK, LINK.c.id == OUTBOX.c.link_id)
                            .where(and_(_fresh(), OUTBOX.c.operation.in_(CHANGES),
                                        LINK.c.created_at < settled))).all()
        contacts = len({r.link_id for r in rows})
        limit = max(cfg.changed_floor, int(cfg.max_changed_share * linked))
        if contacts > limit:
            _hold(conn, "contact_changes", rows, now,
                  f"{contacts} of {linked} linked contacts changed or deleted in one cycle (limit: "
                  f"[guard] max_changed_share = {cfg.max_changed_share:g}, at least "
                  f"changed_floor = {cfg.changed_floor})")
            counts["held_contact_changes"] = len(rows)
    return counts


def _hold(conn: Any, kind: str, rows: Sequence[Any], now: Any, reason: str) -> None:
    contacts = len({r.link_id for r in rows})
    hold_id = conn.execute(insert(HOLD).values(kind=kind, count=len(rows), contacts=contacts, reason=reason,
                                               state=HELD, created_at=now).returning(HOLD.c.id)).scalar_one()
    ids = [r.id for r in rows]
    for part in chunks(ids, 1000):
        conn.execute(update(OUTBOX).where(and_(OUTBOX.c.id.in_(part), OUTBOX.c.status == "pending"))
                     .values(status=HELD, claimed_by=f"hold:{hold_id}", updated_at=now))
    log.warning("flood_held", hold=hold_id, kind=kind, operations=len(rows), contacts=contacts,
                reason=reason, hint=f"syncd holds list; syncd holds release {hold_id} | drop {hold_id}")


def list_holds(store: Store, *, open_only: bool = False) -> list[dict[str, Any]]:
    with store.begin() as conn:
        q = select(HOLD).order_by(HOLD.c.id.desc())
        if open_only:
            q = q.where(HOLD.c.state == HELD)
        rows = conn.execute(q.limit(500)).all()
    return [{"id": r.id, "kind": r.kind, "state": r.state, "operations": r.count, "contacts": r.contacts,
             "reason": r.reason, "created_at": r.created_at.isoformat() if r.created_at else None,
             "decided_at": r.decided_at.isoformat() if r.decided_at else None} for r in rows]


def _decide(store: Store, hold_id: int, now: Any, state: str) -> tuple[Any, Sequence[Any]]:
    with store.begin() as conn:
        hold = conn.execute(select(HOLD).where(HOLD.c.id == hold_id)).first()
        if hold is None:
            raise HoldNotFound(f"no hold with id {hold_id}")
        if hold.state != HELD:
            raise ValueError(f"hold {hold_id} was already {hold.state}")
        conn.execute(update(HOLD).where(HOLD.c.id == hold_id).values(state=state, decided_at=now))
        rows = conn.execute(select(OUTBOX).where(and_(OUTBOX.c.status == HELD,
                                                      OUTBOX.c.claimed_by == f"hold:{hold_id}"))).all()
    return hold, rows


def release_hold(store: Store, hold_id: int, *, now: Any) -> int:
    """Send the held operations as usual (at once); returns how many."""
    _, rows = _decide(store, hold_id, now, RELEASED)
    with store.begin() as conn:
        conn.execute(update(OUTBOX).where(and_(OUTBOX.c.status == HELD, OUTBOX.c.claimed_by == f"hold:{hold_id}"))
                     .values(status="pending", claimed_by=RELEASED, next_attempt_at=now, updated_at=now))
    log.info("hold_released", hold=hold_id, operations=len(rows))
    return len(rows)


def drop_hold(store: Store, hold_id: int, *, now: Any) -> int:
    """Never send the held operations. A held task removal leaves its task in the dialer: the
    task is ``kept`` (not removed again for the same reason; taken back over when its contact
    matches the rule again; do-not-call still removes it). A held contact write is not made,
    so the sides may disagree until the contact changes again (``syncd verify`` shows it)."""
    _, rows = _decide(store, hold_id, now, "dropped")
    with store.begin() as conn:
        # the key gets a suffix, so a later decision to remove the same task is not taken for
        # a repeat of this one
        conn.execute(update(OUTBOX).where(and_(OUTBOX.c.status == HELD, OUTBOX.c.claimed_by == f"hold:{hold_id}"))
                     .values(status="done", last_error=f"dropped by the operator (hold {hold_id})",
                             idem_key=func.substr(OUTBOX.c.idem_key, 1, 170) + f":dropped:{hold_id}",
                             updated_at=now))
        for r in rows:
            if r.operation == "remove_task":
                p = r.payload or {}
                conn.execute(update(TASK).where(and_(TASK.c.link_id == r.link_id,
                                                     TASK.c.dialer_id == str(p.get("dialer_id")),
                                                     TASK.c.generation == p.get("generation"),
                                                     TASK.c.state == "removing"))
                             .values(state="kept", updated_at=now))
    log.info("hold_dropped", hold=hold_id, operations=len(rows))
    return len(rows)

