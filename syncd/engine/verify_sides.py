"""Comparing one page of a side's contacts with the state database (``syncd verify``).

Nothing here reads a remote: the caller hands a page it walked. With ``repair``, drift is
healed through the normal paths only: the side's current record is recorded again
(:func:`~syncd.engine.ingest.record_contacts`, which marks the link dirty so the merge queues
the writes), a record found deleted is recorded as ``Contact(deleted=True)``, and a link whose
side agrees with our shadow but not with the agreed values is marked dirty for the merge.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from ..errors import InvalidRecord
from ..model import Contact
from ..store.tables import Conflict, MergeCandidate
from . import cursors
from .context import BASE, DIRTY, LINK, OUTBOX, Context, mark_dirty
from .drift import DriftReport
from .ingest import _full_not_edited, record_contacts
from .mapping import PHONES, Side, is_empty, same
from .cursors import OKITOKI_OVERLAP

__all__ = ["SeenIds", "check_page", "side_id_column", "WRITES"]

CONFLICT, CANDIDATE = Conflict.__table__, MergeCandidate.__table__
WRITES = ("contact_create", "contact_update", "status")   # outbox writes that change a contact
STREAM_OF = {"crm": "crm:contacts", "okitoki": "okitoki:contacts"}   # the pulls' cursors


class SeenIds:
    """The ids a walk met, as sorted 64-bit hashes (8 bytes each, not a set of strings), so a
    walk of a million contacts stays a few megabytes. A hash collision could only hide a
    record that is gone; at 64 bits that is negligible."""

    def __init__(self) -> None:
        self._hashes = array("q")
        self._sorted = True

    def add(self, record_id: str) -> None:
        self._hashes.append(hash(record_id))
        self._sorted = False

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, record_id: str) -> bool:
        if not self._sorted:
            self._hashes = array("q", sorted(self._hashes))
            self._sorted = True
        h = hash(record_id)
        i = bisect_left(self._hashes, h)
        return i < len(self._hashes) and self._hashes[i] == h


def side_id_column(side: Side) -> Any:
    return LINK.c.crm_id if side == "crm" else LINK.c.okitoki_id


def _quarantined(conn: Connection, side: Side, record_id: str) -> bool:
    prefix = f"ingest:{side}:{record_id}:"
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return conn.execute(select(OUTBOX.c.id).where(and_(
        OUTBOX.c.operation == "ingest", OUTBOX.c.status == "dead",
        OUTBOX.c.idem_key.like(like, escape="\\"))).limit(1)).first() is not None


def _context(conn: Connection, side: Side, ids: list[str]) -> dict[str, Any]:
    """Links, bases, dirty links, pending writes and open conflicts of a page, in 6 queries."""
    col = side_id_column(side)
    links = {getattr(r, f"{side}_id"): r for r in conn.execute(
        select(LINK).where(and_(LINK.c.entity == "contact", col.in_(ids))))}
    lids = [r.id for r in links.values()]
    bases = {r.link_id: r for r in conn.execute(select(BASE).where(BASE.c.link_id.in_(lids)))}
    dirty = {r[0] for r in conn.execute(select(DIRTY.c.link_id).where(DIRTY.c.link_id.in_(lids)))}
    pending = {r[0] for r in conn.execute(select(OUTBOX.c.link_id).where(and_(
        OUTBOX.c.link_id.in_(lids), OUTBOX.c.status.in_(["pending", "claimed"]),
        OUTBOX.c.target == side, OUTBOX.c.operation.in_(WRITES))))}
    held = {(r.link_id, r.field) for r in conn.execute(select(CONFLICT.c.link_id, CONFLICT.c.field)
                                                        .where(and_(CONFLICT.c.link_id.in_(lids),
                                                                    CONFLICT.c.resolved.is_(False))))}
    unlinked = [i for i in ids if i not in links]
    candidates = {r[0] for r in conn.execute(select(CANDIDATE.c.record_id).where(and_(
        CANDIDATE.c.side == side, CANDIDATE.c.record_id.in_(unlinked))))} if unlinked else set()
    return {"links": links, "bases": bases, "dirty": dirty, "pending": pending, "held": held,
            "candidates": candidates}


def check_page(ctx: Context, conn: Connection, side: Side, contacts: list[Contact],
               report: DriftReport, seen: SeenIds, *, repair: bool, fetched_at: datetime) -> None:
    """Compare one page of ``side``'s records with the state database; repair in ``conn``."""
    page = [c for c in contacts if isinstance(getattr(c, "id", None), str) and c.id.strip()]
    for c in page:
        seen.add(c.id)
    report.read[f"{side}_contacts"] += len(page)
    if not page:
        return
    st = _context(conn, side, sorted({c.id for c in page}))
    read_up_to = cursors.load(conn, STREAM_OF[side]).value
    if read_up_to is not None and side == "okitoki":
        read_up_to -= OKITOKI_OVERLAP    # the export is re-read from there on every pull
    record: list[tuple[str, Contact]] = []   # (kind, record to record again)
    dirty: list[int] = []
    for contact in page:
        if not _behind(contact, read_up_to):
            report.read[f"{side}_ahead_of_pull"] += 1
            continue   # the pull has not read that far yet: its next run takes it
        link = st["links"].get(contact.id)
        base = st["bases"].get(link.id) if link is not None else None
        shadow = getattr(base, side, None) if base is not None else None
        if contact.deleted:
            if link is not None and not link.tombstone and shadow is not None \
                    and not shadow.get("__deleted"):
                report.add(f"gone_{side}", f"{side}:{contact.id}")
                record.append((f"gone_{side}", Contact(id=contact.id, deleted=True)))
            continue
        if link is None:
            if contact.id in st["candidates"] or _quarantined(conn, side, contact.id):
                continue
            report.add(f"{side}_unlinked", f"{side}:{contact.id}")
            record.append((f"{side}_unlinked", contact))
            continue
        if base is None or link.tombstone or link.id in st["dirty"] or link.id in st["pending"]:
            continue   # the merge or a write in flight will settle it
        if (base.crm or {}).get("__deleted") or (base.okitoki or {}).get("__deleted"):
            continue   # deleted on a side: nothing is agreed any more
        written = getattr(base, f"{side}_written_at")
        if written is not None and written >= fetched_at:
            continue   # read before our last write to it: the next read shows the write
        seen_ts = getattr(base, f"{side}_updated_at")
        if seen_ts is not None and contact.updated_at is not None and contact.updated_at < seen_ts:
            continue   # a pull recorded a newer version meanwhile: this read is the stale one
        fields = _differing(ctx, side, contact, base, {f for l, f in st["held"] if l == link.id})
        if fields is None or not fields:
            continue
        report.add("values_differ", f"{side}:{contact.id} ({', '.join(sorted(fields))})")
        if _shadow_differs(ctx, side, contact, shadow, base):
            record.append(("values_differ", contact))   # a change without a newer timestamp
        else:
            dirty.append(link.id)
    if repair and record:
        record_contacts(ctx, conn, side, [c for _, c in record], fetched_at=fetched_at)
        report.repairs.update(kind for kind, _ in record)
    if repair and dirty:
        mark_dirty(conn, dirty)
        report.repairs["values_differ"] += len(dirty)


