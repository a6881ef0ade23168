"""The merge step: for every link with a new observation, decide what each side must get.

Runs over the ``dirty`` queue in batches, one transaction per batch: three-way merge of the
contact fields (writes become ``contacts`` outbox rows), the do-not-call list, and the dialer
tasks the ``[[dialer]]`` rules want. A pending write to a side counts as that side's value, so
a stale read of a record we are about to update is not mistaken for a change.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, Sequence

import structlog
from sqlalchemy import and_, bindparam, delete, insert, select, tuple_, update

from ..store.outbox import enqueue
from ..store.tables import Conflict, TaskRow
from .context import BASE, DIRTY, LINK, OUTBOX, Context, update_many
from .deletes import retire_links
from .mapping import DELETED, DNC, PHONES, Side
from .merge import merge_fields
from .outbox import Lane
from .rules import task_payload, wanted_dialers

__all__ = ["reconcile", "LISTED", "NO_PHONE", "add_key"]

TASK, CONFLICT = TaskRow.__table__, Conflict.__table__
LISTED = "_dnc_listed"    # agreed-values key: numbers this link put on the do-not-call list
NO_PHONE = "_no_phone"    # agreed-values key: reported as a CRM contact without a phone
log = structlog.get_logger()


class _Batch:
    def __init__(self, ctx: Context) -> None:
        self.ctx, self.now = ctx, ctx.now()
        self.ops: list[dict[str, Any]] = []
        self.op_merges: list[dict[str, Any]] = []
        self.base_updates: list[dict[str, Any]] = []
        self.task_upserts: list[dict[str, Any]] = []
        self.task_updates: list[dict[str, Any]] = []
        self.cancel_ops: list[tuple[int, str]] = []
        self.retired: list[tuple[int, dict[str, str | None]]] = []
        self.conflicts: list[dict[str, Any]] = []
        self.resolved: list[tuple[int, str]] = []
        self.counts: Counter[str] = Counter()
        self.adds: dict[str, Any] = {}

    def op(self, lane: Lane, target: str, operation: str, link_id: int, payload: dict[str, Any], key: str) -> None:
        self.ops.append({"lane": int(lane), "target": target, "operation": operation,
                         "link_id": link_id, "payload": payload, "idem_key": key})
        self.counts[f"queued_{operation}"] += 1


def reconcile(ctx: Context, *, max_batches: int | None = None) -> Counter[str]:
    """Merge every dirty link (or ``max_batches`` batches of them); returns counts."""
    counts: Counter[str] = Counter()
    done = 0
    while max_batches is None or done < max_batches:
        with ctx.store.begin() as conn:
            dirty = conn.execute(select(DIRTY.c.link_id, DIRTY.c.seq)
                                 .order_by(DIRTY.c.link_id).limit(ctx.batch_size)).all()
            if not dirty:
                break
            counts += _reconcile_batch(ctx, conn, dirty)
        done += 1
    return counts


def _reconcile_batch(ctx: Context, conn: Any, dirty: Sequence[Any]) -> Counter[str]:
    ids = [d.link_id for d in dirty]
    b = _Batch(ctx)
    links = {r.id: r for r in conn.execute(select(LINK).where(LINK.c.id.in_(ids)))}
    q = select(BASE).where(BASE.c.link_id.in_(ids))
    if ctx.store.is_postgres:
        q = q.with_for_update()
    bases = {r.link_id: r for r in conn.execute(q)}
    pending: dict[tuple[int, str], list[Any]] = {}
    for r in conn.execute(select(OUTBOX.c.id, OUTBOX.c.link_id, OUTBOX.c.target, OUTBOX.c.operation,
                                 OUTBOX.c.payload, OUTBOX.c.status)
                          .where(and_(OUTBOX.c.link_id.in_(ids), OUTBOX.c.status.in_(["pending", "claimed", "held"]),
                                      OUTBOX.c.operation.in_(["contact_create", "contact_update", "status"])))
                          .order_by(OUTBOX.c.id)):
        pending.setdefault((r.link_id, r.target), []).append(r)
    tasks: dict[int, dict[str, Any]] = {}
    for r in conn.execute(select(TASK).where(TASK.c.link_id.in_(ids))):
        tasks.setdefault(r.link_id, {})[r.dialer_id] = r
    add_keys = [add_key(r.link_id, r.dialer_id, r.generation)
                for per in tasks.values() for r in per.values() if r.state == "creating"]
    b.adds = {r.idem_key: r for r in conn.execute(
        select(OUTBOX.c.id, OUTBOX.c.idem_key, OUTBOX.c.status, OUTBOX.c.attempts)
        .where(OUTBOX.c.idem_key.in_(add_keys)))} if add_keys else {}
    held = {(r.link_id, r.field) for r in conn.execute(
        select(CONFLICT.c.link_id, CONFLICT.c.field).where(and_(
            CONFLICT.c.link_id.in_(ids), CONFLICT.c.resolved.is_(False))))}
    for lid in ids:
        link, base = links.get(lid), bases.get(lid)
        if link is None or base is None:
            continue
        _reconcile_link(b, link, base, pending, tasks.get(lid, {}), held)
    _write(conn, b, dirty)
    return b.counts


def _pending_values(rows: list[Any], *, updates_only: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for r in rows:
        if updates_only and r.operation == "contact_create":
            continue
        values.update((r.payload or {}).get("values") or {})
    return values


def _reconcile_link(b: _Batch, link: Any, base: Any, pending: dict[tuple[int, str], list[Any]], tasks: dict[str, Any], held: set[tuple[int, str]]) -> None:
    ctx, lid = b.ctx, link.id
    no_phone = False
    crm = dict(base.crm) if link.crm_id and base.crm is not None else None
    oki = dict(base.okitoki) if link.okitoki_id and base.okitoki is not None else None
    agreed_old = dict(base.agreed or {})
    gone = [side for side, values in (("crm", crm), ("okitoki", oki)) if (values or {}).get(DELETED)]
    deleted = bool(gone)
    if deleted:
        agreed = dict(agreed_old)     # nothing merges with a deleted record
        if not link.tombstone:
            _retire(b, link, gone)
    elif crm is not None and oki is not None:
        # A create still claimed for a side that already has the record (its id arrived
        # through a pull) is no pending value of that side: only updates are.
        crm.update(_pending_values(pending.get((lid, "crm"), []), updates_only=True))
        oki.update(_pending_values(pending.get((lid, "okitoki"), []), updates_only=True))
        has_base = any(not k.startswith("_") for k in agreed_old)
        out = merge_fields(ctx.mapping.specs.values(), agreed_old if has_base else None, crm, oki,
                           crm_ts=base.crm_updated_at, okitoki_ts=base.okitoki_updated_at,
                           status_order=ctx.mapping.status_order)
        agreed = out.agreed
        for target, fields in (("crm", out.to_crm), ("okitoki", out.to_okitoki)):
            if fields:
                _queue_update(b, lid, target, fields, pending.get((lid, target), []))
        for c in out.conflicts:
            b.counts["conflicts"] += 1
            if c.journal and not (c.winner == "held" and (lid, c.field) in held):
                b.conflicts.append({"link_id": lid, "field": c.field, "base": c.base,
                                    "crm_value": c.crm, "okitoki_value": c.okitoki, "rule": c.rule,
                                    "winner": c.winner, "at": b.now, "resolved": c.winner != "held"})
        conflicted = {c.field for c in out.conflicts if c.winner == "held"}
        b.resolved += [(lid, f) for (l, f) in held if l == lid and f not in conflicted]
    else:
        present = crm if crm is not None else oki
        side = "crm" if crm is not None else "okitoki"
        agreed = {k: v for k, v in (present or {}).items() if not k.startswith("__")}
        other: Side = "okitoki" if side == "crm" else "crm"
        allowed = ctx.config.contacts.create_in_okitoki if other == "okitoki" else \
            ctx.config.contacts.create_in_crm and ctx.crm_capabilities.contacts_create
        if present is not None and allowed and not link.hold and not link.tombstone:
            values = ctx.mapping.writable(other, agreed)
            if values.get(PHONES) or other == "crm" or ctx.config.contacts.without_phone == "create":
                b.op(Lane.CONTACTS, other, "contact_create", lid, {"values": values},
                     f"contact:{other}:{lid}:create")
            else:
                no_phone = True
    for k, v in agreed_old.items():
        if k.startswith("_") and not k.startswith("__"):
            agreed.setdefault(k, v)
    _note_no_phone(b, link, agreed, no_phone)
    _plan_dnc(b, lid, agreed)
    _plan_tasks(b, link, agreed, tasks, deleted)
    if agreed != agreed_old:
        b.base_updates.append({"link_id": lid, "agreed": agreed})


def _note_no_phone(b: _Batch, link: Any, agreed: dict[str, Any], no_phone: bool) -> None:
    """A CRM contact not created in Oki-Toki for want of a phone: logged once (the marker in
    the agreed values remembers it), counted by ``syncd status``; never a dead letter."""
    if not no_phone:
        agreed.pop(NO_PHONE, None)
        return
    b.counts["without_phone"] += 1
    if not agreed.get(NO_PHONE):
        agreed[NO_PHONE] = True
        log.warning("contact_without_phone", link_id=link.id, crm_id=link.crm_id,
                    outcome="not created in Oki-Toki (contacts.without_phone = \"report\")")


def _queue_update(b: _Batch, lid: int, target: str, fields: dict[str, Any], rows: list[Any]) -> None:
    """Fold the fields into a pending (unclaimed) update for the link, or queue a new one."""
    for r in rows:
        if r.status == "pending" and r.operation == "contact_update":
            payload = dict(r.payload or {})
            payload["values"] = {**(payload.get("values") or {}), **fields}
            b.op_merges.append({"id": r.id, "payload": payload})
            b.counts["merged_updates"] += 1
            return
    b.op(Lane.CONTACTS, target, "contact_update", lid, {"values": fields},
         f"contact:{target}:{lid}:update:{uuid.uuid4().hex}")


def _plan_dnc(b: _Batch, lid: int, agreed: dict[str, Any]) -> None:
    ctx = b.ctx
    list_id = ctx.config.do_not_call.list_id
    if not ctx.mapping.dnc_enabled or list_id is None:
        return
    listed = list(agreed.get(LISTED) or [])
    if agreed.get(DNC):
        new = [p for p in agreed.get(PHONES) or [] if p not in listed]
        if new:
            b.op(Lane.DO_NOT_CALL, "okitoki", "dnc_add", lid, {"list_id": str(list_id), "phones": new},
                 f"dnc:add:{lid}:{uuid.uuid4().hex}")
            agreed[LISTED] = listed + new
    elif listed:
        b.op(Lane.DO_NOT_CALL, "okitoki", "dnc_remove", lid, {"list_id": str(list_id), "phones": listed},
             f"dnc:remove:{lid}:{uuid.uuid4().hex}")
        agreed[LISTED] = []


def _retire(b: _Batch, link: Any, gone: list[str]) -> None:
    """A record of the link was deleted: retire the link (its tasks go through _plan_tasks).

    With ``[contacts] on_delete = "propagate"`` the other side's record is deleted too, where
    that side can delete (Oki-Toki's API profile has no contact delete: it is only unlinked)."""
    ctx, lid = b.ctx, link.id
    b.retired.append((lid, {side: link.crm_id if side == "crm" else link.okitoki_id for side in gone}))
    b.counts["retired_links"] += 1
    log.info("link_retired", link_id=lid, deleted_on=",".join(gone))
    other = "okitoki" if gone == ["crm"] else "crm" if gone == ["okitoki"] else None
    other_id = (link.okitoki_id if other == "okitoki" else link.crm_id) if other else None
    if ctx.config.contacts.on_delete != "propagate" or not other_id:
        return
    if other == "crm" and ctx.crm_capabilities.contacts_delete:
        b.op(Lane.CONTACTS, "crm", "contact_delete", lid, {"id": other_id}, f"contact:crm:{lid}:delete")
        return
    b.counts["delete_not_propagated"] += 1
    log.warning("delete_not_propagated", link_id=lid, side=other,
                reason="Oki-Toki's API has no contact delete" if other == "okitoki"
                else "the CRM connector cannot delete contacts")


def _plan_tasks(b: _Batch, link: Any, agreed: dict[str, Any], tasks: dict[str, Any], deleted: bool) -> None:
    ctx, lid = b.ctx, link.id
    # A merge candidate is a duplicate of another contact, which gets the task.
    wanted = {} if (deleted or link.tombstone or link.hold) else wanted_dialers(ctx.config.dialer, agreed)
    for dialer, rule in wanted.items():
        row = tasks.get(dialer)
        payload = task_payload(rule, agreed)
        if row is not None and row.state in ("creating", "active", "kept"):
            if set(row.phones or []) == set(payload["phones"]):
                if row.state == "kept":   # matching again: the engine takes the task back over
                    b.task_updates.append({"id": row.id, "state": "active", "updated_at": b.now})
                continue
            # The numbers changed: the old task goes first (add_tasks waits for its removal),
            # so the dialer never calls an old number, nor holds two tasks for one contact.
            _take_back(b, lid, dialer, row, Lane.TASKS, "the numbers changed")
            b.counts["replaced_task"] += 1
        gen = (row.generation + 1) if row is not None else 1
        b.task_upserts.append({"link_id": lid, "dialer_id": dialer, "rule": rule.name,
                               "phones": payload["phones"], "state": "creating",
                               "generation": gen, "task_id": None, "updated_at": b.now,
                               "_exists": row is not None})
        b.op(Lane.TASKS, "okitoki", "add_task", lid, {**payload, "generation": gen},
             add_key(lid, dialer, gen))
    lane = Lane.DO_NOT_CALL if agreed.get(DNC) else Lane.TASKS
    for dialer, row in tasks.items():
        # "kept": an operator dropped its removal (syncd holds drop); do-not-call still wins
        if dialer in wanted or row.state not in ("creating", "active") + (("kept",) if agreed.get(DNC) else ()):
            continue
        if _take_back(b, lid, dialer, row, lane, "the contact stopped matching"):
            b.task_updates.append({"id": row.id, "state": "removed", "updated_at": b.now})
        else:
            b.task_updates.append({"id": row.id, "state": "removing", "updated_at": b.now})


def _take_back(b: _Batch, lid: int, dialer: str, row: Any, lane: Lane, why: str) -> bool:
    """Undo the link's task of ``row``'s generation: cancel its create if it was never sent
    (returns True), else queue its removal (by id when known)."""
    add = b.adds.get(add_key(lid, dialer, row.generation)) if row.state == "creating" else None
    if add is not None and add.status == "pending" and add.attempts == 0:
        b.cancel_ops.append((add.id, f"cancelled: {why}"))
        b.counts["cancelled_add_task"] += 1
        return True
    payload = {"dialer_id": dialer, "generation": row.generation, "phones": row.phones or []}
    if row.state in ("active", "kept") and row.task_id:
        payload["task_id"] = row.task_id
    b.op(lane, "okitoki", "remove_task", lid, payload, f"task:remove:{lid}:{dialer}:{row.generation}")
    return False


def add_key(link_id: int, dialer_id: str, generation: int) -> str:
    """The idempotency key of the task create of a link in a dialer, per generation."""
    return f"task:add:{link_id}:{dialer_id}:{generation}"


def add_key_like(dialer_id: str) -> str:
    """A LIKE pattern (escape ``\\``) matching the keys of :func:`add_key` for one dialer:
    link id and generation are integers, so ``:dialer:`` can only be the dialer's part."""
    escaped = dialer_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"task:add:%:{escaped}:%"


def _write(conn: Any, b: _Batch, dirty: Sequence[Any]) -> None:
    now = b.now
    for op_id, why in b.cancel_ops:
        conn.execute(update(OUTBOX).where(and_(OUTBOX.c.id == op_id, OUTBOX.c.status == "pending"))
                     .values(status="done", last_error=why, updated_at=now))
    if b.retired:
        retire_links(conn, b.retired, now=now)
    enqueue(conn, b.ops, now=now)
    for m in b.op_merges:
        conn.execute(update(OUTBOX).where(and_(OUTBOX.c.id == m["id"], OUTBOX.c.status == "pending"))
                     .values(payload=m["payload"], updated_at=now))
    update_many(conn, BASE, "link_id", b.base_updates)
    fresh = [t for t in b.task_upserts if not t["_exists"]]
    again = [t for t in b.task_upserts if t["_exists"]]
    if fresh:
        conn.execute(insert(TASK), [{k: v for k, v in t.items() if k != "_exists"} for t in fresh])
    if again:
        conn.execute(update(TASK).where(and_(TASK.c.link_id == bindparam("_l"),
                                             TASK.c.dialer_id == bindparam("_d")))
                     .values(rule=bindparam("_r"), phones=bindparam("_p"), state="creating",
                             generation=bindparam("_g"), task_id=None, updated_at=now),
                     [{"_l": t["link_id"], "_d": t["dialer_id"], "_r": t["rule"], "_p": t["phones"],
                       "_g": t["generation"]} for t in again])
    update_many(conn, TASK, "id", b.task_updates)
    if b.conflicts:
        conn.execute(insert(CONFLICT), b.conflicts)
    for lid, field in b.resolved:
        conn.execute(update(CONFLICT).where(and_(CONFLICT.c.link_id == lid, CONFLICT.c.field == field,
                                                 CONFLICT.c.resolved.is_(False))).values(resolved=True))
    # Only the observations this batch saw leave the queue; a newer one (seq bumped) stays.
    conn.execute(delete(DIRTY).where(tuple_(DIRTY.c.link_id, DIRTY.c.seq).in_(
        [(d.link_id, d.seq) for d in dirty])))
