"""Recording what a side holds: validate, match, store the side's values, queue the merge.

Reading is idempotent: seeing the same record twice (overlapping windows, a re-read page after
a crash) stores nothing new and queues nothing. A record that cannot be mapped is quarantined
(a dead letter with the reason and the payload) and the rest of the page goes on (invariant 7).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, and_, delete, insert, select, update

from ..errors import InvalidRecord
from ..model import Contact
from ..store.outbox import enqueue, insert_ignore
from .context import BASE, LINK, OUTBOX, PHONE, Context, jsonable, mark_dirty, update_many
from .mapping import DELETED, PHONES, Observed, Side, same
from .matching import match_records
from .outbox import Lane

__all__ = ["record_contacts", "quarantine"]

log = structlog.get_logger()


def _raw(contact: Any) -> dict[str, Any]:
    try:
        raw: dict[str, Any] = jsonable({"id": contact.id, "fields": contact.fields, "phones": list(contact.phones),
                                        "updated_at": contact.updated_at, "deleted": contact.deleted})
    except Exception:  # noqa: BLE001 - a record too broken to describe is still quarantined
        return {"repr": repr(contact)[:2000]}
    return raw


def quarantine(conn: Connection, *, side: str, record_id: str | None, reason: str,
               payload: dict[str, Any], now: datetime, stamp: str = "") -> None:
    """A dead letter for a record read from ``side`` that could not be taken in."""
    key = f"ingest:{side}:{record_id}:{stamp}"[:200]
    enqueue(conn, [{"lane": int(Lane.CONTACTS), "target": side, "operation": "ingest",
                    "payload": jsonable({"record": payload, "reason": reason}), "idem_key": key}],
            now=now)
    conn.execute(update(OUTBOX).where(and_(OUTBOX.c.idem_key == key, OUTBOX.c.status == "pending"))
                 .values(status="dead", last_error=jsonable(reason)[:2000], attempts=1))
    log.warning("record_quarantined", side=side, record_id=record_id, reason=reason)


def record_contacts(ctx: Context, conn: Connection, side: Side, contacts: list[Contact], *,
                    fetched_at: datetime | None = None) -> Counter[str]:
    """Store one page of ``side``'s contacts in the open transaction ``conn``; returns counts.

    ``fetched_at`` (local clock, taken before the request): a record of a link we wrote to
    after that moment may show the value from before our write, so it is skipped; our write
    gave it a newer server timestamp, so the next read brings it back.
    """
    now = ctx.now()
    counts: Counter[str] = Counter(read=len(contacts))
    observed: dict[str, Observed] = {}
    for contact in contacts:
        try:
            obs = ctx.mapping.observe(side, contact)
        except InvalidRecord as exc:
            counts["quarantined"] += 1
            stamp = contact.updated_at.isoformat() if isinstance(contact.updated_at, datetime) else ""
            quarantine(conn, side=side, record_id=getattr(contact, "id", None) or None,
                       reason=exc.reason, payload=_raw(contact), now=now, stamp=stamp)
            continue
        observed[obs.id] = obs  # a page may repeat a record: the last one wins
    if not observed:
        return counts
    records = _known_or_alive(conn, side, list(observed.values()), counts)
    if not records:
        return counts
    matches = match_records(conn, side, records, now=now)
    link_ids = [m.link_id for m in matches.values()]
    ts_col = f"{side}_updated_at"
    # only this side's columns (and the agreed values): the other side's JSON is not decoded
    bases = {row.link_id: row for row in conn.execute(
        select(BASE.c.link_id, BASE.c[side], BASE.c[ts_col], BASE.c[f"{side}_written_at"],
               BASE.c.agreed).where(BASE.c.link_id.in_(link_ids)))}
    cap = ctx.crm_capabilities.max_phones if side == "crm" else None
    inserts, updates, changed_links, phone_links = [], [], [], []
    for rec in records:
        m = matches[rec.id]
        values = dict(rec.values)
        row = bases.get(m.link_id)
        if rec.deleted:
            # A deletion may come as a bare id (a hard delete found by verify): it marks the
            # side's last values deleted; it never empties them, the phones included.
            values = {**((getattr(row, side) if row is not None else None) or {}), DELETED: True}
        if cap and row is not None and not rec.deleted:
            values = _full_not_edited(values, row.agreed, cap)
        if row is None:
            inserts.append({"link_id": m.link_id, side: values, ts_col: _not_after(rec.updated_at, now),
                            "agreed": None})
            changed_links.append(m.link_id)
            phone_links.append((m.link_id, values.get(PHONES) or []))
            continue
        seen, seen_ts = getattr(row, side), getattr(row, ts_col)
        if (seen or {}).get(DELETED) and not rec.deleted:
            # A deletion is final (the link retires): a later read of the record alive is a
            # stale copy, or a restore, which does not bring the link back.
            counts["after_delete"] += 1
            continue
        written = getattr(row, f"{side}_written_at")
        # A deletion is final: a write of ours after the read cannot have made it stale.
        if fetched_at is not None and written is not None and written >= fetched_at \
                and not m.attached and not rec.deleted:
            counts["stale"] += 1
            continue
        unchanged = seen is not None and all(same(k, seen.get(k), values.get(k))
                                             for k in set(seen) | set(values))
        if unchanged and not m.attached:
            counts["unchanged"] += 1
            continue
        if seen_ts is not None and rec.updated_at is not None and _not_after(rec.updated_at, now) < seen_ts \
                and not m.attached and not rec.deleted:
            counts["stale"] += 1   # an older version than one already seen (overlap window)
            continue
        upd = {"link_id": m.link_id, side: values,
               ts_col: seen_ts if rec.deleted and rec.updated_at is None else _not_after(rec.updated_at, now)}
        if m.attached:
            # First merge of two records: no common base yet (the "_" keys are bookkeeping).
            upd["agreed"] = {k: v for k, v in (row.agreed or {}).items() if k.startswith("_")}
        updates.append(upd)
        changed_links.append(m.link_id)
        if rec.deleted:
            continue
        if seen is None or not same(PHONES, seen.get(PHONES), values.get(PHONES)):
            phone_links.append((m.link_id, values.get(PHONES) or []))
    if inserts:
        conn.execute(insert(BASE), [{"okitoki": None, "crm": None, "crm_updated_at": None,
                                     "okitoki_updated_at": None, **r} for r in inserts])
    plain = [u for u in updates if "agreed" not in u]
    update_many(conn, BASE, "link_id", plain)
    update_many(conn, BASE, "link_id", [u for u in updates if "agreed" in u])
    if phone_links:
        conn.execute(delete(PHONE).where(and_(PHONE.c.link_id.in_([l for l, _ in phone_links]),
                                              PHONE.c.side == side)))
        insert_ignore(conn, PHONE, [{"phone": p, "link_id": l, "side": side}
                                    for l, ps in phone_links for p in set(ps)],
                      ["phone", "link_id", "side"])
    mark_dirty(conn, changed_links)
    counts["changed"] += len(changed_links)
    counts["linked"] += sum(1 for m in matches.values() if m.attached)
    counts["new_links"] += sum(1 for m in matches.values() if m.created)
    _resolve_old_quarantine(conn, side, [r.id for r in records], now)
    return counts


def _not_after(at: datetime | None, now: datetime) -> datetime | None:
    """A change time as stored: never later than now. A record stamped in the future (a wrong
    clock, a bad import) would otherwise win every "newest" conflict and make its own
    correction to a true time look older than what was seen."""
    return now if at is not None and at > now else at


def _known_or_alive(conn: Connection, side: Side, records: list[Observed],
                    counts: Counter[str]) -> list[Observed]:
    """The records worth taking in: every live one, and the deletions of records we link.

    A deleted record we never linked changes nothing; matching it by number would only make a
    link (or a merge candidate) for a record that no longer exists."""
    gone = [r.id for r in records if r.deleted]
    if not gone:
        return records
    col = LINK.c.crm_id if side == "crm" else LINK.c.okitoki_id
    known = set(conn.execute(select(col).where(and_(LINK.c.entity == "contact", col.in_(gone))))
                .scalars())
    counts["deleted_unknown"] += sum(1 for i in gone if i not in known)
    counts["deleted"] += len(known)
    return [r for r in records if not r.deleted or r.id in known]


def _full_not_edited(values: dict[str, Any], agreed: dict[str, Any] | None, cap: int) -> dict[str, Any]:
    """A CRM that holds at most ``cap`` phones and shows ``cap`` of the agreed numbers is full,
    not edited: keep the agreed list, so the numbers it cannot hold are not erased elsewhere."""
    mine, theirs = values.get(PHONES) or [], list((agreed or {}).get(PHONES) or [])
    if len(mine) == cap and len(theirs) > cap and set(mine) <= set(theirs):
        return {**values, PHONES: theirs}
    return values


def _resolve_old_quarantine(conn: Connection, side: str, ids: list[str], now: datetime) -> None:
    """A record that now reads fine no longer needs its old dead letters.

    Runs for every page read, so it looks only at the idempotency keys of the side's dead
    ingest rows (``ingest:<side>:<record id>:<stamp>``), never at their payloads."""
    prefix = f"ingest:{side}:"
    wanted = {f"{prefix}{i}:" for i in ids}
    dead = conn.execute(select(OUTBOX.c.id, OUTBOX.c.idem_key).where(and_(
        OUTBOX.c.status == "dead", OUTBOX.c.operation == "ingest", OUTBOX.c.target == side))
        .limit(10_000)).all()
    fixed = [row.id for row in dead if any(
        row.idem_key[:k + 1] in wanted
        for k in range(len(prefix), len(row.idem_key)) if row.idem_key[k] == ":")]
    if fixed:
        conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(fixed))
                     .values(status="done", last_error="resolved: the record was read fine later",
                             updated_at=now))