def _behind(contact: Contact, read_up_to: datetime | None) -> bool:
    """Whether the side's pull has read past ``contact`` (so missing it would be drift).
    A record without a timestamp is always compared; none is before the first pull."""
    if contact.updated_at is None:
        return True
    return read_up_to is not None and contact.updated_at <= read_up_to


def _values(ctx: Context, side: Side, contact: Contact, agreed: dict[str, Any] | None) -> dict[str, Any] | None:
    try:
        values = dict(ctx.mapping.observe(side, contact).values)
    except InvalidRecord:
        return None    # unreadable: the pulls quarantine it (a dead letter shows it)
    cap = ctx.crm_capabilities.max_phones if side == "crm" else None
    return _full_not_edited(values, agreed, cap) if cap else values


def _differing(ctx: Context, side: Side, contact: Contact, base: Any, held: set[str]) -> set[str] | None:
    """Mapped fields whose value on ``side`` now differs from the agreed one (None: unreadable).

    Not drift: a value the side emptied (an empty value never erases, by design); a value
    only this side has in a field that does not flow from it (nothing would ever change it);
    a field held as a manual conflict (``syncd conflicts`` shows it)."""
    agreed = base.agreed or {}
    if not any(not k.startswith("_") for k in agreed):
        return set()    # never merged yet: the merge's first pass decides
    values = _values(ctx, side, contact, agreed)
    if values is None:
        return None
    out = set()
    for name, spec in ctx.mapping.specs.items():
        if name != PHONES and spec.side_name(side) is None:
            continue
        if name in held or is_empty(values.get(name)):
            continue
        if is_empty(agreed.get(name)) and spec.sync == f"to_{side}":
            continue
        if not same(name, values.get(name), agreed.get(name)):
            out.add(name)
    return out


def _shadow_differs(ctx: Context, side: Side, contact: Contact, shadow: dict[str, Any] | None, base: Any) -> bool:
    """Whether the side holds something else than our last record of it (a missed change)."""
    values = _values(ctx, side, contact, base.agreed)
    if values is None or shadow is None:
        return True
    keys = {k for k in set(values) | set(shadow) if not k.startswith("__")}
    return not all(same(k, values.get(k), shadow.get(k)) for k in keys)
