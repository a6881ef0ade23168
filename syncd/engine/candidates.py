"""``syncd merge-candidates list|link|dismiss``: records whose number matched several contacts
of the other side are held (never linked, never created across) until an operator decides.

* ``link ID --to LINK``: the record is that contact (one of its candidates): it joins the link,
  its held link goes, and the next merge treats the pair like any first meeting of two records.
* ``dismiss ID``: the record is a person of its own: the hold is lifted, so it is created on the
  other side (where the configuration allows) like any new contact.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, select, update

from ..store import Store
from ..store.tables import CallRow, MergeCandidate, TaskRow
from .context import BASE, LINK, OUTBOX, PHONE, mark_dirty
from .matching import HOLD_MERGE

__all__ = ["list_candidates", "link_candidate", "dismiss_candidate", "CandidateNotFound"]

CANDIDATE, CALL, TASK = MergeCandidate.__table__, CallRow.__table__, TaskRow.__table__


class CandidateNotFound(LookupError):
    pass


def list_candidates(store: Store) -> list[dict[str, Any]]:
    """Each held record with its candidates (link id and both sides' ids)."""
    with store.begin() as conn:
        rows = conn.execute(select(CANDIDATE).order_by(CANDIDATE.c.id)).all()
        ids = sorted({int(c) for r in rows for c in (r.candidates or []) if str(c).isdigit()})
        links = {r.id: r for r in conn.execute(select(LINK).where(LINK.c.id.in_(ids)))} if ids else {}
    out = []
    for r in rows:
        cands = []
        for c in r.candidates or []:
            link = links.get(int(c)) if str(c).isdigit() else None
            cands.append({"link": int(c), "crm_id": link.crm_id, "okitoki_id": link.okitoki_id}
                         if link is not None else {"record": str(c)})   # "side:id", not linked yet
        out.append({"id": r.id, "side": r.side, "record_id": r.record_id, "phone": r.phone,
                    "candidates": cands, "at": r.at.isoformat() if r.at else None})
    return out


def _candidate(conn: Any, candidate_id: int) -> tuple[Any, Any]:
    row = conn.execute(select(CANDIDATE).where(CANDIDATE.c.id == candidate_id)).first()
    if row is None:
        raise CandidateNotFound(f"no merge candidate with id {candidate_id}")
    col = LINK.c.crm_id if row.side == "crm" else LINK.c.okitoki_id
    held = conn.execute(select(LINK).where(and_(col == row.record_id, LINK.c.entity == "contact"))).first()
    if held is None:
        raise CandidateNotFound(f"merge candidate {candidate_id}: the record's link is gone")
    return row, held


def link_candidate(store: Store, candidate_id: int, target_link: int, *, now: Any) -> dict[str, Any]:
    """Join the held record to link ``target_link`` (one without a record on that side)."""
    with store.begin() as conn:
        row, held = _candidate(conn, candidate_id)
        side, col = row.side, (LINK.c.crm_id if row.side == "crm" else LINK.c.okitoki_id)
        target = conn.execute(select(LINK).where(LINK.c.id == target_link)).first()
        if target is None or target.tombstone:
            raise ValueError(f"link {target_link} does not exist or is retired")
        if getattr(target, col.key) is not None:
            raise ValueError(f"link {target_link} already has a {side} record ({getattr(target, col.key)})")
        conn.execute(update(LINK).where(LINK.c.id == held.id).values({col.key: None}))
        conn.execute(update(LINK).where(LINK.c.id == target_link).values({col.key: row.record_id}))
        seen = conn.execute(select(BASE).where(BASE.c.link_id == held.id)).first()
        if seen is not None:
            values = {side: getattr(seen, side), f"{side}_updated_at": getattr(seen, f"{side}_updated_at")}
            if conn.execute(select(BASE.c.link_id).where(BASE.c.link_id == target_link)).first():
                conn.execute(update(BASE).where(BASE.c.link_id == target_link).values(**values))
            else:
                conn.execute(BASE.insert().values(link_id=target_link, **values))
            # a first meeting of two records: no common base yet (bookkeeping "_" keys stay)
            kept = conn.execute(select(BASE.c.agreed).where(BASE.c.link_id == target_link)).scalar()
            conn.execute(update(BASE).where(BASE.c.link_id == target_link).values(
                agreed={k: v for k, v in (kept or {}).items() if k.startswith("_")}))
        conn.execute(delete(PHONE).where(and_(PHONE.c.link_id == target_link, PHONE.c.side == side)))
        conn.execute(update(PHONE).where(PHONE.c.link_id == held.id).values(link_id=target_link))
        for table in (OUTBOX, CALL, TASK):
            conn.execute(update(table).where(table.c.link_id == held.id).values(link_id=target_link))
        conn.execute(delete(BASE).where(BASE.c.link_id == held.id))
        conn.execute(delete(LINK).where(LINK.c.id == held.id))
        conn.execute(delete(CANDIDATE).where(CANDIDATE.c.id == candidate_id))
        mark_dirty(conn, [target_link])
    return {"candidate": candidate_id, "record": f"{side}:{row.record_id}", "link": target_link}


def dismiss_candidate(store: Store, candidate_id: int, *, now: Any) -> dict[str, Any]:
    """The record is nobody's duplicate: lift its hold so it syncs as a contact of its own."""
    with store.begin() as conn:
        row, held = _candidate(conn, candidate_id)
        conn.execute(update(LINK).where(and_(LINK.c.id == held.id, LINK.c.hold == HOLD_MERGE)).values(hold=None))
        conn.execute(delete(CANDIDATE).where(CANDIDATE.c.id == candidate_id))
        mark_dirty(conn, [held.id])
    return {"candidate": candidate_id, "record": f"{row.side}:{row.record_id}", "link": held.id}
