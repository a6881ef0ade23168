"""Retiring a link whose record was deleted on one side (or both).

A retired link (``link.tombstone``) keeps its ids, so a later read of either record finds it
and changes nothing: the surviving record is never created again on the deleted side and never
gets a dialer task. Its numbers leave the phone index, so a *new* record with the same number
is matched afresh (to a live record, or created across like any new contact), and calls to the
number are no longer logged against the deleted contact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, update

from ..apirecords import about, record_ids
from ..errors import InvalidRecord, TransientError
from ..store.tables import MergeCandidate
from .context import LINK, OUTBOX, PHONE, Context, chunks
from .results import Done, write_error

__all__ = ["retire_links", "crm_deletes"]

CANDIDATE = MergeCandidate.__table__
#: queued writes that lose their purpose when the link retires (per deleted side: its own)
_CONTACT_OPS = ("contact_create", "contact_update")


def retire_links(conn: Connection, retired: list[tuple[int, dict[str, str | None]]], *,
                 now: datetime) -> None:
    """Tombstone the links; ``retired`` holds (link id, {deleted side: its record id}).

    Pending contact writes of the links are cancelled (a write to a deleted record fails, and
    Oki-Toki answers one with 401, which would stop the whole push); so are the CRM status
    updates of a link whose CRM record is gone. Dialer tasks are planned by the caller."""
    ids = [lid for lid, _ in retired]
    conn.execute(update(LINK).where(LINK.c.id.in_(ids)).values(tombstone=True))
    conn.execute(delete(PHONE).where(PHONE.c.link_id.in_(ids)))
    crm_gone = [lid for lid, sides in retired if "crm" in sides]
    conn.execute(update(OUTBOX).where(and_(
        OUTBOX.c.link_id.in_(ids), OUTBOX.c.status == "pending",
        or_(OUTBOX.c.operation.in_(_CONTACT_OPS),
            and_(OUTBOX.c.operation == "status", OUTBOX.c.link_id.in_(crm_gone or [-1])))))
        .values(status="done", last_error="cancelled: the contact was deleted", updated_at=now))
    for side in ("crm", "okitoki"):
        records = [sides[side] for _, sides in retired if sides.get(side)]
        if records:
            conn.execute(delete(CANDIDATE).where(and_(CANDIDATE.c.side == side,
                                                      CANDIDATE.c.record_id.in_(records))))


def crm_deletes(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    """Outbox handler of ``contact_delete`` (``on_delete = "propagate"``): delete (or archive,
    as the CRM does it) the CRM records of links retired because Oki-Toki deleted theirs.
    A record already gone counts as deleted."""
    out: dict[int, Any] = {}
    size = max(1, ctx.crm_capabilities.write_batch_size or 50)
    for chunk in chunks(rows, size):
        about(*(record_ids(crm=(r.payload or {}).get("id"), link=r.link_id) for r in chunk))
        results = ctx.crm.delete_contacts([str((r.payload or {}).get("id")) for r in chunk])
        for r, res in zip(chunk, results):
            out[r.id] = write_error(res, system="crm", operation="delete_contacts",
                                    refused="CRM refused the delete", record_id=res.key) or \
                Done(note="deleted")
    return out
