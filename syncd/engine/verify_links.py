"""The sweep over every link after the walks (``syncd verify``): records gone from a side,
and dialer tasks that the ``[[dialer]]`` rules and the task table disagree on.

Oki-Toki's API (as far as it is known) has no way to list a dialer's pending tasks, so a task
removed or added in Oki-Toki by hand cannot be seen; what is checked is our own task table
against the rules, which is what the merge acts on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Sequence

from sqlalchemy import and_, func, select

from ..model import Contact
from ..store.tables import TaskRow
from .context import BASE, DIRTY, LINK, Context, chunks, mark_dirty
from .drift import DriftReport
from .ingest import record_contacts
from .mapping import Side
from .rules import wanted_dialers
from .verify_sides import SeenIds

__all__ = ["sweep_links", "walk_looks_short"]

TASK = TaskRow.__table__
LIVE_TASK = ("creating", "active")
SHORT_WALK = 0.5     # a walk that met fewer than half the linked records is not trusted


def sweep_links(ctx: Context, report: DriftReport, seen: dict[Side, SeenIds | None], *,
                walk_began: datetime, repair: bool, progress: Callable[[str, int], None] | None = None,
                should_stop: Callable[[], str | None] = lambda: None) -> None:
    """Every link in batches (keyset by id): ``gone_<side>`` for a side whose complete walk
    did not meet the link's record (confirmed by ``fetch_contacts`` on the CRM), and
    ``task_missing`` / ``task_orphan``. ``seen[side]`` None: that walk did not complete.

    A walk that met far fewer records than are linked (an export or a connector answering
    short) is not trusted to say what is gone: those records are reported, not repaired."""
    trusted = {}
    for side, ids_seen in seen.items():
        why = walk_looks_short(ctx, side, ids_seen) if ids_seen is not None else None
        trusted[side] = why is None
        if why:
            report.notes.append(why)
    last, done = 0, 0
    while True:
        why = should_stop()
        if why:
            report.stop(why)
            return
        with ctx.store.begin() as conn:
            links = conn.execute(select(LINK).where(and_(LINK.c.entity == "contact", LINK.c.id > last))
                                 .order_by(LINK.c.id).limit(ctx.batch_size)).all()
            if not links:
                return
            last = links[-1].id
            ids = [r.id for r in links]
            bases = {r.link_id: r for r in conn.execute(select(BASE).where(BASE.c.link_id.in_(ids)))}
            dirty = {r[0] for r in conn.execute(select(DIRTY.c.link_id).where(DIRTY.c.link_id.in_(ids)))}
            tasks: dict[int, dict[str, Any]] = {}
            for t in conn.execute(select(TASK).where(TASK.c.link_id.in_(ids))):
                tasks.setdefault(t.link_id, {})[t.dialer_id] = t
        gone = {side: _gone(ctx, links, bases, dirty, side, ids_seen, walk_began)
                for side, ids_seen in seen.items() if ids_seen is not None}
        gone["crm"] = _confirm_gone_in_crm(ctx, gone.get("crm", []))
        with ctx.store.begin() as conn:
            for side, side_ids in gone.items():
                for rid in side_ids:
                    report.add(f"gone_{side}", f"{side}:{rid}")
                if repair and side_ids and trusted.get(side):
                    record_contacts(ctx, conn, side, [Contact(id=rid, deleted=True) for rid in side_ids])
                    report.repairs[f"gone_{side}"] += len(side_ids)
            replan = _check_tasks(ctx, report, links, bases, dirty, tasks)
            if repair and replan:
                mark_dirty(conn, list(replan))
                report.repairs.update(replan.values())
        done += len(links)
        report.read["links"] += len(links)
        if progress is not None:
            progress("links", done)


def walk_looks_short(ctx: Context, side: Side, seen: SeenIds) -> str | None:
    """Why the ids a walk met cannot be trusted for ``gone_<side>`` repairs (None: they can)."""
    col = LINK.c.crm_id if side == "crm" else LINK.c.okitoki_id
    with ctx.store.begin() as conn:
        linked = conn.execute(select(func.count()).select_from(LINK).where(and_(
            LINK.c.entity == "contact", col.is_not(None), LINK.c.tombstone.is_(False)))).scalar() or 0
    if linked >= 20 and len(seen) < linked * SHORT_WALK:
        return (f"the {side} walk met {len(seen)} records but {linked} are linked: records "
                f"missing from it are reported as gone_{side}, not repaired; check the {side} side")
    return None


def _gone(ctx: Context, links: Sequence[Any], bases: dict[int, Any], dirty: set[int], side: Side,
          seen: SeenIds, walk_began: datetime) -> list[str]:
    out = []
    for link in links:
        rid = getattr(link, f"{side}_id")
        base = bases.get(link.id)
        if rid is None or link.tombstone or link.id in dirty or base is None or rid in seen:
            continue
        shadow = getattr(base, side)
        if shadow is None or shadow.get("__deleted"):
            continue     # never recorded from that side, or already known deleted
        written = getattr(base, f"{side}_written_at")
        if (link.created_at is not None and link.created_at >= walk_began) or \
                (written is not None and written >= walk_began):
            continue     # created or written while the walk ran: the walk may have passed it
        out.append(rid)
    return out


def _confirm_gone_in_crm(ctx: Context, ids: list[str]) -> list[str]:
    """The CRM ids really absent: one ``fetch_contacts`` per batch (the walk could be wrong)."""
    if not ids:
        return []
    size = ctx.crm_capabilities.read_batch_size or 100
    present: set[str] = set()
    for part in chunks(ids, size):
        present.update(c.id for c in ctx.crm.fetch_contacts(part) if not c.deleted)
    return [i for i in ids if i not in present]


def _check_tasks(ctx: Context, report: DriftReport, links: Sequence[Any], bases: dict[int, Any],
                 dirty: set[int], tasks: dict[int, dict[str, Any]]) -> dict[int, str]:
    """Links whose live task rows differ from what the rules want (link → kind, to re-plan)."""
    rules = ctx.config.dialer
    replan: dict[int, str] = {}
    for link in links:
        base = bases.get(link.id)
        if base is None or link.id in dirty:
            continue
        agreed = base.agreed or {}
        deleted = bool((base.crm or {}).get("__deleted") or (base.okitoki or {}).get("__deleted"))
        wanted = {} if (deleted or link.tombstone or link.hold or not rules) \
            else wanted_dialers(rules, agreed)
        live = {d for d, t in tasks.get(link.id, {}).items() if t.state in LIVE_TASK}
        who = f"crm:{link.crm_id}" if link.crm_id else f"okitoki:{link.okitoki_id}"
        missing, orphan = set(wanted) - live, live - set(wanted)
        for d in sorted(missing):
            report.add("task_missing", f"{who} dialer {d}")
        for d in sorted(orphan):
            report.add("task_orphan", f"{who} dialer {d}")
        if missing or orphan:
            replan[link.id] = "task_missing" if missing else "task_orphan"
    return replan
