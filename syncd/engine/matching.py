"""Which link a record read from one side belongs to: by stored link, then by phone number.

One candidate on the other side (a link that has no record of this side yet): attach to it.
No candidate: a new link. Several candidates, or a number already used by another record of
the same side: a new link *held* as a merge candidate (reported, never created across, so no
duplicate is made) until a person merges the records.
All lookups are batched (one query per page of records); nothing loads every link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, insert, select, update

from ..store.outbox import insert_ignore
from ..store.tables import MergeCandidate
from .context import LINK, OUTBOX, PHONE
from .mapping import PHONES, Observed, Side

__all__ = ["Match", "match_records", "other_side", "HOLD_MERGE"]

MERGE = MergeCandidate.__table__
HOLD_MERGE = "merge-candidate"


def other_side(side: Side) -> Side:
    return "okitoki" if side == "crm" else "crm"


@dataclass
class Match:
    link_id: int
    created: bool = False      # a new link was made for this record
    attached: bool = False     # the record joined a link that only had the other side


def match_records(conn: Connection, side: Side, records: list[Observed], *,
                  now: datetime) -> dict[str, Match]:
    """Find or make the link of every record (by its id on ``side``); returns id → Match."""
    col = LINK.c.crm_id if side == "crm" else LINK.c.okitoki_id
    ids = [r.id for r in records]
    found = {row[1]: row[0] for row in conn.execute(
        select(LINK.c.id, col).where(and_(LINK.c.entity == "contact", col.in_(ids))))}
    result: dict[str, Match] = {rid: Match(lid) for rid, lid in found.items()}
    unlinked = [r for r in records if r.id not in found]
    if not unlinked:
        return result

    phones = sorted({p for r in unlinked for p in r.values.get(PHONES) or ()})
    by_phone: dict[str, set[int]] = {}
    links: dict[int, tuple[str | None, str | None]] = {}
    if phones:
        # Held links (merge candidates) never get a record on the other side: not candidates.
        q = (select(PHONE.c.phone, LINK.c.id, LINK.c.crm_id, LINK.c.okitoki_id)
             .join(LINK, LINK.c.id == PHONE.c.link_id)
             .where(and_(PHONE.c.phone.in_(phones), LINK.c.tombstone.is_(False),
                         LINK.c.hold.is_(None))))
        for phone, lid, crm_id, ok_id in conn.execute(q):
            by_phone.setdefault(phone, set()).add(lid)
            links[lid] = (crm_id, ok_id)

    side_index = 0 if side == "crm" else 1
    claimed: set[int] = set()          # links attached by an earlier record of this page
    batch_phone: dict[str, str] = {}   # phone → id of a record of this page that made a link
    to_create: list[tuple[Observed, str | None, list[str]]] = []
    attach: list[tuple[str, int]] = []
    for rec in unlinked:
        cands: set[int] = set()
        for p in rec.values.get(PHONES) or ():
            cands |= by_phone.get(p, set())
        same_page = {batch_phone[p] for p in rec.values.get(PHONES) or () if p in batch_phone}
        free = [c for c in cands if links[c][side_index] is None and c not in claimed]
        if not cands and not same_page:
            to_create.append((rec, None, []))
        elif len(cands) == 1 and len(free) == 1 and not same_page:
            claimed.add(free[0])
            attach.append((rec.id, free[0]))
        else:
            # candidates: link ids, and "side:id" of records of this page not linked yet
            others = [str(c) for c in sorted(cands)] + sorted(f"{side}:{r}" for r in same_page)
            to_create.append((rec, HOLD_MERGE, others))
        for p in rec.values.get(PHONES) or ():
            batch_phone.setdefault(p, rec.id)

    for rid, lid in attach:
        conn.execute(update(LINK).where(LINK.c.id == lid).values({col.key: rid}))
        result[rid] = Match(lid, attached=True)
    if attach:
        # A create of this side queued for the link is no longer needed: the record exists.
        conn.execute(update(OUTBOX).where(and_(
            OUTBOX.c.link_id.in_([lid for _, lid in attach]), OUTBOX.c.target == side,
            OUTBOX.c.operation == "contact_create", OUTBOX.c.status == "pending"))
            .values(status="done", last_error="superseded: linked to an existing record",
                    updated_at=now))
    if to_create:
        rows = [{"entity": "contact", col.key: rec.id, "hold": hold, "tombstone": False,
                 "created_at": now} for rec, hold, _ in to_create]
        # Returned with the record id rather than in parameter order: SQLAlchemy keeps the
        # order on SQLite only by inserting one row per statement (5,000 statements for an
        # initial page of 5,000); the ids of one batch are distinct (a page's repeats collapse).
        new_ids = {sid: lid for lid, sid in conn.execute(insert(LINK).returning(LINK.c.id, col), rows)}
        for rec, hold, others in to_create:
            result[rec.id] = Match(new_ids[rec.id], created=True)
        merges = [{"side": side, "record_id": rec.id, "phone": (rec.values.get(PHONES) or [None])[0],
                   "candidates": others, "at": now} for rec, hold, others in to_create if hold]
        insert_ignore(conn, MERGE, merges, ["side", "record_id"])
    return result
