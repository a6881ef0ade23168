"""What each outbox operation does remotely, and the effect it records when it succeeded.

Handlers get a group of claimed rows of one (target, operation) and return, per row id,
a :data:`~syncd.engine.results.RowResult`: :class:`~syncd.engine.results.Done` (with an
effect run in the settling transaction), :class:`~syncd.engine.results.Later`, or the
exception that row failed with. :data:`HANDLERS` is the table the push is given.
Batch endpoints are used wherever the remote has them (tasks per dialer, list values,
CRM upserts and call logs), because Oki-Toki requests cost money.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from typing import Any, Mapping

from sqlalchemy import and_, select

from ..apirecords import about
from ..errors import InvalidRecord, InvalidRequest
from ..phones import normalize_many
from ..model import ContactWrite, TaskSpec
from ..store.tables import TaskRow
from .callwrites import log_calls, statuses, update_calls
from .context import BASE, LINK, OUTBOX, Context, chunks
from .deletes import crm_deletes
from .dncback import dnc_checks
from .effects import Seen, TaskSettled
from .journalids import rows_records
from .mapping import PHONES, Side
from .reconcile import add_key
from .results import Done, Grouped, Handler, Handlers, Later, write_error

__all__ = ["HANDLERS"]

TASK = TaskRow.__table__
WAIT = timedelta(seconds=5)
LINKED_FRESH = 0.5   # seconds: how old a create's view of its link may be (see _LinkedNow)


def _links(ctx: Context, ids: list[int]) -> dict[int, Any]:
    with ctx.store.read() as conn:
        return {r.id: r for r in conn.execute(select(LINK).where(LINK.c.id.in_(ids)))}


def _bases(ctx: Context, ids: list[int]) -> dict[int, Any]:
    """The links' agreed values (all a create reads of its base; the sides' JSON stays unread)."""
    if not ids:
        return {}
    with ctx.store.read() as conn:
        return {r.link_id: r for r in conn.execute(
            select(BASE.c.link_id, BASE.c.agreed).where(BASE.c.link_id.in_(ids)))}


# -- contacts ---------------------------------------------------------------------------------

def _create_values(ctx: Context, row: Any, base: Any, target: Side) -> dict[str, Any]:
    """What a create sends: the agreed values as they are now (not when it was queued)."""
    agreed = {k: v for k, v in ((base.agreed if base is not None else None) or {}).items()
              if not k.startswith("_")}
    return ctx.mapping.writable(target, agreed) or dict((row.payload or {}).get("values") or {})


def okitoki_contacts(ctx: Context, rows: list[Any], *,
                     made: dict[str, list[str]] | None = None) -> dict[int, Any]:
    """``made``: the look-up of the retried creates' group, done once for all its pieces
    (:func:`_okitoki_group`); without it the retried creates among ``rows`` look up here."""
    out: dict[int, Any] = {}
    read_at = time.monotonic()
    links = _links(ctx, [r.link_id for r in rows])
    bases = _bases(ctx, [r.link_id for r in rows if r.operation == "contact_create"])
    if made is None:
        made = _made_by_earlier_tries(ctx, rows)
    rids = rows_records(ctx, rows, links)
    linked_now = _LinkedNow(ctx, [r.link_id for r in rows if r.operation == "contact_create"],
                            seen=(links, read_at))
    for r in rows:
        if ctx.stopping():
            break                      # one request per row: do not hold up a shutdown
        link = links.get(r.link_id)
        if link is None or link.tombstone:
            out[r.id] = Done(note="link gone" if link is None else "link retired")
            continue
        about(rids[r.id])
        try:
            if r.operation == "contact_create":
                linked = linked_now.get(r.link_id)   # a pull may have linked it meanwhile
                if linked:
                    out[r.id] = Done(note="already linked")
                    continue
                values = _create_values(ctx, r, bases.get(r.link_id), "okitoki")
                found = _adoptable(ctx, r.link_id, values, made) if r.attempts > 1 else None
                fields, phones = ctx.mapping.to_side("okitoki", values)
                new_id = found or ctx.okitoki.upsert_contact(
                    ContactWrite(key=r.idem_key, id=None, fields=fields, phones=phones))
                out[r.id] = Done(Seen(r.link_id, "okitoki", values, new_id=new_id, written_at=ctx.now()))
            else:
                if not link.okitoki_id:
                    link = links[r.link_id] = _links(ctx, [r.link_id]).get(r.link_id, link)
                if not link.okitoki_id:
                    out[r.id] = Later(ctx.now() + WAIT, "waiting for the Oki-Toki contact to exist")
                    continue
                values = dict((r.payload or {}).get("values") or {})
                fields, phones = ctx.mapping.to_side("okitoki", values)
                ctx.okitoki.upsert_contact(ContactWrite(key=r.idem_key, id=link.okitoki_id,
                                                        fields=fields, phones=phones))
                out[r.id] = Done(Seen(r.link_id, "okitoki", values, written_at=ctx.now()))
        except (InvalidRecord, InvalidRequest) as exc:
            out[r.id] = exc            # this record's problem: dead letter, the rest goes on
        except Exception as exc:  # noqa: BLE001
            out[r.id] = exc            # the system's problem: the rest of the group waits
            break
    return out


def _okitoki_group(ctx: Context, rows: list[Any]) -> Handler:
    """Before a group of Oki-Toki contact writes is split over the workers: one look-up export
    for all its retried creates, so they go out in parallel like any others (a crash in the
    middle of a batch leaves its whole batch retried) instead of one at a time in one piece."""
    return partial(okitoki_contacts, made=_made_by_earlier_tries(ctx, rows))


def _made_by_earlier_tries(ctx: Context, rows: list[Any]) -> dict[str, list[str]]:
    """For the creates among ``rows`` an earlier try may have sent before its holder died
    (``attempts > 1``, see outbox.claim): what Oki-Toki made since (one export), else nothing."""
    retried = [r for r in rows if r.operation == "contact_create" and r.attempts > 1]
    return _okitoki_made_since(ctx, retried) if retried else {}


class _LinkedNow:
    """The Oki-Toki ids of a group's links as they are now: read in one query for the whole
    group, and again (for the group) once the last read is ``LINKED_FRESH`` old, instead of a
    transaction per create (a pull may link a contact while the push runs; a create checks a
    view at most that old, and the settling effect never overwrites a link made meanwhile)."""

    def __init__(self, ctx: Context, link_ids: list[int],
                 seen: tuple[Mapping[int, Any], float] | None = None) -> None:
        """``seen``: the links as the caller read them (rows with ``okitoki_id``) and the
        ``time.monotonic()`` taken before that read: the first view, until it is too old."""
        self.ctx = ctx
        self.link_ids = sorted(set(link_ids))
        self.ids: dict[int, str | None] = {}
        self.read_at = float("-inf")
        if seen is not None:
            links, at = seen
            self.ids = {lid: links[lid].okitoki_id for lid in self.link_ids if lid in links}
            self.read_at = at

    def get(self, link_id: int) -> str | None:
        if time.monotonic() - self.read_at > LINKED_FRESH:
            with self.ctx.store.read() as conn:
                self.ids = {lid: oid for lid, oid in conn.execute(
                    select(LINK.c.id, LINK.c.okitoki_id).where(LINK.c.id.in_(self.link_ids)))}
            self.read_at = time.monotonic()
        return self.ids.get(link_id)


def _okitoki_made_since(ctx: Context, rows: list[Any]) -> dict[str, list[str]]:
    """Oki-Toki contacts changed since the oldest of these creates was queued, by E.164 number:
    one export for the whole batch, only for creates an earlier try may have sent."""
    since = min(r.created_at for r in rows) - timedelta(minutes=2)
    by_phone: dict[str, list[str]] = {}
    for c in ctx.okitoki.export_contacts(since):
        if c.deleted:    # the export shows deleted contacts once more: never adopt one
            continue
        got, _ = normalize_many(c.phones, ctx.config.contacts.default_region)
        for p in got:
            by_phone.setdefault(p, []).append(c.id)
    return by_phone


def _adoptable(ctx: Context, link_id: int, values: dict[str, Any], made: dict[str, list[str]]) -> str | None:
    """A contact an earlier try of this create made: same number, not linked to another link."""
    ids = sorted({cid for p in values.get(PHONES) or [] for cid in made.get(p, [])})
    if not ids:
        return None
    with ctx.store.read() as conn:
        taken = {oid: lid for oid, lid in conn.execute(
            select(LINK.c.okitoki_id, LINK.c.id).where(LINK.c.okitoki_id.in_(ids)))}
    for cid in ids:
        if taken.get(cid) in (None, link_id):
            return cid
    return None


def crm_contacts(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    links = _links(ctx, [r.link_id for r in rows])
    bases = _bases(ctx, [r.link_id for r in rows])
    writes: list[tuple[Any, ContactWrite, dict[str, Any], bool]] = []
    rids = rows_records(ctx, rows, links)
    for r in rows:
        link = links.get(r.link_id)
        if link is None or link.tombstone:
            out[r.id] = Done(note="link gone" if link is None else "link retired")
            continue
        if r.operation == "contact_create":
            with ctx.store.read() as conn:
                linked = conn.execute(select(LINK.c.crm_id).where(LINK.c.id == r.link_id)).scalar()
            if linked:
                out[r.id] = Done(note="already linked")
                continue
            values = _create_values(ctx, r, bases.get(r.link_id), "crm")
            if r.attempts > 1 and values.get(PHONES):
                # an earlier try may have made it: adopt a live contact with the number that
                # no other link holds
                about(rids[r.id])
                ids = [c.id for c in ctx.crm.find_by_phone(values[PHONES][0]) if not c.deleted]
                with ctx.store.read() as conn:
                    taken = {cid: lid for cid, lid in conn.execute(
                        select(LINK.c.crm_id, LINK.c.id).where(LINK.c.crm_id.in_(ids)))} if ids else {}
                free = [cid for cid in ids if taken.get(cid) in (None, r.link_id)]
                if free:
                    out[r.id] = Done(Seen(r.link_id, "crm", values, new_id=free[0], written_at=ctx.now()))
                    continue
            fields, phones = ctx.mapping.to_side("crm", values)
            writes.append((r, ContactWrite(r.idem_key, None, fields, phones), values, True))
        else:
            if not link.crm_id:
                out[r.id] = Later(ctx.now() + WAIT, "waiting for the CRM contact to exist")
                continue
            values = dict((r.payload or {}).get("values") or {})
            fields, phones = ctx.mapping.to_side("crm", values)
            writes.append((r, ContactWrite(r.idem_key, link.crm_id, fields, phones), values, False))
    size = max(1, ctx.crm_capabilities.write_batch_size or 50)
    for chunk in chunks(writes, size):
        about(*(rids[r.id] for r, *_ in chunk))
        results = ctx.crm.upsert_contacts([w for _, w, _, _ in chunk])
        for (r, w, values, create), res in zip(chunk, results):
            out[r.id] = write_error(res, system="crm", operation="upsert_contacts",
                                    refused="CRM refused the record", record_id=w.id) or \
                Done(Seen(r.link_id, "crm", values, new_id=res.id if create else None,
                          written_at=ctx.now()))
    return out


# -- dialer tasks -----------------------------------------------------------------------------

def add_tasks(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    links = _links(ctx, [r.link_id for r in rows])
    by_dialer: dict[str, list[tuple[Any, TaskSpec]]] = {}
    blocked = _earlier_generations(ctx, rows)
    rids = rows_records(ctx, rows, links)
    for r in rows:
        p = r.payload or {}
        link = links.get(r.link_id)
        if r.id in blocked:
            out[r.id] = blocked[r.id]
            continue
        if not p.get("phones"):
            out[r.id] = InvalidRecord("no phone number for the task")
            continue
        spec = TaskSpec(dialer_id=str(p["dialer_id"]), phones=tuple(p["phones"][:5]),
                        contact_id=link.okitoki_id if link is not None else None,
                        priority=p.get("priority"), ttl_s=p.get("ttl_s"), region=p.get("region"))
        by_dialer.setdefault(spec.dialer_id, []).append((r, spec))
    for dialer, items in by_dialer.items():
        for chunk in chunks(items, 1000):
            # An earlier try of these rows may have created the tasks before its holder died:
            # take back what it may have made (one request per row, only after a crash).
            for r, spec in chunk:
                if r.attempts > 1:
                    about(rids[r.id])
                    ctx.okitoki.remove_task(dialer, phones=list(spec.phones))
            about(*(rids[r.id] for r, _ in chunk))
            try:
                if len(chunk) == 1:
                    ids = [ctx.okitoki.create_task(chunk[0][1])]
                else:
                    ids = ctx.okitoki.add_tasks(dialer, [s for _, s in chunk])
            except (InvalidRecord, InvalidRequest) as exc:
                # One bad task refuses the whole bulk request: find it, one request per task.
                if len(chunk) == 1:
                    out[chunk[0][0].id] = exc
                    continue
                for r, spec in chunk:   # find the bad one(s): one request each
                    about(rids[r.id])
                    try:
                        tid = ctx.okitoki.create_task(spec)
                        out[r.id] = Done(TaskSettled(r.link_id, dialer, r.payload["generation"], "active", tid))
                    except Exception as one:  # noqa: BLE001
                        out[r.id] = one
                continue
            for (r, _), tid in zip(chunk, ids):
                out[r.id] = Done(TaskSettled(r.link_id, dialer, r.payload["generation"], "active", tid))
    return out


def _earlier_generations(ctx: Context, rows: list[Any]) -> dict[int, Later]:
    """Task creates that must wait: an earlier generation of the same link and dialer is still
    being created or removed. A replaced task (new numbers) is thus removed before its successor
    exists, so the dialer never holds two tasks of one contact, nor refuses the new one as a
    duplicate; a crash between the two leaves the create queued, never lost."""
    keys = {r.id: (r.link_id, str((r.payload or {}).get("dialer_id")), (r.payload or {}).get("generation", 0))
            for r in rows}
    with ctx.store.read() as conn:
        before = conn.execute(select(OUTBOX.c.id, OUTBOX.c.link_id, OUTBOX.c.operation, OUTBOX.c.status,
                                     OUTBOX.c.payload).where(and_(
            OUTBOX.c.link_id.in_(sorted({k[0] for k in keys.values()})),
            OUTBOX.c.operation.in_(["add_task", "remove_task"]),
            OUTBOX.c.status.in_(["pending", "claimed", "dead"])))).all()
    by_link: dict[int, list[Any]] = {}
    for q in before:
        by_link.setdefault(q.link_id, []).append(q)
    out: dict[int, Later] = {}
    for rid, (lid, dialer, gen) in keys.items():
        for q in by_link.get(lid, ()):
            p = q.payload or {}
            if q.id == rid or str(p.get("dialer_id")) != dialer or p.get("generation", 0) >= gen:
                continue
            if q.operation == "remove_task" and q.status == "dead":
                out[rid] = Later(ctx.now() + WAIT * 12, "waiting for the removal of the contact's "
                                 "previous task, a dead letter (syncd dead-letters retry or drop)")
            elif q.status != "dead":
                out.setdefault(rid, Later(ctx.now() + WAIT, "waiting for the contact's previous "
                                          "task to be removed"))
    return out


def remove_tasks(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    """Remove a link's task of one generation: by its id once its create has settled.

    While the create of that generation may still be in flight, wait (a remove by number now
    could miss a task the create makes a moment later). A task created for a generation the
    link has moved past is removed by id (an orphan row queued by the create's effect).
    """
    out: dict[int, Any] = {}
    rids = rows_records(ctx, rows)
    for r in rows:
        if ctx.stopping():
            break
        about(rids[r.id])
        p = r.payload or {}
        dialer, gen = p["dialer_id"], p.get("generation", 0)
        settled = TaskSettled(r.link_id, dialer, gen, "removed")
        try:
            if p.get("task_id"):   # an orphan, or a replaced task whose create had settled
                ctx.okitoki.remove_task(dialer, task_id=str(p["task_id"]))
                out[r.id] = Done(settled)
                continue
            with ctx.store.read() as conn:
                task = conn.execute(select(TASK).where(and_(
                    TASK.c.link_id == r.link_id, TASK.c.dialer_id == dialer))).first()
                add = conn.execute(select(OUTBOX.c.status).where(
                    OUTBOX.c.idem_key == add_key(r.link_id, dialer, gen))).first()
            if add is not None and add.status in ("pending", "claimed"):
                out[r.id] = Later(ctx.now() + WAIT, "waiting for the task's create to settle")
                continue
            mine = task is not None and task.generation == gen
            if mine and task is not None and task.task_id:
                ctx.okitoki.remove_task(dialer, task_id=task.task_id)
            elif add is None or add.status == "dead":
                # the create may have reached Oki-Toki before it failed: remove by number
                phones = p.get("phones") or (list(task.phones or []) if mine and task is not None else [])
                if phones:
                    ctx.okitoki.remove_task(dialer, phones=phones)
            elif not mine:
                out[r.id] = Done(note="the link moved on; an orphan task is removed by id")
                continue
            out[r.id] = Done(settled)
        except Exception as exc:  # noqa: BLE001
            out[r.id] = exc
    return out


# -- do-not-call ------------------------------------------------------------------------------

def dnc(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    by_list: dict[str, list[Any]] = {}
    for r in rows:
        by_list.setdefault(str((r.payload or {}).get("list_id")), []).append(r)
    out: dict[int, Any] = {}
    rids = rows_records(ctx, rows)
    for list_id, group in by_list.items():
        about(*(rids[r.id] for r in group))
        phones = sorted({p for r in group for p in (r.payload or {}).get("phones") or []})
        call = ctx.okitoki.list_add if group[0].operation == "dnc_add" else ctx.okitoki.list_remove
        try:
            call(list_id, phones)
            out.update({r.id: Done() for r in group})
        except Exception as exc:  # noqa: BLE001
            out.update({r.id: exc for r in group})
    return out


# -- the table the push is given (calls and statuses: callwrites.py) --------------------------

HANDLERS: Handlers = {
    ("okitoki", "contact_create"): Grouped(okitoki_contacts, _okitoki_group),
    ("okitoki", "contact_update"): okitoki_contacts,
    ("crm", "contact_create"): crm_contacts,
    ("crm", "contact_update"): crm_contacts,
    ("crm", "contact_delete"): crm_deletes,
    ("okitoki", "add_task"): add_tasks,
    ("okitoki", "remove_task"): remove_tasks,
    ("okitoki", "dnc_add"): dnc,
    ("okitoki", "dnc_remove"): dnc,
    ("okitoki", "dnc_check"): dnc_checks,
    ("crm", "log_call"): log_calls,
    ("crm", "update_call"): update_calls,
    ("crm", "status"): statuses,
}
