"""What a successful outbox row records, applied in bulk in the transaction that settles it.

Each effect type has ``apply_all(conn, items, now)``, so settling a batch of a hundred rows costs a
handful of statements, not a few per row (the initial sync of 100,000 contacts depends on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

import structlog
from sqlalchemy import Connection, and_, bindparam, delete, select, update

from ..store.outbox import enqueue, insert_ignore
from ..store.tables import CallRow, MergeCandidate, TaskRow
from .context import BASE, DIRTY, LINK, OUTBOX, PHONE, mark_dirty, update_many
from .mapping import PHONES
from .outbox import Lane

__all__ = ["Seen", "TaskSettled", "CallLogged", "Effect", "apply_effects"]

TASK, CALL, CANDIDATE = TaskRow.__table__, CallRow.__table__, MergeCandidate.__table__
log = structlog.get_logger()


@dataclass(frozen=True)
class Seen:
    """``side`` now holds ``values`` for the link (we wrote them); ``new_id``: it was created."""

    link_id: int
    side: str
    values: dict[str, Any]
    new_id: str | None = None

    written_at: Any = None   # local time of the write (marks earlier reads of the link stale)

    @staticmethod
    def apply_all(conn: Connection, items: Sequence["Seen"], now: datetime) -> None:
        for side in ("crm", "okitoki"):
            group = [s for s in items if s.side == side]
            if not group:
                continue
            col = LINK.c.crm_id if side == "crm" else LINK.c.okitoki_id
            created = [{"_k": s.link_id, "_v": s.new_id} for s in group if s.new_id is not None]
            if created:
                created = _make_room(conn, side, created)
                conn.execute(update(LINK).where(and_(LINK.c.id == bindparam("_k"), col.is_(None)))
                             .values({col.key: bindparam("_v")}), created)
            ids = sorted({s.link_id for s in group})
            seen = {r.link_id: dict(getattr(r, side) or {}) for r in conn.execute(
                select(BASE.c.link_id, BASE.c[side]).where(BASE.c.link_id.in_(ids)))}
            phones = []
            for s in group:
                if s.link_id in seen:
                    seen[s.link_id].update(s.values)
                    phones += [{"phone": p, "link_id": s.link_id, "side": side}
                               for p in set(s.values.get(PHONES) or [])]
            at = {s.link_id: s.written_at for s in group}
            update_many(conn, BASE, "link_id", [{"link_id": k, side: v, f"{side}_written_at": at[k]}
                                                for k, v in seen.items()])
            insert_ignore(conn, PHONE, phones, ["phone", "link_id", "side"])
            mark_dirty(conn, seen)


def _make_room(conn: Connection, side: str, created: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make room for the ids of records we just created on ``side``; returns the creates whose
    id can be recorded.

    A pull running beside the push may read a record we created before this commit and give it
    a link of its own (one side only, or a merge candidate): that link is retired (tombstoned,
    its phones, queue entries, pending rows and merge-candidate report dropped) so the record
    joins the link it was made for (invariant 2). A record already linked to a contact on the
    other side is left alone and our link stays without the id (logged, never a crash).
    """
    col = LINK.c.crm_id if side == "crm" else LINK.c.okitoki_id
    other = LINK.c.okitoki_id if side == "crm" else LINK.c.crm_id
    wanted = {c["_v"]: c["_k"] for c in created}
    racing, blocked = [], set()
    for h in conn.execute(select(LINK.c.id, col.label("sid"), other.label("oid"))
                          .where(col.in_(list(wanted)))):
        if h.id == wanted[h.sid]:
            continue
        if h.oid is None:
            racing.append((h.id, h.sid))
        else:
            blocked.add(h.sid)
            log.warning("created_record_linked_elsewhere", side=side, record_id=h.sid,
                        link_id=wanted[h.sid], other_link_id=h.id)
    if racing:
        ids = [i for i, _ in racing]
        conn.execute(update(LINK).where(LINK.c.id.in_(ids)).values({col.key: None, "tombstone": True}))
        conn.execute(delete(PHONE).where(PHONE.c.link_id.in_(ids)))
        conn.execute(delete(DIRTY).where(DIRTY.c.link_id.in_(ids)))
        conn.execute(update(OUTBOX).where(and_(OUTBOX.c.link_id.in_(ids), OUTBOX.c.status == "pending"))
                     .values(status="done", last_error="superseded: the record joined the link it was made for"))
        conn.execute(delete(CANDIDATE).where(and_(CANDIDATE.c.side == side,
                                                  CANDIDATE.c.record_id.in_([r for _, r in racing]))))
    return [c for c in created if c["_v"] not in blocked]


