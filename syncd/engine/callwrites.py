"""Writing calls and call outcomes to the CRM.

Calls are logged in batches (``log_calls`` is idempotent by ``session_id`` in every
connector, so a retry after an ambiguous outcome cannot make a second activity). A call that
changed after it was logged rewrites its activity (``update_calls``, connectors with
``calls_update``). A status from a call outcome only moves forward along
``[calls] status_order``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, select

from ..apirecords import about
from ..errors import InvalidRecord, TransientError
from ..model import ContactWrite
from ..store.tables import CallRow
from .callrecord import call_from_payload
from .context import BASE, LINK, OUTBOX, PHONE, Context, chunks
from .effects import CallLogged, Seen
from .journalids import rows_records
from .results import Done, Later, write_error

__all__ = ["log_calls", "update_calls", "statuses", "is_forward"]

CALL = CallRow.__table__
WAIT = timedelta(seconds=10)


def is_forward(current: Any, new: Any, order: list[str]) -> bool:
    """Whether ``new`` is further than ``current`` along ``order`` (unknown current: yes)."""
    if new not in order:
        return False
    return current not in order or order.index(new) > order.index(current)


def _owner(ctx: Context, link_id: int | None, phone: str | None) -> tuple[int | None, str | None]:
    with ctx.store.read() as conn:
        if link_id is not None:
            row = conn.execute(select(LINK.c.id, LINK.c.crm_id).where(LINK.c.id == link_id)).first()
            if row is not None and row.crm_id:
                return row.id, row.crm_id
        if phone:
            row = conn.execute(select(LINK.c.id, LINK.c.crm_id).join(PHONE, PHONE.c.link_id == LINK.c.id)
                               .where(and_(PHONE.c.phone == phone, LINK.c.crm_id.is_not(None)))
                               .order_by(LINK.c.id).limit(1)).first()
            if row is not None:
                return row.id, row.crm_id
    return None, None


def _contact_for_unknown(ctx: Context, phone: str, key: str) -> str | None:
    """``unknown_numbers = "create_contact"``: the CRM contact with this number, made if needed."""
    found = ctx.crm.find_by_phone(phone)
    if found:
        return found[0].id
    res = ctx.crm.upsert_contacts([ContactWrite(key=f"callcontact:{phone}", id=None, phones=(phone,))])[0]
    error = write_error(res, system="crm", operation="upsert_contacts",
                        refused=f"CRM refused a contact for {phone}")
    if error is not None:
        raise error
    return res.id


def log_calls(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    ready: list[tuple[Any, Any]] = []
    rids = rows_records(ctx, rows)
    for r in rows:
        about(rids[r.id])
        p = r.payload or {}
        call = call_from_payload(p["call"])
        lid, crm_id = _owner(ctx, r.link_id, p.get("phone"))
        if crm_id is None:
            if ctx.config.calls.unknown_numbers == "create_contact" and p.get("phone"):
                try:
                    crm_id = _contact_for_unknown(ctx, p["phone"], r.idem_key)
                except Exception as exc:  # noqa: BLE001
                    out[r.id] = exc
                    continue
            else:
                out[r.id] = Later(ctx.now() + WAIT, "waiting for the CRM contact of this number")
                continue
        ready.append((r, replace(call, contact_id=crm_id)))
    size = max(1, ctx.crm_capabilities.calls_batch_size or 50)
    for chunk in chunks(ready, size):
        about(*(rids[r.id] for r, _ in chunk))
        results = ctx.crm.log_calls([c for _, c in chunk])
        by_key = {res.key: res for res in results}
        for r, call in chunk:
            sid = call.session_id
            out[r.id] = write_error(by_key.get(sid), system="crm", operation="log_calls",
                                    refused=f"CRM refused call {sid}") or \
                Done(CallLogged(sid, by_key[sid].id))
    return out


def update_calls(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    """A logged call changed in Oki-Toki: rewrite its CRM activity with the new values.

    A row superseded by a newer change of the same call is done without a request (the newer
    row carries the newer values); a call whose ``log_call`` is still on its way waits for it.
    """
    out: dict[int, Any] = {}
    sids = [(r.payload or {}).get("call", {}).get("session_id") for r in rows]
    with ctx.store.begin() as conn:
        calls = {c.session_id: c for c in conn.execute(select(
            CALL.c.session_id, CALL.c.state, CALL.c.fingerprint, CALL.c.crm_activity_id)
            .where(CALL.c.session_id.in_([s for s in sids if s])))}
        logging = {k for (k,) in conn.execute(select(OUTBOX.c.idem_key).where(and_(
            OUTBOX.c.idem_key.in_([f"call:{s}" for s in sids if s]),
            OUTBOX.c.status.in_(["pending", "claimed"]))))}
    ready: list[tuple[Any, Any]] = []
    for r, sid in zip(rows, sids):
        p = r.payload or {}
        now_row = calls.get(sid)
        if now_row is None or now_row.fingerprint != p.get("fingerprint"):
            out[r.id] = Done(note="superseded by a newer change of this call")
        elif now_row.state != "logged":
            out[r.id] = (Later(ctx.now() + WAIT, "waiting for the call to be logged first")
                         if f"call:{sid}" in logging else Done(note=f"call is {now_row.state}, not logged"))
        elif not ctx.crm_capabilities.calls_update:
            out[r.id] = Done(note="the CRM connector cannot update calls")
        else:
            _, crm_id = _owner(ctx, r.link_id, p.get("phone"))
            ready.append((r, replace(call_from_payload(p["call"]), contact_id=crm_id)))
    activity_ids = {sid: c.crm_activity_id for sid, c in calls.items() if c.crm_activity_id}
    size = max(1, ctx.crm_capabilities.calls_batch_size or 50)
    rids = rows_records(ctx, [r for r, _ in ready])
    for chunk in chunks(ready, size):
        about(*(rids[r.id] for r, _ in chunk))
        calls_ = [c for _, c in chunk]
        results = ctx.crm.update_calls(calls_, {c.session_id: activity_ids[c.session_id]
                                                for c in calls_ if c.session_id in activity_ids})
        by_key = {res.key: res for res in results}
        for r, call in chunk:
            sid = call.session_id
            out[r.id] = write_error(by_key.get(sid), system="crm", operation="update_calls",
                                    refused=f"CRM refused the update of call {sid}") or Done()
    return out


def statuses(ctx: Context, rows: list[Any]) -> dict[int, Any]:
    """Outcome → status, forward only; the CRM's own value (last seen) is what it moves from."""
    out: dict[int, Any] = {}
    order = ctx.mapping.status_order
    field = ctx.mapping.status_field
    spec = ctx.mapping.specs.get(field)
    crm_name = spec.crm if spec is not None else None
    writes: list[tuple[Any, int, str, ContactWrite]] = []
    planned: dict[int, Any] = {}
    for r in rows:
        p = r.payload or {}
        lid, crm_id = _owner(ctx, r.link_id, p.get("phone"))
        if crm_id is None or crm_name is None or lid is None:   # lid is set with crm_id
            out[r.id] = Done(note="no CRM contact or no status field") if crm_name is None or \
                r.attempts > 4 else Later(ctx.now() + WAIT, "waiting for the CRM contact")
            continue
        with ctx.store.begin() as conn:
            base = conn.execute(select(BASE.c.crm).where(BASE.c.link_id == lid)).first()
        current = planned.get(lid, ((base.crm if base is not None else None) or {}).get(field))
        if not is_forward(current, p["status"], order):
            out[r.id] = Done(note=f"status {current!r} is not behind {p['status']!r}")
            continue
        planned[lid] = p["status"]   # a later outcome in this batch must beat this one too
        writes.append((r, lid, p["status"], ContactWrite(r.idem_key, crm_id, {crm_name: p["status"]})))
    size = max(1, ctx.crm_capabilities.write_batch_size or 50)
    rids = rows_records(ctx, [r for r, *_ in writes])
    for chunk in chunks(writes, size):
        about(*(rids[r.id] for r, *_ in chunk))
        results = ctx.crm.upsert_contacts([w for *_, w in chunk])
        for (r, lid, status, _), res in zip(chunk, results):
            out[r.id] = write_error(res, system="crm", operation="upsert_contacts",
                                    refused=f"CRM refused status {status!r}") or \
                Done(Seen(lid, "crm", {field: status}, written_at=ctx.now()))
    return out
