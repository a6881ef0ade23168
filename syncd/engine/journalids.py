"""The record ids an outbox row's requests are journaled with (see :mod:`syncd.apirecords`)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlalchemy import select

from ..apirecords import record_ids
from .context import LINK, Context

__all__ = ["rows_records"]


def _session(payload: dict[str, Any]) -> Any:
    call = payload.get("call")
    return (call.get("session_id") if isinstance(call, dict) else None) or payload.get("session_id")


def rows_records(ctx: Context, rows: Sequence[Any],
                 links: Mapping[int, Any] | None = None) -> dict[int, tuple[str, ...]]:
    """Each row's record ids: its link's CRM and Oki-Toki contact ids as they are now (one
    look-up for all rows; ``links``: the rows' links (``crm_id``, ``okitoki_id``) as the
    caller has just read them, then no look-up) and, for a call, its session id; never a
    phone number."""
    link_ids = sorted({r.link_id for r in rows if r.link_id is not None})
    if links is None:
        links = {}
    elif any(i not in links for i in link_ids):
        links = {}      # a link the caller's read does not hold: read them all here
    if link_ids and not links:
        with ctx.store.read() as conn:
            links = {r.id: r for r in conn.execute(
                select(LINK.c.id, LINK.c.crm_id, LINK.c.okitoki_id).where(LINK.c.id.in_(link_ids)))}
    out: dict[int, tuple[str, ...]] = {}
    for r in rows:
        link = links.get(r.link_id)
        payload = r.payload if isinstance(r.payload, dict) else {}
        out[r.id] = record_ids(crm=link.crm_id if link is not None else None,
                               okitoki=link.okitoki_id if link is not None else None,
                               session=_session(payload), link=r.link_id)
    return out
