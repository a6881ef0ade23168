"""Do-not-call from Oki-Toki back to the CRM: a number an agent put on the blacklist outside
syncd sets the CRM contact's do-not-call flag.

Oki-Toki offers no list of a blacklist's changes, and checking every linked number every day
would cost a request per contact. An agent blacklists a number while or after talking to the
customer, so syncd checks a number once after each *answered* call to a contact not already on
do-not-call (``lists/check``, at most once per number per UTC day, in the backfill lane: the
first to pause when the daily budget runs low). Cost: one request per distinct answered number
per day, e.g. 3,000 a day for a center that answers 3,000 distinct customers a day, whatever the
number of linked contacts (100,000 or more). ``[do_not_call] check_after_calls = false`` turns
it off.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from ..apirecords import about
from ..model import CallOutcome, Call
from ..store.outbox import enqueue
from .context import BASE, LINK, Context
from .journalids import rows_records
from .mapping import DNC, PHONES
from .outbox import Lane
from .results import Done
from .reconcile import LISTED

__all__ = ["check_ops", "dnc_checks"]


def check_ops(ctx: Context, call: Call, link_id: int | None, phone: str | None) -> list[dict[str, Any]]:
    """The blacklist check to queue after ``call`` (none when it cannot matter)."""
    cfg = ctx.config.do_not_call
    if (link_id is None or not phone or cfg.list_id is None or not ctx.mapping.dnc_enabled
            or not cfg.check_after_calls or call.outcome != CallOutcome.ANSWERED):
        return []
    day = ctx.now().date().isoformat()
    return [{"lane": int(Lane.BACKFILL), "target": "okitoki", "operation": "dnc_check", "link_id": link_id,
             "payload": {"list_id": str(cfg.list_id), "phone": phone}, "idem_key": f"dnc:check:{phone}:{day}"}]


def dnc_checks(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    """Ask the blacklist about each number; a listed one marks its contact do-not-call."""
    out: dict[int, Any] = {}
    with ctx.store.begin() as conn:
        agreed = {r.link_id: (r.agreed or {}) for r in conn.execute(
            select(BASE.c.link_id, BASE.c.agreed).where(BASE.c.link_id.in_([r.link_id for r in rows])))}
    rids = rows_records(ctx, rows)
    for r in rows:
        p = r.payload or {}
        if agreed.get(r.link_id, {}).get(DNC):
            out[r.id] = Done(note="already on do-not-call")
            continue
        about(rids[r.id])
        if not ctx.okitoki.list_check(p["list_id"], p["phone"]):
            out[r.id] = Done(note="not on the blacklist")
            continue
        out[r.id] = Done(_Listed(r.link_id, p["phone"], ctx), note="on the blacklist: do-not-call")
    return out


class _Listed:
    """Effect: the contact is do-not-call (agreed), its number is listed, and the CRM is told."""

    def __init__(self, link_id: int, phone: str, ctx: Context) -> None:
        self.link_id, self.phone, self.ctx = link_id, phone, ctx

    def __call__(self, conn: Any) -> None:
        base = conn.execute(select(BASE).where(BASE.c.link_id == self.link_id)).first()
        link = conn.execute(select(LINK.c.crm_id).where(LINK.c.id == self.link_id)).first()
        if base is None or link is None:
            return
        agreed = dict(base.agreed or {})
        if agreed.get(DNC):
            return
        listed = list(agreed.get(LISTED) or [])
        agreed[DNC] = True
        agreed[LISTED] = listed + [p for p in (agreed.get(PHONES) or [self.phone]) if p not in listed]
        conn.execute(update(BASE).where(BASE.c.link_id == self.link_id).values(agreed=agreed))
        now = self.ctx.now()
        if link.crm_id:
            enqueue(conn, [{"lane": int(Lane.DO_NOT_CALL), "target": "crm", "operation": "contact_update",
                            "link_id": self.link_id, "payload": {"values": {DNC: True}},
                            "idem_key": f"contact:crm:{self.link_id}:dnc-from-okitoki:{now.date().isoformat()}"}],
                    now=now)
        from .context import mark_dirty
        mark_dirty(conn, [self.link_id])   # its tasks come off the dialers (do-not-call wins)