@dataclass(frozen=True)
class TaskSettled:
    """A dialer task was created (``active``, with its id) or removed."""

    link_id: int
    dialer_id: str
    generation: int
    state: str
    task_id: str | None = None

    @staticmethod
    def apply_all(conn: Connection, items: Sequence["TaskSettled"], now: datetime) -> None:
        key = and_(TASK.c.link_id == bindparam("_l"), TASK.c.dialer_id == bindparam("_d"),
                   TASK.c.generation == bindparam("_g"))
        created = [{"_l": t.link_id, "_d": t.dialer_id, "_g": t.generation, "_t": t.task_id}
                   for t in items if t.state == "active"]
        if created:
            _queue_orphans(conn, [t for t in items if t.state == "active"], now)
            # A task removed meanwhile ("removing") keeps its state but learns its id.
            conn.execute(update(TASK).where(key).values(task_id=bindparam("_t")), created)
            conn.execute(update(TASK).where(and_(key, TASK.c.state == "creating"))
                         .values(state="active"), created)
        removed = [{"_l": t.link_id, "_d": t.dialer_id, "_g": t.generation}
                   for t in items if t.state == "removed"]
        if removed:
            conn.execute(update(TASK).where(key).values(state="removed"), removed)


def _queue_orphans(conn: Connection, created: Sequence[TaskSettled], now: datetime) -> None:
    """Tasks created for a generation the link has since left (the contact stopped matching
    while the create was in flight): queue their removal by id."""
    links = sorted({t.link_id for t in created})
    rows = {(r.link_id, r.dialer_id): r for r in conn.execute(
        select(TASK.c.link_id, TASK.c.dialer_id, TASK.c.generation, TASK.c.state)
        .where(TASK.c.link_id.in_(links)))}
    ops = []
    for t in created:
        row = rows.get((t.link_id, t.dialer_id))
        if t.task_id and (row is None or row.generation != t.generation):
            ops.append({"lane": int(Lane.TASKS), "target": "okitoki", "operation": "remove_task",
                        "link_id": t.link_id, "idem_key": f"task:orphan:{t.dialer_id}:{t.task_id}",
                        "payload": {"dialer_id": t.dialer_id, "task_id": t.task_id,
                                    "generation": t.generation}})
    if ops:
        enqueue(conn, ops, now=now)


@dataclass(frozen=True)
class CallLogged:
    session_id: str
    activity_id: str | None

    @staticmethod
    def apply_all(conn: Connection, items: Sequence["CallLogged"], now: datetime) -> None:
        conn.execute(update(CALL).where(CALL.c.session_id == bindparam("_s"))
                     .values(state="logged", crm_activity_id=bindparam("_a")),
                     [{"_s": c.session_id, "_a": c.activity_id} for c in items])


Batched = Seen | TaskSettled | CallLogged
Effect = Batched | Callable[[Connection], None]   # what Done.effect holds


def apply_effects(conn: Connection, effects: Sequence[Effect], *, now: datetime) -> None:
    """Apply effects: batchable ones by type, plain callables one by one (in order)."""
    by_type: dict[type[Batched], list[Any]] = {}   # effect class → its effects (apply_all)
    for e in effects:
        if isinstance(e, Batched):
            by_type.setdefault(type(e), []).append(e)
        else:
            e(conn)
    for cls, items in by_type.items():
        cls.apply_all(conn, items, now)
